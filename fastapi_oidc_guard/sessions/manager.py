"""Per-request session state: lazy load, rolling expiry, and what the middleware persists.

A request's session is loaded on first use (never for bearer requests or public routes) and kept
in the ASGI scope, so every dependency of one request sees the same session. Changes are
persisted by :class:`~.middleware.SessionMiddleware` when the response starts (a route that
returns its own ``Response`` still gets its cookie), or at once with :meth:`SessionManager.save`.

The invariant: **a session that ended stays ended.** Only :meth:`SessionManager.start` (login)
creates a session; every other write is an update that does nothing when the session has ended
meanwhile (logout in another tab, back-channel logout on another instance), and the request then
goes on as signed out. Stores give ended keys a tombstone; stateless cookie sessions are refused
through the revocation list. Stores are keyed by a keyed hash of the cookie's secret, never by
the cookie itself.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.requests import cookie_parser

from ..errors import SessionEnded, SessionTooLarge
from ..models import SessionData
from ..pkce import random_token
from .base import SessionBackend, SharedState
from .cookie import CookieSessionBackend
from .cookies import CookieSettings, present_names, read_chunked, write_chunked
from .revocation import RevocationStore
from .sealing import Sealer

__all__ = ["SCOPE_KEY", "SessionManager", "SessionSlot"]

logger = logging.getLogger("fastapi_oidc_guard.sessions")

SCOPE_KEY = "fastapi_oidc_guard.session"
BeforeSave = Callable[[SessionData], SessionData]
_HANDLE = re.compile(r"s1\.([A-Za-z0-9_-]{6})\.([A-Za-z0-9_-]{43})")


@dataclass
class SessionSlot:
    """What one request knows about its session."""

    cookies: dict[str, str]
    loaded: bool = False
    session: SessionData | None = None  # as loaded from the cookie
    value: str | None = None  # the cookie value it was loaded from
    key: str | None = None  # its store key (stateful backends)
    action: Literal["create", "update", "delete"] | None = None
    pending: SessionData | None = None
    sealed: str | None = None  # the pending session's cookie value (stateless backend)
    dirty: bool = False  # pending not written to the store yet
    clear: bool = False  # delete an unreadable, foreign, ended or expired cookie
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def needs_commit(self) -> bool:
        return self.action is not None or self.clear


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
    ``touch_interval``. ``max_cookie_bytes`` bounds what the session cookies may hold (a
    stateless session larger than that is refused where it is set: :class:`SessionTooLarge`).
    """

    def __init__(
        self,
        backend: SessionBackend | CookieSessionBackend,
        cookie: CookieSettings,
        *,
        sealer: Sealer,
        revocations: RevocationStore,
        clock: Callable[[], float],
        inactivity: float,
        absolute: float,
        touch_interval: float,
        max_cookie_bytes: int,
        before_save: BeforeSave | None = None,
    ) -> None:
        self.backend = backend
        self.cookie = cookie
        self.revocations = revocations
        self._sealer = sealer
        self._clock = clock
        self.inactivity = inactivity
        self.absolute = absolute
        self.touch_interval = touch_interval
        self._before_save = before_save
        self.max_cookie_bytes = max_cookie_bytes

    @property
    def shared(self) -> SharedState | None:
        """The cross-process primitives, when sessions or revocations live in a shared store."""
        for candidate in (self.backend, self.revocations):
            if isinstance(candidate, SharedState):
                return candidate
        return None

    @property
    def stateful(self) -> bool:
        return not isinstance(self.backend, CookieSessionBackend)

    def slot(self, scope: MutableMapping[str, Any]) -> SessionSlot:
        slot: SessionSlot | None = scope.get(SCOPE_KEY)
        if slot is None:
            slot = SessionSlot(cookies=_cookies_of(scope))
            scope[SCOPE_KEY] = slot
        return slot

    def expires_at(self, session: SessionData) -> float:
        return session.expires_at(inactivity=self.inactivity, absolute=self.absolute)

    # -- reading ------------------------------------------------------------------------------

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
        session, key = await self._load(value)
        now = self._clock()
        if session is None or now >= self.expires_at(session):
            slot.clear = True
            return None
        slot.session, slot.value, slot.key = session, value, key
        if now - session.last_active >= self.touch_interval:
            try:
                self.set(scope, session.model_copy(update={"last_active": now}))
            except SessionTooLarge as err:  # e.g. the budget was lowered: keep it as it is
                logger.warning("session not touched: %s", err)
                slot.action, slot.pending = None, None
        return session

    async def _load(self, value: str) -> tuple[SessionData | None, str | None]:
        backend = self.backend
        if isinstance(backend, CookieSessionBackend):
            session = backend.open(value)
            if session is not None and await self.revocations.revoked(session):
                return None, None
            return session, None
        key = self.store_key(value)
        if key is None:
            return None, None
        return await backend.load(key), key

    def store_key(self, cookie_value: str) -> str | None:
        """The store key of a stateful session cookie: HMAC-SHA-256 (under the secret the
        cookie names, bound to this app) of the cookie's random secret."""
        match = _HANDLE.fullmatch(cookie_value)
        if match is None:
            return None
        try:
            key_id = base64.urlsafe_b64decode(match.group(1) + "==")
        except (binascii.Error, ValueError):
            return None
        return self._sealer.digest(match.group(2), key_id=key_id)

    # -- changing -----------------------------------------------------------------------------

    def start(self, scope: MutableMapping[str, Any], session: SessionData) -> None:
        """Login: ``session`` (with a new id) replaces the request's session, if any; the old
        one ends. The only way a session is created."""
        slot = self.slot(scope)
        prepared, sealed = self._prepare(session)
        slot.action, slot.pending, slot.sealed, slot.dirty = "create", prepared, sealed, True
        slot.cache.clear()

    def set(self, scope: MutableMapping[str, Any], session: SessionData) -> None:
        """Update the request's session; persisted when the response starts. Does nothing
        when the request has no session (or ended it): an update never creates one."""
        slot = self.slot(scope)
        if slot.action == "delete" or (slot.action is None and slot.session is None):
            return
        if slot.action != "create" and (slot.session is None or session.id != slot.session.id):
            raise ValueError("set() keeps the session's id; a new session is start() (login)")
        prepared, sealed = self._prepare(session)
        slot.action = slot.action or "update"
        slot.pending, slot.sealed, slot.dirty = prepared, sealed, True
        slot.cache.clear()

    async def save(self, scope: MutableMapping[str, Any], session: SessionData) -> None:
        """:meth:`set`, written at once: raises :class:`SessionEnded` (401, the request goes
        on as signed out) when the session ended while this request was in flight."""
        self.set(scope, session)
        slot = self.slot(scope)
        if slot.action == "update" and not await self._write_update(slot):
            raise SessionEnded("the session ended while this request was in flight")
        if slot.action is None or slot.action == "delete":
            raise SessionEnded("no session to save to")

    def end(self, scope: MutableMapping[str, Any]) -> None:
        """End the request's session (logout); its id is refused from now on."""
        slot = self.slot(scope)
        slot.action, slot.pending, slot.sealed, slot.dirty = "delete", None, None, False
        slot.cache.clear()

    async def end_now(self, scope: MutableMapping[str, Any]) -> None:
        """:meth:`end`, written at once: for a WebSocket, which has no response to carry it."""
        slot = self.slot(scope)
        session, key = slot.session, slot.key
        self.end(scope)
        if session is not None:
            await self._end(session, key)

    async def keep_alive(self, key: str) -> bool:
        """A WebSocket's use of the store-backed session under ``key``: recorded (at most
        every ``touch_interval``) by an update, which never creates. ``False`` when the session
        ended or expired."""
        backend = self.backend
        assert not isinstance(backend, CookieSessionBackend)
        session = await backend.load(key)
        now = self._clock()
        if session is None or now >= self.expires_at(session):
            return False
        if now - session.last_active < self.touch_interval:
            return True
        touched = session.model_copy(update={"last_active": now})
        return await backend.update(key, touched, expires_at=self.expires_at(touched))

    async def revoke(self, *, sid: str | None, sub: str | None, at: float | None = None) -> int:
        """Back-channel logout: end the sessions of provider session ``sid`` (or, with ``sub``
        alone, every session of that user whose login began at or before ``at``, default now).
        Recorded in the revocation list first (a login being completed is refused too), then
        deleted from the store; returns how many a store ended."""
        now = self._clock()
        at = now if at is None else min(at, now)
        until = now + self.absolute
        await self.revocations.revoke(
            sid=sid, sub=None if sid is not None else sub, at=at, until=until
        )
        if isinstance(self.backend, CookieSessionBackend):
            return 0
        return await self.backend.delete_by(sid=sid, sub=sub, until=until)

    # -- persisting ---------------------------------------------------------------------------

    async def commit(self, slot: SessionSlot) -> list[bytes]:
        """Persist the slot's change; return the ``Set-Cookie`` values for the response."""
        present = present_names(slot.cookies, self.cookie.name)
        value: str | None = None
        if slot.action in ("create", "delete") and slot.session is not None:
            await self._end(slot.session, slot.key)  # logout, or the session a login replaces
            slot.session = None
        if slot.action == "create" and slot.pending is not None:
            value = await self._create(slot)
        elif slot.action == "update":
            if slot.dirty and not await self._write_update(slot):
                return []  # it ended meanwhile: leave the browser's cookies alone
            value = slot.sealed if slot.sealed is not None else slot.value
        if value is None or slot.pending is None:
            return write_chunked(None, self.cookie, max_age=0, present=present)
        max_age = int(self.expires_at(slot.pending) - self._clock())
        return write_chunked(value, self.cookie, max_age=max_age, present=present)

    def _prepare(self, session: SessionData) -> tuple[SessionData, str | None]:
        if self._before_save is not None:
            session = self._before_save(session)
        backend = self.backend
        if not isinstance(backend, CookieSessionBackend):
            return session, None
        sealed = backend.seal(session, expires_at=self.expires_at(session))
        if len(sealed) > self.max_cookie_bytes:
            raise SessionTooLarge(
                f"the session needs {len(sealed)} bytes of cookies, over max_cookie_bytes="
                f"{self.max_cookie_bytes}: keep large claims out of it with "
                "before_session_saved, or use a server-side session backend"
            )
        return session, sealed

    async def _create(self, slot: SessionSlot) -> str | None:
        session = slot.pending
        assert session is not None
        slot.dirty = False
        backend = self.backend
        if isinstance(backend, CookieSessionBackend):
            if await self.revocations.revoked(session):  # back-channel logout during login
                return None
            return slot.sealed
        secret = random_token(32)
        key_id = self._sealer.key_id
        key = self._sealer.digest(secret, key_id=key_id)
        assert key is not None
        await backend.create(key, session, expires_at=self.expires_at(session))
        # Checked after the create, while a back-channel logout records before it deletes: in
        # every interleaving one of the two sees the other (no login outlives its logout).
        if await self.revocations.revoked(session):
            await backend.delete(key, until=session.created_at + self.absolute)
            return None
        encoded_id = base64.urlsafe_b64encode(key_id).rstrip(b"=").decode()
        slot.key, slot.value = key, f"s1.{encoded_id}.{secret}"
        return slot.value

    async def _write_update(self, slot: SessionSlot) -> bool:
        """Write the pending update; on ``False`` the session ended and the slot says so."""
        session = slot.pending
        assert session is not None
        backend = self.backend
        if isinstance(backend, CookieSessionBackend):
            live = not await self.revocations.revoked(session)
        else:
            assert slot.key is not None
            live = await backend.update(slot.key, session, expires_at=self.expires_at(session))
        slot.dirty = False
        if not live:
            # No Set-Cookie at all: the browser may hold a newer session under the same name
            # (a login in another tab); the ended cookie is refused and cleared when next sent.
            slot.action, slot.pending, slot.sealed, slot.session = None, None, None, None
            slot.cache.clear()
        return live

    async def _end(self, session: SessionData, key: str | None) -> None:
        until = session.created_at + self.absolute
        if key is not None and not isinstance(self.backend, CookieSessionBackend):
            await self.backend.delete(key, until=until)
        else:
            await self.revocations.revoke(session_id=session.id, at=self._clock(), until=until)
