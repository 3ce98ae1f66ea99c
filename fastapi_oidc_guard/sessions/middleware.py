"""The ASGI middleware that persists session changes when the response starts."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .manager import SCOPE_KEY, SessionManager, SessionSlot

__all__ = ["SessionMiddleware"]


class SessionMiddleware:
    """Adds the session's ``Set-Cookie`` headers (and ``Cache-Control: no-store``) to whatever
    response the app sends, including a ``Response`` a route built itself."""

    def __init__(self, app: ASGIApp, manager: SessionManager) -> None:
        self.app = app
        self.manager = manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_cookies(message: Message) -> None:
            slot: SessionSlot | None = scope.get(SCOPE_KEY)
            if message["type"] == "http.response.start" and slot is not None and slot.action:
                cookies = await self.manager.commit(slot)
                headers = [
                    (k, v) for k, v in message.get("headers", ()) if k.lower() != b"cache-control"
                ]
                headers.extend((b"set-cookie", value) for value in cookies)
                headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cookies)
