"""An in-process stateful store: the cookie holds a random id; data stays in this process.

For development and single-process apps; use the Redis backend with several processes.
"""

from __future__ import annotations

import hmac
from collections import defaultdict
from collections.abc import Callable

from ..models import SessionData
from ..pkce import random_token

__all__ = ["MemorySessionBackend"]


class MemorySessionBackend:
    """Sessions in a dict, indexed by provider ``sid`` and ``sub``; at most ``max_sessions``."""

    stateful = True

    def __init__(self, *, clock: Callable[[], float], max_sessions: int = 100_000) -> None:
        self._clock = clock
        self._max = max_sessions
        self._by_key: dict[str, tuple[SessionData, float]] = {}
        self._key_of: dict[str, str] = {}  # session id -> cookie key
        self._by_sid: defaultdict[str, set[str]] = defaultdict(set)
        self._by_sub: defaultdict[str, set[str]] = defaultdict(set)

    def __len__(self) -> int:
        return len(self._by_key)

    async def load(self, cookie_value: str) -> SessionData | None:
        entry = self._by_key.get(cookie_value)
        if entry is None:
            return None
        session, expires_at = entry
        if self._clock() >= expires_at:
            self._remove(cookie_value)
            return None
        return session

    async def save(self, session: SessionData, *, expires_at: float) -> str:
        key = self._key_of.get(session.id)
        if key is None:
            key = random_token(32)
            if len(self._by_key) >= self._max:
                self._evict_oldest()
        self._remove(key)
        self._by_key[key] = (session, expires_at)
        self._key_of[session.id] = key
        if session.sid:
            self._by_sid[session.sid].add(key)
        self._by_sub[session.sub].add(key)
        return key

    async def delete(self, session: SessionData) -> None:
        key = self._key_of.get(session.id)
        if key is not None:
            self._remove(key)

    async def delete_by(self, *, sid: str | None = None, sub: str | None = None) -> int:
        keys: set[str] = set()
        if sid is not None:
            keys |= self._by_sid.get(sid, set())
        if sub is not None:
            by_sub = self._by_sub.get(sub, set())
            # With both, a logout token names one session of one user: intersect.
            keys = {k for k in keys if k in by_sub} if sid is not None else set(by_sub)
        for key in list(keys):
            self._remove(key)
        return len(keys)

    def _remove(self, key: str) -> None:
        entry = self._by_key.pop(key, None)
        if entry is None:
            return
        session = entry[0]
        if hmac.compare_digest(self._key_of.get(session.id, ""), key):
            del self._key_of[session.id]
        for index, value in ((self._by_sid, session.sid), (self._by_sub, session.sub)):
            if value is not None and value in index:
                index[value].discard(key)
                if not index[value]:
                    del index[value]

    def _evict_oldest(self) -> None:
        oldest = min(self._by_key, key=lambda k: self._by_key[k][0].last_active)
        self._remove(oldest)
