"""The ASGI middleware that persists session changes when the response starts."""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import OIDCGuardError, SessionTooLarge
from .manager import SCOPE_KEY, SessionManager, SessionSlot

__all__ = ["SessionMiddleware"]

logger = logging.getLogger("fastapi_oidc_guard.sessions")


class SessionMiddleware:
    """Adds the session's ``Set-Cookie`` headers (and ``Cache-Control: no-store``) to whatever
    response the app sends, including a ``Response`` a route built itself.

    If the store cannot persist the change (e.g. Redis is down), the app's response is replaced
    by ``render_error(err)`` (a 503), never a 500 and never a half-saved session.
    """

    def __init__(
        self,
        app: ASGIApp,
        manager: SessionManager,
        render_error: Callable[[OIDCGuardError], Response],
    ) -> None:
        self.app = app
        self.manager = manager
        self.render_error = render_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        replaced = False

        async def send_with_cookies(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return  # the app's body belongs to the response we replaced
            slot: SessionSlot | None = scope.get(SCOPE_KEY)
            if message["type"] == "http.response.start" and slot is not None and slot.needs_commit:
                try:
                    cookies = await self.manager.commit(slot)
                except OIDCGuardError as err:
                    level = logging.ERROR if isinstance(err, SessionTooLarge) else logging.WARNING
                    logger.log(level, "session could not be saved: %s", err)
                    replaced = True
                    await self.render_error(err)(scope, receive, send)
                    return
                headers = [
                    (k, v) for k, v in message.get("headers", ()) if k.lower() != b"cache-control"
                ]
                headers.extend((b"set-cookie", value) for value in cookies)
                headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cookies)
