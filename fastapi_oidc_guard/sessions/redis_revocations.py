"""Revocations of stateless (cookie) sessions in Redis, shared by every process.

Used when sessions stay in cookies but ``OIDC_REDIS_URL`` is set: a logout or back-channel
logout on one instance is refused by all of them at once. Key layout (``prefix`` ``oidc:``)::

    <prefix>rv:id:<h(id)>    "<at>"   that session ended (RP logout)
    <prefix>rv:sid:<h(sid)>  "<at>"   every session of that provider session ended
    <prefix>rv:sub:<h(sub)>  "<at>"   sessions of that user whose login began <= at ended

``h()`` is :meth:`Sealer.name` (bound to the app). Each entry lasts until the longest a session
can live. A request's check is one ``MGET``. This class also provides
:class:`~.base.SharedState` (refresh lock, logout-token replay).
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
                    key = f"{self._prefix}rv:{kind}:{self._sealer.name(kind, value)}"
                    await self._redis().eval(_REVOKE, 1, key, repr(float(at)), ttl_ms)

    async def revoked(self, session: SessionData) -> bool:
        name = self._sealer.name
        names = [f"{self._prefix}rv:id:{name('id', session.id)}"]
        no_sid = self._prefix + "rv:-"  # never written
        names.append(f"{self._prefix}rv:sid:{name('sid', session.sid)}" if session.sid else no_sid)
        names.append(f"{self._prefix}rv:sub:{name('sub', session.sub)}")
        async with self._available("revoked"):
            by_id, by_sid, by_sub = await self._redis().mget(names)
        if by_id is not None or by_sid is not None:
            return True
        return by_sub is not None and session.created_at <= _number(by_sub)


def _number(value: object) -> float:
    try:
        return float(text(value))
    except ValueError:
        return math.inf  # unreadable: fail closed
