"""Revocations of stateless (cookie) sessions in Redis, shared by every process.

Used when sessions stay in cookies but ``OIDC_REDIS_URL`` is set: a logout or back-channel
logout on one instance is refused by all of them at once. Key layout (``prefix`` ``oidc:``)::

    <prefix>rv:id:<session id>   "<at>"   that session ended (RP logout)
    <prefix>rv:sid:<sid>         "<at>"   sessions of that provider session created <= at ended
    <prefix>rv:sub:<sub>         "<at>"   sessions of that user created <= at ended

Each lasts until the longest a session can live. A request's check is one ``MGET``. Session ids
are random and not credentials (the cookie is the sealed session itself), so they are stored as
they are. This class also provides :class:`~.base.SharedState` (refresh lock, logout-token replay).
"""

from __future__ import annotations

import math

from ..models import SessionData
from ._redis_client import RedisClient, text

__all__ = ["RedisRevocations"]

# KEYS[1]: the entry; ARGV[1] at, ARGV[2] ttl ms. Keeps the later time and the longer TTL.
_REVOKE = """
local old = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) > old then redis.call('SET', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
"""


class RedisRevocations(RedisClient):
    """See the module docstring; ``RedisRevocations(sealer=..., url=...)``."""

    async def revoke(
        self,
        *,
        session_id: str | None = None,
        sid: str | None = None,
        sub: str | None = None,
        at: float,
        until: float,
    ) -> None:
        ttl_ms = max(1, math.ceil(until - self._clock())) * 1000
        async with self._available("revoke"):
            for kind, value in (("id", session_id), ("sid", sid), ("sub", sub)):
                if value is not None:
                    key = f"{self._prefix}rv:{kind}:{value}"
                    await self._redis().eval(_REVOKE, 1, key, repr(float(at)), ttl_ms)

    async def revoked(self, session: SessionData) -> bool:
        names = [f"{self._prefix}rv:id:{session.id}"]
        no_sid = self._prefix + "rv:-"  # never written
        names.append(f"{self._prefix}rv:sid:{session.sid}" if session.sid else no_sid)
        names.append(f"{self._prefix}rv:sub:{session.sub}")
        async with self._available("revoked"):
            by_id, by_sid, by_sub = await self._redis().mget(names)
        if by_id is not None:
            return True
        ats = [_number(at) for at in (by_sid, by_sub) if at is not None]
        return any(session.created_at <= at for at in ats)


def _number(value: object) -> float:
    try:
        return float(text(value))
    except ValueError:
        return math.inf  # unreadable: fail closed
