"""RFC 7662 introspection: opaque tokens accepted through the provider, every rule of the
answer as an attack (crafted answers), the cache (until exp or the TTL; inactive briefly),
one call for concurrent requests, a cache shared through a real Redis (sealed, keyed by a
hash, tamper-proof), and the provider's failures as 503, never 401 and never "accept"."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from fastapi_oidc_guard import ConfigurationError, OIDCGuard, User, require_scopes, require_user
from fastapi_oidc_guard.testing import DPoPKey, FakeClock, FakeIssuer

from .redis_server import RedisServer


def api(issuer: FakeIssuer, clock: FakeClock, **settings: Any) -> FastAPI:
    settings.setdefault("token_validation", "introspect_opaque")
    settings.setdefault("client_secret", issuer.client_secret)
    settings.setdefault("audience", issuer.audience)
    guard = OIDCGuard(
        issuer=issuer.issuer, transport=issuer.transport, clock=clock,
        client_id=issuer.client_id, **settings,
    )  # fmt: skip
    app = FastAPI(lifespan=guard.lifespan)
    guard.install(app)

    @app.get("/api/me")
    async def me(user: User = Depends(require_user)) -> dict[str, Any]:
        return {"sub": user.sub, "kind": user.principal, "scopes": sorted(user.scopes)}

    @app.get("/api/admin")
    async def admin(user: User = Depends(require_scopes("admin"))) -> dict[str, str]:
        return {"sub": user.sub}

    return app


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(issuer: FakeIssuer, clock: FakeClock) -> Any:
    with TestClient(api(issuer, clock)) as test_client:
        yield test_client


def calls(issuer: FakeIssuer) -> int:
    return issuer.requests["introspect"]


def test_an_active_opaque_token_is_accepted(client: TestClient, issuer: FakeIssuer) -> None:
    token = issuer.mint_opaque(sub="alice", scope="openid admin")
    assert client.get("/api/me", headers=bearer(token)).json() == {
        "sub": "alice", "kind": "user", "scopes": ["admin", "openid"],
    }  # fmt: skip
    assert client.get("/api/admin", headers=bearer(token)).status_code == 200
    assert calls(issuer) == 1  # the second request used the cache


def test_a_client_credentials_token_is_the_clients(client: TestClient, issuer: FakeIssuer) -> None:
    token = issuer.mint_opaque(sub=None, client_id="svc-reports")
    assert client.get("/api/me", headers=bearer(token)).json()["sub"] == "svc-reports"


def test_jwts_are_still_verified_here_with_introspect_opaque(
    client: TestClient, issuer: FakeIssuer
) -> None:
    assert client.get("/api/me", headers=bearer(issuer.mint())).status_code == 200
    assert calls(issuer) == 0


def test_introspect_all_asks_about_jwts_too(issuer: FakeIssuer, clock: FakeClock) -> None:
    """For providers whose deactivation must take effect at once: a JWT the provider says is
    inactive is refused, although its signature is good."""
    jwt = issuer.mint(sub="alice")
    with TestClient(api(issuer, clock, token_validation="introspect_all")) as client:
        assert client.get("/api/me", headers=bearer(jwt)).status_code == 401
        issuer.oauth.introspected[jwt] = {
            "active": True,
            "token_type": "Bearer",
            **issuer.claims(sub="alice"),
        }
        clock.advance(6)  # past the inactive answer's cache
        assert client.get("/api/me", headers=bearer(jwt)).json()["sub"] == "alice"
    assert calls(issuer) == 2


AUD = "https://api.example.test"

CRAFTED: dict[str, Any] = {
    "inactive": {"active": False, "sub": "alice"},
    "active as a string": {"active": "true", "sub": "alice", "aud": AUD},
    "active missing": {"sub": "alice", "aud": AUD},
    "another audience": {"active": True, "sub": "alice", "aud": "https://other.example"},
    "no audience": {"active": True, "sub": "alice"},
    "another issuer": {"active": True, "sub": "alice", "aud": AUD, "iss": "https://evil.example"},
    "a huge exp": {"active": True, "sub": "alice", "aud": AUD, "exp": 10**400},
    "exp a string": {"active": True, "sub": "alice", "aud": AUD, "exp": "tomorrow"},
    "expired": {"active": True, "sub": "alice", "aud": AUD, "exp": 1_700_000_000},
    "not yet valid": {"active": True, "sub": "alice", "aud": AUD, "nbf": 1_900_000_000},
    "a refresh token": {"active": True, "sub": "alice", "aud": AUD, "token_type": "refresh_token"},
    "token_type not a string": {"active": True, "sub": "alice", "aud": AUD, "token_type": 1},
    "no token_type (a refresh token)": {"active": True, "sub": "alice", "aud": AUD},
    "typ Refresh (Keycloak)": {"active": True, "sub": "alice", "aud": AUD, "typ": "Refresh"},
    "no sub, no client_id": {"active": True, "aud": AUD},
    "an empty sub": {"active": True, "sub": "", "aud": AUD},
    "sub not a string": {"active": True, "sub": 7, "aud": AUD},
    "an array": [{"active": True, "sub": "alice", "aud": AUD}],
    "token_type DPoP without cnf": {
        "active": True,
        "sub": "alice",
        "aud": AUD,
        "token_type": "DPoP",
    },
}


@pytest.mark.parametrize("case", list(CRAFTED))
def test_a_crafted_answer_is_refused(client: TestClient, issuer: FakeIssuer, case: str) -> None:
    token = "opaque-" + hashlib.sha256(case.encode()).hexdigest()
    issuer.oauth.introspected[token] = CRAFTED[case]
    response = client.get("/api/me", headers=bearer(token))
    assert response.status_code in (401, 503), response.text
    if case == "an array":
        assert response.status_code == 503  # not an answer: the provider is broken
    else:
        assert response.status_code == 401 and response.json()["error"] == "invalid_token"


def test_the_issuer_itself_is_accepted_in_the_answer(
    client: TestClient, issuer: FakeIssuer
) -> None:
    token = issuer.mint_opaque(iss=issuer.issuer)
    assert client.get("/api/me", headers=bearer(token)).status_code == 200


@pytest.mark.parametrize("mode", ["down", "error", "garbage"])
def test_the_provider_failing_is_503_never_401_or_accept(
    client: TestClient, issuer: FakeIssuer, mode: Any
) -> None:
    token = issuer.mint_opaque()
    client.get("/.well-known/oauth-protected-resource")  # nothing cached for the token
    with issuer.outage(mode):
        response = client.get("/api/me", headers=bearer(token))
    assert response.status_code == 503 and "Retry-After" in response.headers
    assert client.get("/api/me", headers=bearer(token)).status_code == 200  # back: asked again


def test_wrong_app_credentials_are_503_and_logged(
    issuer: FakeIssuer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    token = issuer.mint_opaque()
    app = api(issuer, clock, client_secret="wrong-secret")
    with TestClient(app) as client, caplog.at_level("ERROR", logger="fastapi_oidc_guard"):
        response = client.get("/api/me", headers=bearer(token))
    assert response.status_code == 503
    assert any("credentials" in r.getMessage() for r in caplog.records)


def test_no_introspection_endpoint_is_503(issuer: FakeIssuer, clock: FakeClock) -> None:
    original = issuer.discovery_document

    def without() -> dict[str, Any]:
        return {k: v for k, v in original().items() if k != "introspection_endpoint"}

    issuer.discovery_document = without  # type: ignore[method-assign]
    with TestClient(api(issuer, clock)) as client:
        assert client.get("/api/me", headers=bearer(issuer.mint_opaque())).status_code == 503


def test_a_revoked_token_is_refused_once_its_cache_entry_ends(
    client: TestClient, issuer: FakeIssuer, clock: FakeClock
) -> None:
    token = issuer.mint_opaque()
    assert client.get("/api/me", headers=bearer(token)).status_code == 200
    issuer.oauth.revoked_tokens.add(token)
    assert client.get("/api/me", headers=bearer(token)).status_code == 200  # still cached
    clock.advance(61)  # introspection_cache_ttl
    assert client.get("/api/me", headers=bearer(token)).status_code == 401
    assert calls(issuer) == 2


def test_an_entry_never_outlives_the_tokens_exp(
    client: TestClient, issuer: FakeIssuer, clock: FakeClock
) -> None:
    token = issuer.mint_opaque(exp=int(clock()) + 10)
    assert client.get("/api/me", headers=bearer(token)).status_code == 200
    clock.advance(10 + 31)  # past exp and the leeway, well within the TTL
    assert client.get("/api/me", headers=bearer(token)).status_code == 401


def test_an_inactive_answer_is_cached_briefly(
    client: TestClient, issuer: FakeIssuer, clock: FakeClock
) -> None:
    for _ in range(3):
        assert client.get("/api/me", headers=bearer("unknown-token")).status_code == 401
    assert calls(issuer) == 1
    clock.advance(6)
    client.get("/api/me", headers=bearer("unknown-token"))
    assert calls(issuer) == 2


@pytest.mark.parametrize("token", ["x" * 9000, "has space", "bad\u00e9char", "a,b"])
def test_junk_is_refused_before_any_call(
    client: TestClient, issuer: FakeIssuer, token: str
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    try:
        response = client.get("/api/me", headers=headers)
    except UnicodeEncodeError:
        return  # the client cannot even send it
    assert response.status_code == 401 and calls(issuer) == 0


def test_a_dpop_bound_opaque_token_is_refused_as_bearer(
    client: TestClient, issuer: FakeIssuer, clock: FakeClock
) -> None:
    key = DPoPKey(clock=clock)
    token = issuer.mint_opaque(cnf={"jkt": key.jkt})
    assert client.get("/api/me", headers=bearer(token)).status_code == 401
    ok = client.get("/api/me", headers=key.headers("GET", "http://testserver/api/me", token))
    assert ok.status_code == 200


def test_introspection_needs_the_apps_client() -> None:
    with pytest.raises(ConfigurationError, match="OIDC_CLIENT_ID"):
        OIDCGuard(issuer="https://idp.example.com", audience=AUD, token_validation="introspect_all")


pytestmark = pytest.mark.anyio


async def test_fifty_concurrent_requests_make_one_call(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    app = api(issuer, clock)
    token = issuer.mint_opaque()
    issuer.latency = 0.05
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        answers = await asyncio.gather(
            *(c.get("/api/me", headers=bearer(token)) for _ in range(50))
        )
    assert {a.status_code for a in answers} == {200}
    assert calls(issuer) == 1
    await app.state.oidc_guard.aclose()


async def test_two_instances_share_the_cache_through_redis(
    redis_server: RedisServer, issuer: FakeIssuer, clock: FakeClock
) -> None:
    apps = [api(issuer, clock, redis_url=redis_server.url) for _ in range(2)]
    clients = [httpx.AsyncClient(transport=httpx.ASGITransport(app=a), base_url="http://t")
               for a in apps]  # fmt: skip
    try:
        token = issuer.mint_opaque(sub="alice-marker")
        assert (await clients[0].get("/api/me", headers=bearer(token))).status_code == 200
        assert (await clients[1].get("/api/me", headers=bearer(token))).status_code == 200
        assert calls(issuer) == 1  # B used A's answer

        import redis.asyncio as redis

        raw = redis.Redis.from_url(redis_server.url)
        key = "oidc:value:introspect:" + hashlib.sha256(token.encode()).hexdigest()
        stored = await raw.get(key)
        assert stored is not None and token.encode() not in stored and b"alice" not in stored

        # An attacker who can write to Redis copies the entry to their own token's key, and
        # plants a forged one: both are no entry; the provider is asked (and says inactive).
        forged_token = "attacker-token"
        forged_key = "oidc:value:introspect:" + hashlib.sha256(forged_token.encode()).hexdigest()
        await raw.set(forged_key, stored)
        refused = await clients[1].get("/api/me", headers=bearer(forged_token))
        assert refused.status_code == 401
        other = "other-token"
        await raw.set("oidc:value:introspect:" + hashlib.sha256(other.encode()).hexdigest(),
                      b'{"active": true, "sub": "admin"}')  # fmt: skip
        assert (await clients[1].get("/api/me", headers=bearer(other))).status_code == 401
        assert calls(issuer) == 3
        await raw.aclose()
    finally:
        for c in clients:
            await c.aclose()
        for a in apps:
            await a.state.oidc_guard.aclose()


async def test_two_apis_on_one_redis_never_share_a_verdict(
    redis_server: RedisServer, issuer: FakeIssuer, clock: FakeClock
) -> None:
    """Review of #16: two APIs of one issuer (other audiences) sharing Redis and the client
    secret. A token for A cached by A must not be accepted by B, and B's refusal of A's token
    must not make A refuse it: only the provider's raw answer is shared."""
    orders, billing = "https://orders.example.test", "https://billing.example.test"
    apps = [
        api(issuer, clock, audience=aud, redis_url=redis_server.url) for aud in (orders, billing)
    ]
    a, b = (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=x), base_url="http://t") for x in apps
    )
    try:
        for_a = issuer.mint_opaque(aud=orders, sub="alice")
        assert (await a.get("/api/me", headers=bearer(for_a))).status_code == 200
        assert (await b.get("/api/me", headers=bearer(for_a))).status_code == 401
        second = issuer.mint_opaque(aud=orders, sub="alice")
        assert (await b.get("/api/me", headers=bearer(second))).status_code == 401
        assert (await a.get("/api/me", headers=bearer(second))).status_code == 200
    finally:
        await a.aclose()
        await b.aclose()
        for x in apps:
            await x.state.oidc_guard.aclose()


async def test_a_shared_answer_is_never_older_than_the_readers_ttl(
    redis_server: RedisServer, issuer: FakeIssuer, clock: FakeClock
) -> None:
    """Second review of #16: A (TTL 300 s) shares an answer; B (TTL 5 s, to see revocations
    at once) must not reuse it for A's 300 s."""
    slow = api(issuer, clock, redis_url=redis_server.url, introspection_cache_ttl=300)
    quick = api(issuer, clock, redis_url=redis_server.url, introspection_cache_ttl=5)
    a, b = (httpx.AsyncClient(transport=httpx.ASGITransport(app=x), base_url="http://t")
            for x in (slow, quick))  # fmt: skip
    try:
        token = issuer.mint_opaque()
        assert (await a.get("/api/me", headers=bearer(token))).status_code == 200
        assert (await b.get("/api/me", headers=bearer(token))).status_code == 200  # shared
        assert calls(issuer) == 1
        issuer.oauth.revoked_tokens.add(token)
        clock.advance(6)
        assert (await b.get("/api/me", headers=bearer(token))).status_code == 401
        assert calls(issuer) == 2
    finally:
        await a.aclose()
        await b.aclose()
        for x in (slow, quick):
            await x.state.oidc_guard.aclose()
