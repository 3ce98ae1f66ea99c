"""A stateful store in Redis: the cookie holds a random key; the session is sealed at rest.

Key layout (``prefix`` defaults to ``oidc:``)::

    <prefix>s:<key>      string  the session sealed with AES-256-GCM (purpose "redis-session")
    <prefix>id:<id>      hash    {k: key, sid, sub} for session.id: a re-saved session keeps its key
    <prefix>sid:<sid>    set     keys of the sessions of that provider session (back-channel logout)
    <prefix>sub:<sub>    set     keys of the sessions of that user
    <prefix>lock:<name>  string  a short distributed lock (random token, compare-and-delete release)

Session and ``id:`` keys expire with the session (TTL rounded up, at least 1 s); an index set's
TTL is raised to at least that of its longest-lived member, never lowered. Writes run in MULTI/EXEC
transactions: nothing is half-written. A session id claims its key with HSETNX, so concurrent
saves of one session (parallel requests touching it) agree on the key without WATCH retries.
Any Redis failure is :class:`TemporarilyUnavailable` (503), never a silent logout. On a cluster,
put a hash tag in the prefix (``"{oidc}:"``) so that every key lives in one slot.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from pydantic import ValidationError

from ..errors import ConfigurationError, TemporarilyUnavailable
from ..models import SessionData
from ..pkce import random_token
from .sealing import Sealer

try:
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError
except ImportError as err:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "RedisSessionBackend needs redis-py: pip install oidc-guard-fastapi[redis]"
    ) from err

__all__ = ["RedisSessionBackend"]

logger = logging.getLogger("fastapi_oidc_guard")

PURPOSE = "redis-session"
_KEY = re.compile(r"[A-Za-z0-9_-]{43}")  # random_token(32): 256 bits, base64url
_PRUNE_ABOVE = 64

# KEYS[1] index set; ARGV: member, TTL in ms, session-key prefix, prune threshold. Adds the
# member, raises the set's TTL to at least ARGV[2] (never lowers it) and, above the threshold,
# drops members whose session is gone (expired sessions are not removed from their sets otherwise).
_INDEX_ADD = """
redis.call('SADD', KEYS[1], ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -1 or ttl < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if redis.call('SCARD', KEYS[1]) > tonumber(ARGV[4]) then
  for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    if redis.call('EXISTS', ARGV[3] .. m) == 0 then redis.call('SREM', KEYS[1], m) end
  end
end
return 1
"""
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _decoded(mapping: Any) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in mapping.items()}


class RedisSessionBackend:
    """Sessions in Redis, shared by every process of the app; see the module docstring.

    Pass ``client`` (a ``redis.asyncio.Redis`` you own and close) or ``url`` (the backend
    creates the client with ``timeout`` as socket timeouts and closes it in :meth:`aclose`).
    ``timeout`` also bounds each backend call as a whole. Create the backend in the event loop
    that uses it: redis-py connections belong to one loop.
    """

    stateful = True

    def __init__(
        self,
        *,
        sealer: Sealer,
        client: Redis | None = None,
        url: str | None = None,
        prefix: str = "oidc:",
        clock: Callable[[], float] = time.time,
        timeout: float = 2.0,
    ) -> None:
        if (client is None) == (url is None):
            raise ConfigurationError("RedisSessionBackend: pass exactly one of client= or url=")
        if timeout <= 0:
            raise ConfigurationError("RedisSessionBackend: timeout must be positive")
        self._url, self._timeout = url, timeout
        self._client: Redis = client if client is not None else self._connect(str(url))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sealer, self._prefix, self._clock = sealer, prefix, clock

    def _connect(self, url: str) -> Redis:
        return Redis.from_url(
            url, socket_timeout=self._timeout, socket_connect_timeout=self._timeout,
            retry=Retry(NoBackoff(), 1),  # one quick retry: a pooled connection may be stale
        )  # fmt: skip

    def _redis(self) -> Redis:
        """The client. One built from ``url`` is rebuilt if the event loop changed (e.g. a
        second ``TestClient``): redis-py connections cannot move between loops."""
        loop = asyncio.get_running_loop()
        if self._url is not None and self._loop is not loop:
            if self._loop is not None:
                self._client = self._connect(self._url)
            self._loop = loop
        return self._client

    # -- SessionBackend -----------------------------------------------------------------------

    async def load(self, cookie_value: str) -> SessionData | None:
        if not _KEY.fullmatch(cookie_value):
            return None  # not one of ours: no round trip
        async with self._available("load"):
            raw = await self._redis().get(self._prefix + "s:" + cookie_value)
        return None if raw is None else self._open(raw)

    async def save(self, session: SessionData, *, expires_at: float) -> str:
        payload = session.model_dump(mode="json", exclude_defaults=True)
        sealed = self._sealer.seal(payload, purpose=PURPOSE, expires_at=expires_at)
        ttl_ms = max(1, math.ceil(expires_at - self._clock())) * 1000
        id_key, indexes = self._prefix + "id:" + session.id, self._indexes(session.sid, session.sub)
        async with self._available("save"):
            async with self._redis().pipeline(transaction=True) as pipe:
                # Claim a key for this session id unless it has one: concurrent saves agree.
                pipe.hsetnx(id_key, "k", random_token(32))
                pipe.pexpire(id_key, ttl_ms)  # nothing lingers if the next step never runs
                pipe.hgetall(id_key)
                old = _decoded((await pipe.execute())[-1])
            key = old["k"]
            async with self._redis().pipeline(transaction=True) as pipe:
                for stale in set(self._indexes(old.get("sid"), old.get("sub"))) - set(indexes):
                    pipe.srem(stale, key)  # sid or sub changed since the last save
                pipe.set(self._prefix + "s:" + key, sealed, px=ttl_ms)
                pipe.hset(id_key, mapping={"k": key, "sub": session.sub, "sid": session.sid or ""})
                pipe.pexpire(id_key, ttl_ms)
                for index in indexes:
                    pipe.eval(_INDEX_ADD, 1, index, key, ttl_ms, self._prefix + "s:", _PRUNE_ABOVE)
                await pipe.execute()
        return key

    async def delete(self, session: SessionData) -> None:
        id_key = self._prefix + "id:" + session.id
        async with self._available("delete"):
            old = _decoded(await self._redis().hgetall(id_key))
            key = old.get("k")
            if key is None:
                return  # never saved, or already gone
            async with self._redis().pipeline(transaction=True) as pipe:
                pipe.delete(self._prefix + "s:" + key, id_key)
                stored = self._indexes(old.get("sid"), old.get("sub"))
                for index in {*stored, *self._indexes(session.sid, session.sub)}:
                    pipe.srem(index, key)
                await pipe.execute()

    async def delete_by(self, *, sid: str | None = None, sub: str | None = None) -> int:
        queried = self._indexes(sid, sub)
        if not queried:
            return 0
        async with self._available("delete_by"):
            # With both, a logout token names one session of one user: intersect.
            members = await self._redis().sinter(queried)
            keys = sorted(_text(m) for m in members)
            if not keys:
                return 0
            blobs = await self._redis().mget([self._prefix + "s:" + k for k in keys])
            async with self._redis().pipeline(transaction=True) as pipe:
                pipe.delete(*(self._prefix + "s:" + k for k in keys))
                for key, blob in zip(keys, blobs, strict=True):
                    session = None if blob is None else self._open(blob)
                    indexes = set(queried)
                    if session is not None:  # else expired or unreadable: its id: key expires
                        pipe.delete(self._prefix + "id:" + session.id)
                        indexes.update(self._indexes(session.sid, session.sub))
                    for index in indexes:
                        pipe.srem(index, key)
                deleted, *_ = await pipe.execute()
        return int(deleted)

    # -- lock and lifecycle -------------------------------------------------------------------

    @asynccontextmanager
    async def lock(
        self, name: str, *, ttl: float = 10.0, wait: float = 10.0
    ) -> AsyncIterator[None]:
        """Hold ``<prefix>lock:<name>`` across processes: ``async with backend.lock("x"): ...``.

        The lock expires after ``ttl`` seconds even if its holder dies (keep the guarded work
        shorter); release deletes it only if it is still ours. Waiting longer than ``wait``
        seconds, or Redis failing, raises :class:`TemporarilyUnavailable`.
        """
        key, token = self._prefix + "lock:" + name, random_token(16)
        deadline, delay = time.monotonic() + wait, 0.005
        while True:
            async with self._available("lock"):
                acquired = await self._redis().set(key, token, nx=True, px=max(1, int(ttl * 1000)))
            if acquired:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TemporarilyUnavailable(f"lock {name!r} still held after {wait:.1f} s")
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.1)
        try:
            yield
        finally:
            try:
                async with self._available("unlock"):
                    await self._redis().eval(_UNLOCK, 1, key, token)
            except TemporarilyUnavailable as err:  # it expires after ttl anyway
                logger.warning("lock %r not released: %s", name, err)

    async def share(self, name: str, session: SessionData, *, ttl: float) -> None:
        """Publish ``session`` (sealed) under ``name`` for ``ttl`` seconds, for other processes."""
        payload = session.model_dump(mode="json", exclude_defaults=True)
        sealed = self._sealer.seal(payload, purpose=PURPOSE, expires_at=self._clock() + ttl)
        async with self._available("share"):
            await self._redis().set(self._prefix + "shared:" + name, sealed, px=int(ttl * 1000))

    async def shared(self, name: str) -> SessionData | None:
        """What :meth:`share` published under ``name``, if still there."""
        async with self._available("shared"):
            raw = await self._redis().get(self._prefix + "shared:" + name)
        return None if raw is None else self._open(raw)

    async def first_use(self, name: str, *, ttl: float) -> bool:
        """True for the first caller across all processes (``SET NX``), e.g. a logout ``jti``."""
        async with self._available("first_use"):
            created = await self._redis().set(
                self._prefix + "once:" + name, b"1", nx=True, px=max(1000, int(ttl * 1000))
            )
        return bool(created)

    async def aclose(self) -> None:
        """Close the client if the backend created it (from ``url``)."""
        if self._url is not None and self._loop in (None, asyncio.get_running_loop()):
            await self._client.aclose()

    # -- helpers ------------------------------------------------------------------------------

    @asynccontextmanager
    async def _available(self, operation: str) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self._timeout):
                yield
        except (RedisError, OSError) as err:  # OSError covers ConnectionError, TimeoutError
            raise TemporarilyUnavailable(
                f"Redis session store: {operation} failed ({type(err).__name__})"
            ) from err

    def _indexes(self, sid: str | None, sub: str | None) -> list[str]:
        """The index sets of a session with that ``sid`` and ``sub`` (empty values: none)."""
        names = [self._prefix + "sid:" + sid] if sid else []
        return names + ([self._prefix + "sub:" + sub] if sub else [])

    def _open(self, raw: Any) -> SessionData | None:
        try:
            text = raw.decode("ascii") if isinstance(raw, bytes) else str(raw)
        except UnicodeDecodeError:
            return None
        payload = self._sealer.open(text, purpose=PURPOSE)
        if not isinstance(payload, dict):
            return None
        try:
            return SessionData.model_validate(payload)
        except ValidationError:
            return None
