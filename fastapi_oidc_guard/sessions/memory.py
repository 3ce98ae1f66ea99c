"""An in-process session store: for development and single-process apps.

Use the Redis backend with several processes. Every operation runs without an ``await``, so each
is atomic in the event loop: an update can never interleave with a logout.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from ..models import SessionData

__all__ = ["MemorySessionBackend"]


@dataclass
class _Entry:
    session: SessionData
    expires_at: float


class MemorySessionBackend:
    """Sessions in a dict, indexed by provider ``sid`` and ``sub``; at most ``max_sessions``
    live sessions and as many tombstones (the oldest go first when full)."""

    stateful = True

    def __init__(self, *, clock: Callable[[], float], max_sessions: int = 100_000) -> None:
        self._clock = clock
        self._max = max_sessions
        self._entries: dict[str, _Entry] = {}
        self._tombstones: dict[str, float] = {}
        self._by_sid: defaultdict[str, set[str]] = defaultdict(set)
        self._by_sub: defaultdict[str, set[str]] = defaultdict(set)

    def __len__(self) -> int:
        return len(self._entries)

    async def load(self, key: str) -> SessionData | None:
        entry = self._live(key)
        return None if entry is None else entry.session

    async def create(self, key: str, session: SessionData, *, expires_at: float) -> None:
        if key in self._entries or key in self._tombstones:
            raise ValueError("session key already used")  # keys are 256-bit random: a bug
        if len(self._entries) >= self._max:
            self._evict_oldest()
        self._entries[key] = _Entry(session, expires_at)
        self._index(key, session)

    async def update(self, key: str, session: SessionData, *, expires_at: float) -> bool:
        entry = self._live(key)
        if entry is None:
            return False
        self._unindex(key, entry.session)
        entry.session, entry.expires_at = session, expires_at
        self._index(key, session)
        return True

    async def delete(self, key: str, *, until: float) -> None:
        self._end(key, until)

    async def delete_by(
        self, *, sid: str | None = None, sub: str | None = None, until: float
    ) -> int:
        keys: set[str] = set()
        if sid is not None:
            keys = set(self._by_sid.get(sid, ()))
        if sub is not None:
            by_sub = self._by_sub.get(sub, set())
            # With both, a logout token names one session of one user: intersect.
            keys = {k for k in keys if k in by_sub} if sid is not None else set(by_sub)
        ended = 0
        for key in keys:
            ended += self._live(key) is not None
            self._end(key, until)
        return ended

    # -- helpers ------------------------------------------------------------------------------

    def _live(self, key: str) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self._clock() >= entry.expires_at:
            self._end(key, entry.expires_at)
            return None
        return entry

    def _end(self, key: str, until: float) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._unindex(key, entry.session)
        now = self._clock()
        if until > now:
            self._tombstones[key] = max(until, self._tombstones.get(key, 0.0))
        if len(self._tombstones) > self._max:
            for stale in [k for k, t in self._tombstones.items() if t <= now]:
                del self._tombstones[stale]
            while len(self._tombstones) > self._max:
                del self._tombstones[next(iter(self._tombstones))]

    def _index(self, key: str, session: SessionData) -> None:
        if session.sid:
            self._by_sid[session.sid].add(key)
        self._by_sub[session.sub].add(key)

    def _unindex(self, key: str, session: SessionData) -> None:
        for index, value in ((self._by_sid, session.sid), (self._by_sub, session.sub)):
            if value is not None and value in index:
                index[value].discard(key)
                if not index[value]:
                    del index[value]

    def _evict_oldest(self) -> None:
        oldest = min(self._entries, key=lambda k: self._entries[k].session.last_active)
        self._end(oldest, self._entries[oldest].expires_at)
