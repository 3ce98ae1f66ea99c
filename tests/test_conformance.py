"""The conformance kit (``fastapi_oidc_guard.testing.conformance``) run on every backend we
ship: memory, Redis (two clients of one real redis-server, as two processes have), and the
stateless cookie sessions (in-process revocations, and revocations shared through Redis)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from fastapi_oidc_guard import MemorySessionBackend, SessionBackend
from fastapi_oidc_guard.sessions.redis import RedisSessionBackend
from fastapi_oidc_guard.sessions.sealing import Sealer
from fastapi_oidc_guard.testing import FakeClock
from fastapi_oidc_guard.testing.conformance import (
    SessionBackendConformance,
    SessionLayerConformance,
)

from .redis_server import RedisServer
from .web import SECRET


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


class TestMemoryBackend(SessionBackendConformance):
    @pytest.fixture
    def backend(self, clock: FakeClock) -> SessionBackend:
        return MemorySessionBackend(clock=clock)


async def redis_store(clock: FakeClock, url: str) -> AsyncIterator[SessionBackend]:
    """One client of the shared redis-server (each process of an app has its own)."""
    store = RedisSessionBackend(sealer=Sealer([SECRET], clock=clock), url=url, clock=clock)
    yield store
    await store.aclose()


class TestRedisBackend(SessionBackendConformance):
    @pytest.fixture
    async def backend(self, clock: FakeClock, redis_url: str) -> AsyncIterator[SessionBackend]:
        async for store in redis_store(clock, redis_url):
            yield store

    @pytest.fixture
    async def backend_twin(self, clock: FakeClock, redis_url: str) -> AsyncIterator[SessionBackend]:
        async for store in redis_store(clock, redis_url):
            yield store


class TestCookieSessions(SessionLayerConformance):
    shared_across_instances = False  # revocations stay in the process (documented)


class TestCookieSessionsWithRedisRevocations(SessionLayerConformance):
    @pytest.fixture
    def instance_options(self, redis_url: str) -> tuple[dict[str, Any], dict[str, Any]]:
        return {"redis_url": redis_url}, {"redis_url": redis_url}
