"""What the Redis session store and the Redis revocation list share: the connection (rebuilt
when the event loop changes), timeouts turned into 503s, sealing at rest, and the cross-process
primitives of :class:`~.base.SharedState` (a lock, published refresh outcomes, once-only ids).
"""

from __future__ import annotations

import asyncio
import logging
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
        "the Redis backend needs redis-py: pip install oidc-guard-fastapi[redis]"
    ) from err

__all__ = ["RedisClient", "text"]

logger = logging.getLogger("fastapi_oidc_guard")

PURPOSE = "redis-session"
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class RedisClient:
    """Base of the Redis classes. Pass ``client`` (a ``redis.asyncio.Redis`` you own and
    close) or ``url`` (the class creates the client with ``timeout`` as socket timeouts and
    closes it in :meth:`aclose`). ``timeout`` also bounds each call as a whole; any Redis
    failure is :class:`TemporarilyUnavailable` (503), never a silent logout."""

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
        name = type(self).__name__
        if (client is None) == (url is None):
            raise ConfigurationError(f"{name}: pass exactly one of client= or url=")
        if not timeout > 0:
            raise ConfigurationError(f"{name}: timeout must be positive")
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

    @asynccontextmanager
    async def _available(self, operation: str) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self._timeout):
                yield
        except (RedisError, OSError) as err:  # OSError covers ConnectionError, TimeoutError
            raise TemporarilyUnavailable(
                f"Redis: {operation} failed ({type(err).__name__})"
            ) from err

    def _seal(self, session: SessionData, *, expires_at: float) -> str:
        payload = session.model_dump(mode="json", exclude_defaults=True)
        return self._sealer.seal(payload, purpose=PURPOSE, expires_at=expires_at)

    def _open(self, raw: Any) -> SessionData | None:
        try:
            value = raw.decode("ascii") if isinstance(raw, bytes) else str(raw)
        except UnicodeDecodeError:
            return None
        payload = self._sealer.open(value, purpose=PURPOSE)
        if not isinstance(payload, dict):
            return None
        try:
            return SessionData.model_validate(payload)
        except ValidationError:
            return None

    # -- SharedState ----------------------------------------------------------------------------

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
        sealed = self._seal(session, expires_at=self._clock() + ttl)
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

    async def get_value(self, name: str) -> bytes | None:
        """The value stored under ``<prefix>value:<name>``, if any (already sealed by whoever
        wrote it: this layer stores what it is given)."""
        async with self._available("get_value"):
            raw = await self._redis().get(self._prefix + "value:" + name)
        return raw if isinstance(raw, bytes) else None

    async def put_value(self, name: str, value: str, *, ttl: float) -> None:
        """Store ``value`` under ``<prefix>value:<name>`` for ``ttl`` seconds."""
        async with self._available("put_value"):
            await self._redis().set(self._prefix + "value:" + name, value,
                                    px=max(1, int(ttl * 1000)))  # fmt: skip

    async def aclose(self) -> None:
        """Close the client if this object created it (from ``url``)."""
        if self._url is not None and self._loop in (None, asyncio.get_running_loop()):
            await self._client.aclose()
