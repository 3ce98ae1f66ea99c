"""Per-request session state: lazy load, rolling expiry, and what the middleware persists.

A request's session is loaded on first use (never for bearer requests or public routes) and kept
in the ASGI scope, so every dependency of one request sees the same session. Changes (login,
refreshed tokens, logout, rolling expiry) are persisted by :class:`SessionMiddleware` when the
response starts: a route that returns its own ``Response`` still gets its cookie.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.requests import cookie_parser

from ..models import SessionData
from .base import SessionBackend
from .cookies import CookieSettings, present_names, read_chunked, write_chunked

__all__ = ["SessionManager", "SessionSlot"]

SCOPE_KEY = "fastapi_oidc_guard.session"
BeforeSave = Callable[[SessionData], SessionData]


@dataclass
class SessionSlot:
    """What one request knows about its session."""

    cookies: dict[str, str]
    loaded: bool = False
    session: SessionData | None = None
    action: Literal["save", "delete"] | None = None
    pending: SessionData | None = None
    replaced: SessionData | None = None
    cache: dict[str, Any] = field(default_factory=dict)


def _cookies_of(scope: MutableMapping[str, Any]) -> dict[str, str]:
    values = [value for name, value in scope.get("headers", ()) if name == b"cookie"]
    if not values:
        return {}
    # HTTP/2 may split cookies over several headers: join them as one list.
    return cookie_parser(b"; ".join(values).decode("latin-1"))


class SessionManager:
    """Loads, rolls and persists sessions for one backend and one cookie configuration.

    Rolling sessions: a session ends after ``inactivity`` seconds without use or ``absolute``
    seconds after login, whichever comes first. Use is recorded at most once per
    ``touch_interval`` so that most requests stay read-only.
    """

    def __init__(
        self,
        backend: SessionBackend,
        cookie: CookieSettings,
        *,
        clock: Callable[[], float],
        inactivity: float,
        absolute: float,
        touch_interval: float = 60.0,
        before_save: BeforeSave | None = None,
    ) -> None:
        self.backend = backend
        self.cookie = cookie
        self._clock = clock
        self.inactivity = inactivity
        self.absolute = absolute
        self._touch_interval = touch_interval
        self._before_save = before_save
        # Back-channel logouts seen by this process: sid -> time, sub -> time. Sessions created
        # before that time are over, even in the stateless cookie backend, which the provider's
        # logout cannot reach otherwise. Entries live as long as a session can.
        self._revoked_sids: dict[str, float] = {}
        self._revoked_subs: dict[str, float] = {}

    def slot(self, scope: MutableMapping[str, Any]) -> SessionSlot:
        slot: SessionSlot | None = scope.get(SCOPE_KEY)
        if slot is None:
            slot = SessionSlot(cookies=_cookies_of(scope))
            scope[SCOPE_KEY] = slot
        return slot

    def expires_at(self, session: SessionData) -> float:
        return session.expires_at(inactivity=self.inactivity, absolute=self.absolute)

    async def get(self, scope: MutableMapping[str, Any]) -> SessionData | None:
        """The request's current session (after any change made during this request)."""
        slot = self.slot(scope)
        if slot.action is not None:
            return slot.pending
        if slot.loaded:
            return slot.session
        slot.loaded = True
        value = read_chunked(slot.cookies, self.cookie.name)
        if value is None:
            return None
        session = await self.backend.load(value)
        now = self._clock()
        if session is None or now >= self.expires_at(session) or self._revoked(session):
            slot.action = "delete"  # clear an unreadable, foreign or expired cookie
            slot.session = session
            return None
        slot.session = session
        if now - session.last_active >= self._touch_interval:
            self.set(scope, session.model_copy(update={"last_active": now}))
        return session

    def _revoked(self, session: SessionData) -> bool:
        if not (self._revoked_sids or self._revoked_subs):
            return False
        for index, key in ((self._revoked_sids, session.sid), (self._revoked_subs, session.sub)):
            at = index.get(key) if key is not None else None
            if at is not None and session.created_at <= at:
                return True
        return False

    async def revoke(self, *, sid: str | None, sub: str | None) -> int:
        """Back-channel logout: end the sessions with provider ``sid`` (and/or every session
        of ``sub`` when no ``sid`` is given). Returns how many a stateful backend deleted."""
        now = self._clock()
        horizon = now - self.absolute
        for index in (self._revoked_sids, self._revoked_subs):
            for key in [k for k, at in index.items() if at < horizon]:
                del index[key]
        if sid is not None:
            self._revoked_sids[sid] = now
        elif sub is not None:
            self._revoked_subs[sub] = now
        return await self.backend.delete_by(sid=sid, sub=sub)

    def set(self, scope: MutableMapping[str, Any], session: SessionData) -> None:
        """Make ``session`` the request's session; persisted when the response starts."""
        slot = self.slot(scope)
        current = slot.pending if slot.action == "save" else slot.session
        if current is not None and current.id != session.id:
            slot.replaced = current
        slot.action, slot.pending = "save", session
        slot.cache.clear()

    def end(self, scope: MutableMapping[str, Any]) -> None:
        """End the request's session (logout)."""
        slot = self.slot(scope)
        if slot.action == "save" and slot.pending is not None:
            slot.replaced = slot.pending
        slot.action, slot.pending = "delete", None
        slot.cache.clear()

    async def commit(self, slot: SessionSlot) -> list[bytes]:
        """Persist the slot's change; return the ``Set-Cookie`` values for the response."""
        present = present_names(slot.cookies, self.cookie.name)
        for old in (slot.replaced, slot.session if slot.action == "delete" else None):
            if old is not None and self.backend.stateful:
                await self.backend.delete(old)
        if slot.action == "delete" or slot.pending is None:
            return write_chunked(None, self.cookie, max_age=0, present=present)
        session = slot.pending
        if self._before_save is not None:
            session = self._before_save(session)
        expires_at = self.expires_at(session)
        value = await self.backend.save(session, expires_at=expires_at)
        max_age = int(expires_at - self._clock())
        return write_chunked(value, self.cookie, max_age=max_age, present=present)
