"""Revocation lists for stateless (cookie) sessions, which no store can delete.

A sealed cookie is valid on its own until its expiry, so logout and back-channel logout are
recorded here instead and every request checks them:

- ``session_id``: that session ended (RP logout). A copy of its cookie is refused.
- ``sid``: every session of that provider session ended (back-channel logout); providers never
  reuse a ``sid``, so a login completed after the logout (its code exchanged late) is refused too.
- ``sub`` with a time ``at``: sessions of that user whose login began at or before ``at`` ended.
  A login begun later is a new one.

Entries last until the longest a session can live (``until``). :class:`MemoryRevocations` holds
them in this process (bounded); the Redis one (``sessions.redis.RedisRevocations``) shares them
with every process, so each instance refuses an ended session at once.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from ..models import SessionData

__all__ = ["MemoryRevocations", "RevocationStore"]

logger = logging.getLogger("fastapi_oidc_guard.sessions")


@runtime_checkable
class RevocationStore(Protocol):
    """Where ended stateless sessions are recorded."""

    async def revoke(
        self,
        *,
        session_id: str | None = None,
        sid: str | None = None,
        sub: str | None = None,
        at: float,
        until: float,
    ) -> None:
        """Record that a session, a provider session or a user's sessions ended at ``at``."""
        ...

    async def revoked(self, session: SessionData) -> bool:
        """True when ``session`` ended (by id, by sid, or begun at or before a sub revocation)."""
        ...


class MemoryRevocations:
    """In-process revocations, at most ``size`` entries per kind.

    When full, the entries closest to their end go first, with a warning (a dropped entry could
    let a copied cookie back in: keep ``size`` above your logouts per ``session_absolute``, or
    configure Redis).
    """

    def __init__(self, *, clock: Callable[[], float], size: int = 100_000) -> None:
        self._clock = clock
        self._size = size
        self.dropped = 0
        # kind -> value -> (at, until)
        self._entries: dict[str, OrderedDict[str, tuple[float, float]]] = {
            "id": OrderedDict(), "sid": OrderedDict(), "sub": OrderedDict(),
        }  # fmt: skip

    async def revoke(
        self,
        *,
        session_id: str | None = None,
        sid: str | None = None,
        sub: str | None = None,
        at: float,
        until: float,
    ) -> None:
        for kind, value in (("id", session_id), ("sid", sid), ("sub", sub)):
            if value is None:
                continue
            index = self._entries[kind]
            old = index.pop(value, None)
            index[value] = (max(at, old[0]) if old else at, max(until, old[1]) if old else until)
            self._prune(index)

    async def revoked(self, session: SessionData) -> bool:
        ids, sids, subs = self._entries["id"], self._entries["sid"], self._entries["sub"]
        if not (ids or sids or subs):
            return False
        now = self._clock()
        if _active(ids.get(session.id), now):
            return True
        if session.sid is not None and _active(sids.get(session.sid), now):
            return True
        entry = subs.get(session.sub)
        return _active(entry, now) and entry is not None and session.created_at <= entry[0]

    def _prune(self, index: OrderedDict[str, tuple[float, float]]) -> None:
        if len(index) <= self._size:
            return
        now = self._clock()
        for value in [v for v, (_, until) in index.items() if until <= now]:
            del index[value]
        while len(index) > self._size:
            soonest = min(index, key=lambda v: index[v][1])
            del index[soonest]
            self.dropped += 1
            logger.warning(
                "revocation list full (%d entries): an ended session's entry was dropped "
                "early; configure OIDC_REDIS_URL to share revocations in Redis", self._size,
            )  # fmt: skip


def _active(entry: tuple[float, float] | None, now: float) -> bool:
    return entry is not None and now < entry[1]
