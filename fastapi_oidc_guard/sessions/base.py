"""The ``SessionBackend`` protocol: a server-side store of browser sessions.

The contract, each rule the attack it stops (``fastapi_oidc_guard.testing.conformance`` runs it
against any backend):

- **Keys are not cookies.** The session manager gives the store a *key*: a keyed hash
  (HMAC-SHA-256, bound to the app) of the random secret the cookie carries. A store never sees a
  cookie, so nothing read from it (keys, values, index sets, its command stream) signs anyone in.
- **Only login creates.** :meth:`create` is called once per login with a fresh key.
  Every other write is :meth:`update`, which writes only if the session is still there and has
  not ended; otherwise it writes nothing and returns ``False`` (the request then goes on as
  signed out). A request in flight when the user logs out can therefore never bring the session
  back. The check and the write must be one atomic step (a Lua script, a lock, one event-loop
  step without ``await`` in between).
- **Ended sessions leave a tombstone.** :meth:`delete` and :meth:`delete_by` keep the key
  refused until ``until`` (the session's absolute expiry), so a late :meth:`update` never wins.
- **Back-channel logout never scans**: sessions are indexed by the provider's ``sid`` and by
  ``sub``.

The stateless encrypted-cookie "backend" (:class:`~.cookie.CookieSessionBackend`) is not a store
and does not implement this protocol; the manager handles it (ended sessions are refused through
a revocation list instead).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol, runtime_checkable

from ..models import SessionData

__all__ = ["SessionBackend", "SharedState"]


@runtime_checkable
class SessionBackend(Protocol):
    """A session store. Implementations must be safe for concurrent use in one event loop."""

    #: Always ``True`` for a store (the cookie holds only a random secret).
    stateful: bool

    async def load(self, key: str) -> SessionData | None:
        """The live session stored under ``key``, or ``None`` (unknown, ended or expired)."""
        ...

    async def create(self, key: str, session: SessionData, *, expires_at: float) -> None:
        """Store a new session (login) under a fresh ``key`` until ``expires_at``."""
        ...

    async def update(self, key: str, session: SessionData, *, expires_at: float) -> bool:
        """Replace the session under ``key`` if it is still live; return whether it was.

        Atomic: a session that was deleted (or has expired) is never written again."""
        ...

    async def delete(self, key: str, *, until: float) -> None:
        """End the session under ``key`` (logout); refuse the key until ``until``."""
        ...

    async def delete_by(
        self, *, sid: str | None = None, sub: str | None = None, until: float
    ) -> int:
        """End every session with that provider ``sid`` (and ``sub``, when both are given) or,
        with ``sub`` alone, every session of that user; return how many ended."""
        ...


@runtime_checkable
class SharedState(Protocol):
    """Optional capability of a backend shared by several processes (Redis): a short lock,
    refresh outcomes published for the other processes, and once-only ids. With it, refresh is
    single flight across processes and logout-token replay is detected across processes."""

    def lock(
        self, name: str, *, ttl: float = 10.0, wait: float = 10.0
    ) -> AbstractAsyncContextManager[None]: ...

    async def share(self, name: str, session: SessionData, *, ttl: float) -> None: ...

    async def shared(self, name: str) -> SessionData | None: ...

    async def first_use(self, name: str, *, ttl: float) -> bool: ...
