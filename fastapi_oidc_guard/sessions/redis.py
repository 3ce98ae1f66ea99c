"""A session store in Redis, shared by every process of the app; sessions sealed at rest.

Key layout (``prefix`` defaults to ``oidc:``; ``<key>`` is the manager's keyed hash of the
cookie's secret, never the cookie)::

    <prefix>s:<key>      hash    {d: sealed session, e: its end, sid, sub}; {ended: 1} once ended
    <prefix>sid:<h(sid)> set     keys of the sessions of that provider session (back-channel logout)
    <prefix>sub:<h(sub)> set     keys of the sessions of that user
    <prefix>rv:...       string  revocations (see ``redis_revocations``): logins in flight

``h()`` is :meth:`Sealer.name`, bound to the app: two apps sharing one Redis (and prefix) never
touch each other's indexes, and Redis does not spell out user ids. The store is also the
revocation list of its sessions, so a back-channel logout that arrives while a login is being
completed is refused by every process.
    <prefix>lock:<name>  string  a short distributed lock (random token, compare-and-delete release)

Every write is one Lua script, so it is atomic: :meth:`update` writes only where ``d`` is still
there (a tombstone or an expired key is never written again), :meth:`delete` and
:meth:`delete_by` replace the session by a tombstone that lasts until ``until``. Keys expire with
their session; an index set's TTL is raised to at least that of its longest-lived member, never
lowered, and its dead members are pruned when it grows. :meth:`load` is one ``HGET``. On a
cluster, put a hash tag in the prefix (``"{oidc}:"``) so that every key lives in one slot.
"""

from __future__ import annotations

import math
import re

from ..models import SessionData
from ._redis_client import text
from .redis_revocations import RedisRevocations

__all__ = ["RedisSessionBackend"]

_KEY = re.compile(r"[0-9a-f]{64}")  # the manager's HMAC-SHA-256, hex
_PRUNE_ABOVE = 64

# Adds ARGV[1] (member) to the index set k, raising its TTL to at least ARGV[2] ms; above
# ARGV[4] members, drops those whose session (ARGV[3] .. member) is no longer live.
_INDEX_ADD = """
local function index_add(k)
  redis.call('SADD', k, ARGV[1])
  local ttl = redis.call('PTTL', k)
  if ttl == -1 or ttl < tonumber(ARGV[2]) then redis.call('PEXPIRE', k, ARGV[2]) end
  if redis.call('SCARD', k) > tonumber(ARGV[4]) then
    for _, m in ipairs(redis.call('SMEMBERS', k)) do
      if redis.call('HEXISTS', ARGV[3] .. m, 'd') == 0 then redis.call('SREM', k, m) end
    end
  end
end
"""
# KEYS[1] session key, KEYS[2..] index sets. ARGV: member, ttl ms, session-key prefix, prune
# threshold, sealed data, sid, sub, mode ("create": only if absent; "update": only if live),
# now, expires_at (the app's clock: a session past its end is not live even if Redis's TTL,
# on Redis's clock, has not run out yet).
_WRITE = (
    _INDEX_ADD
    + """
local stored = redis.call('HMGET', KEYS[1], 'd', 'e')
local live = stored[1] and tonumber(stored[2] or '0') > tonumber(ARGV[9])
if ARGV[8] == 'create' and redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
if ARGV[8] == 'update' and not live then return 0 end
redis.call('HSET', KEYS[1], 'd', ARGV[5], 'sid', ARGV[6], 'sub', ARGV[7], 'e', ARGV[10])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
for i = 2, #KEYS do index_add(KEYS[i]) end
return 1
"""
)
# Ends the sessions ARGV[3..] (members): tombstone for ARGV[1] ms, out of their index sets
# (named from ARGV[2], the prefix). Returns how many were live.
_END = """
local ended = 0
for i = 3, #ARGV do
  local m = ARGV[i]
  local k = ARGV[2] .. 's:' .. m
  local fields = redis.call('HMGET', k, 'd', 'sid', 'sub')
  if fields[1] then ended = ended + 1 end
  if fields[2] and fields[2] ~= '' then redis.call('SREM', ARGV[2] .. 'sid:' .. fields[2], m) end
  if fields[3] and fields[3] ~= '' then redis.call('SREM', ARGV[2] .. 'sub:' .. fields[3], m) end
  redis.call('DEL', k)
  redis.call('HSET', k, 'ended', '1')
  redis.call('PEXPIRE', k, ARGV[1])
end
for _, k in ipairs(KEYS) do
  for i = 3, #ARGV do redis.call('SREM', k, ARGV[i]) end
end
return ended
"""


class RedisSessionBackend(RedisRevocations):
    """Sessions in Redis; see the module docstring. Create it in the event loop that uses it:
    redis-py connections belong to one loop."""

    stateful = True

    async def load(self, key: str) -> SessionData | None:
        if not _KEY.fullmatch(key):
            return None  # not one of ours: no round trip
        async with self._available("load"):
            raw = await self._redis().hget(self._prefix + "s:" + key, "d")
        return None if raw is None else self._open(raw)

    async def create(self, key: str, session: SessionData, *, expires_at: float) -> None:
        if await self._write(key, session, expires_at=expires_at, mode="create") != 1:
            raise ValueError("session key already used")  # keys are 256-bit random: a bug

    async def update(self, key: str, session: SessionData, *, expires_at: float) -> bool:
        if not _KEY.fullmatch(key):
            return False
        return await self._write(key, session, expires_at=expires_at, mode="update") == 1

    async def delete(self, key: str, *, until: float) -> None:
        if _KEY.fullmatch(key):
            await self._end([], [key], until=until)

    async def delete_by(
        self, *, sid: str | None = None, sub: str | None = None, until: float
    ) -> int:
        queried = self._indexes(sid, sub)
        if not queried:
            return 0
        async with self._available("delete_by"):
            # With both, a logout token names one session of one user: intersect.
            members = await self._redis().sinter(queried)
        keys = sorted(text(m) for m in members)
        if not keys:
            return 0
        return await self._end(queried, keys, until=until)

    # -- helpers ------------------------------------------------------------------------------

    def _ttl_ms(self, until: float) -> int:
        return max(1, math.ceil(until - self._clock())) * 1000

    async def _write(self, key: str, session: SessionData, *, expires_at: float, mode: str) -> int:
        sealed = self._seal(session, expires_at=expires_at)
        keys = [self._prefix + "s:" + key, *self._indexes(session.sid, session.sub)]
        sid = self._sealer.name("sid", session.sid) if session.sid else ""
        args = (key, self._ttl_ms(expires_at), self._prefix + "s:", _PRUNE_ABOVE, sealed,
                sid, self._sealer.name("sub", session.sub), mode, repr(self._clock()),
                repr(float(expires_at)))  # fmt: skip
        async with self._available(mode):
            return int(await self._redis().eval(_WRITE, len(keys), *keys, *args))

    async def _end(self, indexes: list[str], keys: list[str], *, until: float) -> int:
        async with self._available("delete"):
            ended = await self._redis().eval(
                _END, len(indexes), *indexes, self._ttl_ms(until), self._prefix, *keys
            )
        return int(ended)

    def _indexes(self, sid: str | None, sub: str | None) -> list[str]:
        """The index sets of a session with that ``sid`` and ``sub`` (empty values: none)."""
        names = [self._prefix + "sid:" + self._sealer.name("sid", sid)] if sid else []
        return names + ([self._prefix + "sub:" + self._sealer.name("sub", sub)] if sub else [])
