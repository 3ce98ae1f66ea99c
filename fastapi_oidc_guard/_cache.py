"""The one bounded cache of the package (LRU with an optional expiry per entry), and the cache
of verified access tokens built on it.

Every in-process cache uses :class:`BoundedCache`: verified tokens, opened cookie sessions,
recent refresh outcomes, userinfo answers, client-credentials tokens, logout-token ids, and the
resolver's tenants. What is bounded is memory: a flood of distinct keys evicts the least
recently used entries and never grows the process. (The revocation list is not a cache: its
entries are dropped only when it is full, the soonest to end first, with a warning; see
``sessions/revocation.py``.)
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Any, Generic, TypeVar

logger = logging.getLogger("fastapi_oidc_guard")

__all__ = ["BoundedCache", "CacheEntry", "SeenIds", "VerifiedTokenCache", "token_digest"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
_NEVER = float("inf")


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class BoundedCache(Generic[K, V]):
    """At most ``size`` entries, least recently used evicted first; ``size=0`` stores nothing.

    ``ttl`` (seconds, on ``clock``) gives each new entry an expiry; ``put(..., expires_at=)``
    sets one entry's. An expired entry is never returned and is dropped when met.
    """

    __slots__ = ("_clock", "_entries", "size", "ttl")

    def __init__(
        self, size: int, *, ttl: float | None = None, clock: Callable[[], float] | None = None
    ) -> None:
        if (ttl is not None) and clock is None:
            raise ValueError("a ttl needs a clock")
        self.size = size
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[K, tuple[V, float]] = OrderedDict()

    def get(self, key: K) -> V | None:
        """The live value for ``key`` (now the most recently used), or ``None``."""
        item = self._entries.get(key)
        if item is None:
            return None
        if item[1] is not _NEVER and self._now() >= item[1]:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return item[0]

    def put(self, key: K, value: V, *, expires_at: float | None = None) -> None:
        if not self.size:
            return
        if expires_at is None:
            expires_at = _NEVER if self.ttl is None else self._now() + self.ttl
        self._entries[key] = (value, expires_at)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def pop(self, key: K) -> V | None:
        item = self._entries.pop(key, None)
        return None if item is None else item[0]

    def expires_at(self, key: K) -> float | None:
        item = self._entries.get(key)
        return None if item is None or item[1] is _NEVER else item[1]

    def values(self) -> Iterator[V]:
        """Every stored value, expired ones included (for closing what they hold)."""
        return (value for value, _ in list(self._entries.values()))

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` has a live entry (its place in the LRU order is not changed)."""
        item = self._entries.get(key)  # type: ignore[arg-type]
        return item is not None and (item[1] is _NEVER or self._now() < item[1])

    def __len__(self) -> int:
        return len(self._entries)

    def _now(self) -> float:
        assert self._clock is not None
        return self._clock()


class CacheEntry:
    """Verified claims, their parsed times (``exp``, ``nbf``, ``iat``: what every hit checks on
    the clock again), plus whatever the caller built from them (e.g. the user model)."""

    __slots__ = ("built", "claims", "generation", "times")

    def __init__(
        self,
        generation: int,
        claims: dict[str, Any],
        times: tuple[float, float | None, float | None],
    ) -> None:
        self.generation = generation
        self.claims = claims
        self.times = times
        self.built: object | None = None


class VerifiedTokenCache:
    """``sha256(token) -> CacheEntry`` for at most ``size`` tokens.

    An entry is valid only for the key-set generation it was verified under, so a key rotation
    (or a removed key) purges it. Expiry is not decided here: callers re-run the clock checks on
    every hit, which also ends an entry at the token's ``exp``.
    """

    __slots__ = ("_entries",)

    def __init__(self, size: int) -> None:
        self._entries: BoundedCache[bytes, CacheEntry] = BoundedCache(size)

    @property
    def size(self) -> int:
        return self._entries.size

    def get(self, digest: bytes, *, generation: int) -> CacheEntry | None:
        entry = self._entries.get(digest)
        if entry is not None and entry.generation != generation:
            self._entries.pop(digest)
            return None
        return entry

    def put(self, digest: bytes, entry: CacheEntry) -> None:
        self._entries.put(digest, entry)

    def __len__(self) -> int:
        return len(self._entries)


class SeenIds:
    """Ids seen before their expiry (replay detection for ``jti`` values), bounded.

    ``fail_closed``: when every entry is still live and the store is full, a new id is
    refused (``first_use`` is False) instead of evicting a live one: a flood of fresh ids can
    then never push out a spent one and make its replay succeed (DPoP proofs). Entries keep
    their insertion order (a hit does not move them) and share one lifetime, so expired ones
    are dropped from the front, each once: a full store costs nothing per refused id. Without
    it the least recently used entry goes (logout tokens: a logout is never refused for want
    of room)."""

    def __init__(
        self, *, clock: Callable[[], float], size: int = 100_000, fail_closed: bool = False
    ) -> None:
        self._clock = clock
        self._size = size
        self._fail_closed = fail_closed
        self._seen: BoundedCache[str, bool] = BoundedCache(size, clock=clock)
        self._live: OrderedDict[str, float] = OrderedDict()  # fail_closed: id -> expiry
        self.refused_full = 0

    def first_use(self, value: str, *, until: float) -> bool:
        """True the first time ``value`` is seen (it is then remembered until ``until``)."""
        now = self._clock()
        expires = max(until, now + 60)
        if not self._fail_closed:
            if self._seen.get(value) is not None:
                return False
            self._seen.put(value, True, expires_at=expires)
            return True
        live = self._live
        while live:
            oldest, expiry = next(iter(live.items()))
            if expiry > now:
                break
            del live[oldest]
        seen = live.get(value)
        if seen is not None and seen > now:
            return False
        if len(live) >= self._size:
            self.refused_full += 1
            if self.refused_full == 1 or self.refused_full % 1000 == 0:
                logger.warning(
                    "replay store full of live ids (%d): new ones refused until some "
                    "expire; configure OIDC_REDIS_URL to share a larger one", self._size,
                )  # fmt: skip
            return False
        live[value] = expires
        return True
