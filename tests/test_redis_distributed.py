"""Several instances sharing one real Redis: a session created on A works on B; concurrent
refreshes split across A and B spend the refresh token once; a back-channel logout delivered to A
ends the session on B; a replayed logout token is refused by the other instance too.

Each instance here is a separate app with its own guard, token service and Redis connection (what
a second process has); only the provider (the fake issuer) and Redis are shared.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from fastapi_oidc_guard.sessions.redis import RedisSessionBackend
from fastapi_oidc_guard.sessions.sealing import Sealer
from fastapi_oidc_guard.testing import FakeClock, FakeIssuer, alogin

from .redis_server import RedisServer
from .test_backchannel import logout_token
from .web import BASE_URL, SECRET, web_app, web_guard

pytestmark = pytest.mark.anyio


@pytest.fixture
async def instances(
    redis_server: RedisServer, issuer: FakeIssuer, clock: FakeClock
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    clients, backends = [], []
    for _ in range(2):
        backend = RedisSessionBackend(sealer=Sealer([SECRET], clock=clock), url=redis_server.url,
                                      clock=clock)  # fmt: skip
        app = web_app(web_guard(issuer, clock, session_backend=backend))
        backends.append(backend)
        clients.append(httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL))
    yield clients[0], clients[1]
    for client, backend in zip(clients, backends, strict=True):
        await client.aclose()
        await backend.aclose()


def share_cookie(source: httpx.AsyncClient, target: httpx.AsyncClient) -> None:
    target.cookies.set("oidc_session", source.cookies["oidc_session"])


async def test_session_from_a_works_on_b(
    instances: tuple[httpx.AsyncClient, httpx.AsyncClient], issuer: FakeIssuer
) -> None:
    a, b = instances
    issuer.login_as("shared-user")
    await alogin(a, issuer)
    share_cookie(a, b)
    assert (await b.get("/api/protected")).json()["userId"] == "shared-user"


async def test_concurrent_refreshes_across_instances_spend_the_token_once(
    instances: tuple[httpx.AsyncClient, httpx.AsyncClient],
    issuer: FakeIssuer,
    clock: FakeClock,
) -> None:
    a, b = instances
    await alogin(a, issuer)
    share_cookie(a, b)
    clock.advance(3600)
    issuer.latency = 0.05
    calls = [(a if n % 2 else b).get("/api/token") for n in range(20)]
    responses: list[Any] = await asyncio.gather(*calls)
    issuer.latency = 0
    assert [r.status_code for r in responses] == [200] * 20, [r.text for r in responses]
    assert len({r.json()["token"] for r in responses}) == 1
    assert issuer.oauth.grants["refresh_token"] == 1
    assert not any(g.revoked for g in issuer.oauth.used_refresh.values())
    assert (await b.get("/api/protected")).status_code == 200  # nobody was logged out


async def test_backchannel_logout_on_a_ends_the_session_on_b(
    instances: tuple[httpx.AsyncClient, httpx.AsyncClient], issuer: FakeIssuer
) -> None:
    a, b = instances
    await alogin(a, issuer)
    share_cookie(a, b)
    sid = next(iter(issuer.oauth.refresh.values())).sid
    token = logout_token(issuer, sid=sid, jti=secrets.token_hex(8))
    assert (
        await a.post("/auth/backchannel-logout", data={"logout_token": token})
    ).status_code == 200
    assert (await b.get("/api/protected")).status_code == 401
    # The same logout token replayed to the other instance is refused (jti shared in Redis).
    replay = await b.post("/auth/backchannel-logout", data={"logout_token": token})
    assert replay.status_code == 400


async def test_one_redis_round_trip_per_request(
    instances: tuple[httpx.AsyncClient, httpx.AsyncClient],
    issuer: FakeIssuer,
    redis_server: RedisServer,
) -> None:
    import redis as sync_redis

    a, _ = instances
    await alogin(a, issuer)
    raw = sync_redis.Redis.from_url(redis_server.url, decode_responses=True)
    raw.config_resetstat()
    for _ in range(10):
        assert (await a.get("/api/protected")).status_code == 200
    stats = raw.info("commandstats")
    raw.close()
    calls = {name: data["calls"] for name, data in stats.items() if name != "cmdstat_info"}
    calls.pop("cmdstat_config|resetstat", None)
    assert calls == {"cmdstat_hget": 10}, calls


async def test_two_instances_two_audiences_never_spend_a_rotated_token_twice(
    instances: tuple[httpx.AsyncClient, httpx.AsyncClient], issuer: FakeIssuer, clock: FakeClock
) -> None:
    """A page calls two APIs at once and the requests land on A and B: B must continue from
    the refresh token A's refresh rotated, not spend the old one (the provider would revoke
    the grant)."""
    a, b = instances
    await alogin(a, issuer)
    share_cookie(a, b)
    clock.advance(3600)
    issuer.latency = 0.05  # both are in flight together
    first, second = await asyncio.gather(a.get("/api/token"), b.get("/api/token-other"))
    issuer.latency = 0
    assert (first.status_code, second.status_code) == (200, 200), second.text
    assert not any(g.revoked for g in issuer.oauth.used_refresh.values())
    assert (await a.get("/api/protected")).status_code == 200
