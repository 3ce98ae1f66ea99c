"""A bounded cache of verified access tokens, keyed by SHA-256 of the token."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

__all__ = ["CacheEntry", "VerifiedTokenCache", "token_digest"]


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class CacheEntry:
    """Verified claims, plus whatever the caller built from them (e.g. the user model)."""

    __slots__ = ("built", "claims", "generation")

    def __init__(self, generation: int, claims: dict[str, Any]) -> None:
        self.generation = generation
        self.claims = claims
        self.built: object | None = None


class VerifiedTokenCache:
    """LRU of ``sha256(token) -> CacheEntry`` for at most ``size`` tokens.

    An entry is valid only for the key-set generation it was verified under, so a key rotation
    (or a removed key) purges it. Expiry is not decided here: callers re-run the clock checks on
    every hit, which also ends an entry at the token's ``exp``.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[bytes, CacheEntry] = OrderedDict()

    def get(self, digest: bytes, *, generation: int) -> CacheEntry | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry.generation != generation:
            del self._entries[digest]
            return None
        self._entries.move_to_end(digest)
        return entry

    def put(self, digest: bytes, entry: CacheEntry) -> None:
        if not self.size:
            return
        self._entries[digest] = entry
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
