"""The ``SessionBackend`` protocol: where browser sessions live.

It fits both kinds of store. A *stateless* backend (the encrypted cookie) returns the whole sealed
session from ``save`` and the cookie carries it. A *stateful* backend (memory, Redis) stores the
data and returns a random session id for the cookie; it indexes sessions by ``sid`` and ``sub`` so
back-channel logout deletes without scanning.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol, runtime_checkable

from ..models import SessionData

__all__ = ["SessionBackend", "SharedState"]


@runtime_checkable
class SessionBackend(Protocol):
    """A session store. Implementations must be safe for concurrent use in one event loop."""

    #: True when the cookie holds only an id and the data lives in the store.
    stateful: bool

    async def load(self, cookie_value: str) -> SessionData | None:
        """The session the cookie designates, or ``None`` (unknown, tampered or expired)."""
        ...

    async def save(self, session: SessionData, *, expires_at: float) -> str:
        """Store ``session`` until ``expires_at``; return the value for the session cookie."""
        ...

    async def delete(self, session: SessionData) -> None:
        """Forget ``session`` (logout). A no-op for a stateless backend."""
        ...

    async def delete_by(self, *, sid: str | None = None, sub: str | None = None) -> int:
        """Delete every session with that provider ``sid`` and/or ``sub``; return how many.

        Stateless backends cannot reach the browser's cookie and return 0 (see the docs on
        back-channel logout).
        """
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
