"""Sockets that end when their credentials do.

A WebSocket is authenticated once, at the handshake; its credentials may end long before the
socket does. ``async with guard.while_authenticated(websocket): ...`` checks them every
``every`` seconds and closes the socket (code 1008, the reason says why) as soon as:

- its bearer token expires or no longer verifies (``token_expired`` / ``invalid_token``);
- its session was logged out or ended by a back-channel logout, on this instance or, through
  the shared store (Redis), on any other (``session_ended``);
- its session reaches its absolute lifetime, or (cookie sessions) the cookie it presented
  expires by inactivity (``session_expired``); with a store, the socket's use is recorded as
  activity (``SessionManager.keep_alive``).

A store that cannot be reached (503) does not close the socket: an outage is not a logout. Any
other failure of the check closes it with 1011 ``internal_error`` (fail closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from starlette.websockets import WebSocket, WebSocketState

from .authentication import Authenticator
from .errors import ExpiredToken, InvalidToken, TemporarilyUnavailable
from .sessions.cookie import CookieSessionBackend

__all__ = ["close_when_ended", "credential_check"]

logger = logging.getLogger("fastapi_oidc_guard")

Check = Callable[[], Awaitable[str | None]]


def credential_check(guard: Authenticator, websocket: WebSocket) -> Check:
    """A check that returns why the socket's credentials ended, or ``None`` while they hold."""
    found = guard.credential(websocket)
    sessions = guard.sessions
    if found is not None:

        async def bearer() -> str | None:
            try:
                await guard.revalidate(found)
            except ExpiredToken:
                return "token_expired"
            except InvalidToken:
                return "invalid_token"
            return None

        return bearer
    if sessions is None:
        raise ValueError("while_authenticated needs a socket authenticated by a token or session")
    slot = sessions.slot(websocket.scope)
    session, key = slot.session, slot.key
    if session is None:
        raise ValueError("while_authenticated: the socket has no session (authenticate it first)")

    async def session_check() -> str | None:
        now = guard.config.clock()
        if now >= sessions.expires_at(session.model_copy(update={"last_active": now})):
            return "session_expired"  # the absolute lifetime
        if isinstance(sessions.backend, CookieSessionBackend) or key is None:
            # The socket lives no longer than the cookie it presented (nothing can renew it).
            if now >= sessions.expires_at(session):
                return "session_expired"
            return "session_ended" if await sessions.revocations.revoked(session) else None
        # A store-backed session: the socket's use counts as activity (written to the store).
        return None if await sessions.keep_alive(key) else "session_ended"

    return session_check


@asynccontextmanager
async def close_when_ended(
    websocket: WebSocket, check: Check, *, every: float = 5.0
) -> AsyncIterator[None]:
    """Run the block; meanwhile, every ``every`` seconds, check the credentials. Once
    ``check`` says why they ended, the socket is closed (1008, that reason) and the block is
    cancelled (like ``asyncio.timeout``): the ``async with`` then ends normally."""
    if not every > 0:
        raise ValueError("every must be a positive number of seconds")
    owner = asyncio.current_task()
    assert owner is not None
    ended: list[tuple[int, str]] = []

    async def watch() -> None:
        while True:
            await asyncio.sleep(every)
            try:
                reason = await check()
            except TemporarilyUnavailable as err:  # an outage is not a logout
                logger.warning("socket credentials not checked: %s", err)
                continue
            except Exception:  # fail closed: an unchecked socket is never kept open
                logger.exception("socket credentials could not be checked: closing it")
                ended.append((1011, "internal_error"))
                break
            if reason is not None:
                ended.append((1008, reason))
                break
        owner.cancel()  # the block stops first: it never sends after the close

    watcher = asyncio.ensure_future(watch())
    try:
        yield
    except asyncio.CancelledError:
        if not ended:
            raise  # cancelled by someone else
        owner.uncancel()
        code, reason = ended[0]
        logger.info("closing socket %s: %s", websocket.url.path, reason)
        if websocket.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError):  # the client is closing at the same time
                await websocket.close(code=code, reason=reason)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
