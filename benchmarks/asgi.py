"""A minimal in-process ASGI driver: no HTTP client, no socket, only the app's own cost.

Every request gets a fresh ``scope`` (Starlette and FastAPI write into it) built from a fixed
template; ``receive`` answers with an empty body, ``send`` records the response status so that the
caller can refuse to time anything but a 200.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["ASGIApp", "AsgiDriver", "BadResponse", "Headers", "request_headers"]

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

_REQUEST: Message = {"type": "http.request", "body": b"", "more_body": False}
_DISCONNECT: Message = {"type": "http.disconnect"}


class BadResponse(RuntimeError):
    """A measured request did not answer 200: the numbers of this run are meaningless."""


def request_headers(token: str | None) -> Headers:
    """The headers of a typical API call, with ``Authorization: Bearer <token>`` if given."""
    headers: Headers = [
        (b"host", b"api.example.test"),
        (b"user-agent", b"benchmarks/1.0"),
        (b"accept", b"application/json"),
    ]
    if token is not None:
        headers.append((b"authorization", b"Bearer " + token.encode("ascii")))
    return headers


class AsgiDriver:
    """Sends GET requests straight to an ASGI ``app`` and returns the response status."""

    def __init__(self, app: ASGIApp, path: str) -> None:
        self._app = app
        self._template: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode("ascii"),
            "root_path": "",
            "query_string": b"",
            "client": ("127.0.0.1", 50000),
            "server": ("api.example.test", 80),
        }
        self._status = 0
        self._received = False
        self._capture = False
        self.body = b""

    async def _receive(self) -> Message:
        if self._received:
            return _DISCONNECT
        self._received = True
        return _REQUEST

    async def _send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self._status = message["status"]
        elif self._capture and message["type"] == "http.response.body":
            self.body += message.get("body", b"")

    async def get(self, headers: Headers) -> int:
        """One request; the status of its response (0 if the app sent none)."""
        self._status = 0
        self._received = False
        scope = self._template.copy()
        scope["headers"] = headers
        scope["state"] = {}
        await self._app(scope, self._receive, self._send)
        return self._status

    async def get_body(self, headers: Headers) -> tuple[int, bytes]:
        """One request, also collecting the body (for set-up checks, never timed)."""
        self._capture, self.body = True, b""
        try:
            status = await self.get(headers)
        finally:
            self._capture = False
        return status, self.body
