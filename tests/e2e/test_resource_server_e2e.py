"""The resource-server standards against the real provider (panva's oidc-provider):

- RFC 7662: an opaque access token (a resource whose tokens are opaque) accepted through the
  provider's introspection endpoint; a revoked one refused once its cache entry ends; one
  introspection for 50 concurrent requests; two app processes sharing the cache through one
  real Redis; the provider down -> 503;
- RFC 9449: the provider's DPoP feature on, the test client makes the proofs (at the token
  endpoint and at the API): a DPoP-bound JWT accepted with its proof, refused as Bearer and
  when replayed; a DPoP-bound opaque token through introspection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from fastapi_oidc_guard import OfflineGrant, OIDCGuard
from fastapi_oidc_guard.testing import DPoPKey, FakeClock

from ..redis_server import RedisServer
from ..web import web_app
from ._provider import DEFAULT_API, OPAQUE_API, OIDCProviderProcess, drive_login
from ._server import AppProcess, ServedApp, free_port, free_socket

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


@pytest.fixture
def provider(make_oidc_provider: Callable[..., OIDCProviderProcess]) -> OIDCProviderProcess:
    return make_oidc_provider({"features": {"dPoP": {"enabled": True}}})


def client_credentials(
    provider: OIDCProviderProcess, resource: str, key: DPoPKey | None = None
) -> dict[str, Any]:
    """The provider's answer to a client-credentials grant for ``resource`` (DPoP-bound when
    ``key`` is given: the proof is for the token endpoint)."""
    endpoint = provider.discovery()["token_endpoint"]
    headers = {} if key is None else {"DPoP": key.proof("POST", endpoint)}
    answer = httpx.post(
        endpoint, auth=(provider.client_id, provider.client_secret), headers=headers,
        data={"grant_type": "client_credentials", "resource": resource, "scope": "api:read"},
        timeout=10.0,
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def api(provider: OIDCProviderProcess, audience: str, **settings: Any) -> FastAPI:
    return web_app(OIDCGuard(
        issuer=provider.issuer, audience=audience, client_id=provider.client_id,
        client_secret=provider.client_secret, **settings,
    ))  # fmt: skip


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_an_opaque_token_is_accepted_cached_and_refused_after_revocation(
    provider: OIDCProviderProcess,
) -> None:
    clock = FakeClock(time.time())
    app = api(provider, OPAQUE_API, token_validation="introspect_opaque", clock=clock)
    token = client_credentials(provider, OPAQUE_API)["access_token"]
    assert token.count(".") != 2  # opaque
    provider.reset_counters()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        answers = await asyncio.gather(*(c.get("/api/protected", headers=bearer(token))
                                         for _ in range(50)))  # fmt: skip
        assert {a.status_code for a in answers} == {200}
        assert answers[0].json()["userId"] == provider.client_id  # a client-credentials token
        assert provider.counters().get("introspection") == 1  # 50 requests, one call

        revoked = httpx.post(
            provider.discovery()["revocation_endpoint"], data={"token": token},
            auth=(provider.client_id, provider.client_secret), timeout=10.0,
        )  # fmt: skip
        assert revoked.status_code == 200
        assert (await c.get("/api/protected", headers=bearer(token))).status_code == 200  # cached
        clock.advance(61)  # the cache entry ends (introspection_cache_ttl)
        refused = await c.get("/api/protected", headers=bearer(token))
        assert refused.status_code == 401 and provider.counters().get("introspection") == 2
    await app.state.oidc_guard.aclose()


async def test_the_provider_down_is_503(provider: OIDCProviderProcess) -> None:
    app = api(provider, OPAQUE_API, token_validation="introspect_opaque")
    token = client_credentials(provider, OPAQUE_API)["access_token"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        await app.state.oidc_guard.discovery.get()  # discovery known, then the provider goes
        provider.stop()
        try:
            down = await c.get("/api/protected", headers=bearer(token))
            assert down.status_code == 503 and down.json()["error"] == "temporarily_unavailable"
        finally:
            provider.start()
    await app.state.oidc_guard.aclose()


def test_two_processes_share_introspection_through_redis(
    provider: OIDCProviderProcess, redis_server: RedisServer
) -> None:
    env = {
        "OIDC_ISSUER": provider.issuer, "OIDC_AUDIENCE": OPAQUE_API,
        "OIDC_CLIENT_ID": provider.client_id, "OIDC_CLIENT_SECRET": provider.client_secret,
        "OIDC_TOKEN_VALIDATION": "introspect_opaque", "OIDC_REDIS_URL": redis_server.url,
    }  # fmt: skip
    a = AppProcess("tests.e2e.multi_app:app", env, free_port())
    try:
        b = AppProcess("tests.e2e.multi_app:app", env, free_port())
        try:
            token = client_credentials(provider, OPAQUE_API)["access_token"]
            provider.reset_counters()
            first = httpx.get(f"{a.url}/api/protected", headers=bearer(token), timeout=10.0)
            assert first.status_code == 200, a.output()
            second = httpx.get(f"{b.url}/api/protected", headers=bearer(token), timeout=10.0)
            assert second.status_code == 200, b.output()
            assert provider.counters().get("introspection") == 1  # B used A's answer
        finally:
            b.stop()
    finally:
        a.stop()


async def test_a_dpop_bound_token_needs_its_proof(provider: OIDCProviderProcess) -> None:
    key = DPoPKey()
    issued = client_credentials(provider, DEFAULT_API, key)
    assert issued["token_type"] == "DPoP"
    token = issued["access_token"]
    app = api(provider, DEFAULT_API)
    url = "http://t/api/protected"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        headers = key.headers("GET", url, token)
        assert (await c.get("/api/protected", headers=headers)).json()[
            "userId"
        ] == provider.client_id
        assert (await c.get("/api/protected", headers=headers)).status_code == 401  # replayed
        assert (await c.get("/api/protected", headers=bearer(token))).status_code == 401
        other = DPoPKey()  # a thief's own key
        assert (
            await c.get("/api/protected", headers=other.headers("GET", url, token))
        ).status_code == 401
    await app.state.oidc_guard.aclose()


async def test_a_dpop_bound_opaque_token_through_introspection(
    provider: OIDCProviderProcess,
) -> None:
    key = DPoPKey()
    token = client_credentials(provider, OPAQUE_API, key)["access_token"]
    app = api(provider, OPAQUE_API, token_validation="introspect_opaque")
    url = "http://t/api/protected"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        ok = await c.get("/api/protected", headers=key.headers("GET", url, token))
        assert ok.status_code == 200, ok.text
        assert (await c.get("/api/protected", headers=bearer(token))).status_code == 401
    await app.state.oidc_guard.aclose()


def test_a_refresh_token_is_never_a_bearer_token_through_introspection(
    make_oidc_provider: Callable[..., OIDCProviderProcess],
) -> None:
    """The attack against the real provider: oidc-provider's introspection answers active for
    a refresh token (without token_type). Sent as a bearer token to an API that introspects
    opaque tokens, it is refused; the user's (opaque) access token is accepted. (oidc-provider
    answers inactive for its JWT access tokens: introspect_all suits providers that keep them.)"""
    sock = free_socket()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    provider = make_oidc_provider({"client": {"redirect_uris": [f"{base}/auth/callback"]}})
    web = OIDCGuard(  # logs in for the API whose access tokens are opaque
        issuer=provider.issuer, audience=OPAQUE_API, client_id=provider.client_id,
        client_secret=provider.client_secret, base_url=base, session_secret="r" * 40,
    )  # fmt: skip
    app = FastAPI(lifespan=web.lifespan)
    web.install(app)
    grants: list[OfflineGrant] = []

    @app.post("/remember-me")
    async def remember(request: Request) -> dict[str, str]:
        grants.append(await web.offline_grant(request))
        return {"ok": "stored"}

    with ServedApp(app, sock), httpx.Client(timeout=10) as browser:
        callback = drive_login(browser, f"{base}/auth/login?prompt=consent", login="rita")
        assert browser.get(callback, follow_redirects=False).status_code == 302
        assert browser.post(f"{base}/remember-me", headers={"Origin": base}).status_code == 200
        access = browser.get(f"{base}/auth/access-token").json()["access_token"]
    [grant] = grants
    answer = httpx.post(
        provider.discovery()["introspection_endpoint"], data={"token": grant.refresh_token},
        auth=(provider.client_id, provider.client_secret), timeout=10.0,
    ).json()  # fmt: skip
    # The provider's shape: active, no token_type and no aud. Two rules refuse it (the
    # audience, and "an answer that does not say access token"); the unit tests hold each.
    assert answer["active"] is True and "token_type" not in answer and "aud" not in answer

    assert access.count(".") != 2  # opaque: introspected, like the refresh token
    api_app = api(provider, OPAQUE_API, token_validation="introspect_opaque")

    async def call() -> tuple[int, int]:
        transport = httpx.ASGITransport(app=api_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            refused = await c.get("/api/protected", headers=bearer(grant.refresh_token))
            accepted = await c.get("/api/protected", headers=bearer(access))
        await api_app.state.oidc_guard.aclose()
        return refused.status_code, accepted.status_code

    assert asyncio.run(call()) == (401, 200)
