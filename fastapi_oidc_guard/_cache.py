"""A bounded cache of verified access-token claims, keyed by SHA-256 of the token."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

__all__ = ["VerifiedTokenCache"]


class VerifiedTokenCache:
    """LRU of ``sha256(token) -> claims`` for at most ``size`` tokens.

    An entry is valid only for the key-set generation it was verified under, so a key rotation
    (or a removed key) purges it. Expiry is not decided here: callers re-run the clock checks on
    every hit, which also ends an entry at the token's ``exp``.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[bytes, tuple[int, dict[str, Any]]] = OrderedDict()

    def get(self, token: str, *, generation: int) -> dict[str, Any] | None:
        if not self._size:
            return None
        key = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] != generation:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, token: str, claims: dict[str, Any], *, generation: int) -> None:
        if not self._size:
            return
        key = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        self._entries[key] = (generation, claims)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
