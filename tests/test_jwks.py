"""The JWKS cache policy (docs/architecture.md, "where each rule lives"), one test per property,
on the remote key set itself against the fake issuer."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from fastapi_oidc_guard import (
    GuardConfig,
    KeyNotFound,
    KeySetUnavailable,
    OIDCGuard,
    StaticKeySet,
    TemporarilyUnavailable,
    UnusableKey,
)
from fastapi_oidc_guard._http import build_client
from fastapi_oidc_guard.issuers import build_issuer_stack
from fastapi_oidc_guard.jose import parse_jwk
from fastapi_oidc_guard.testing import FakeClock, FakeIssuer, SigningKey

from .conftest import build_app

pytestmark = pytest.mark.anyio


class KeySetSeam:
    """The remote key set itself (with its discovery document and a verifier on top), built
    the way the guard builds it but without a guard or an app: the JWKS policy is tested where
    it lives. Whole-app tests (concurrent requests, 503s) use :func:`make_app_guard`."""

    def __init__(self, issuer: FakeIssuer, clock: FakeClock, **settings: Any) -> None:
        cfg = GuardConfig(issuer=issuer.issuer, audience=issuer.audience, clock=clock, **settings)
        self._client = build_client(timeout=cfg.http_timeout, transport=issuer.transport)
        stack = build_issuer_stack(
            cfg, issuer=cfg.issuer, audience=cfg.audience, client=lambda: self._client
        )
        self.discovery, self.keys, self.verifier = stack.discovery, stack.keys, stack.verifier

    async def aclose(self) -> None:
        self.keys.close()
        self.discovery.close()
        await self._client.aclose()


def make_guard(issuer: FakeIssuer, clock: FakeClock, **settings: Any) -> KeySetSeam:
    return KeySetSeam(issuer, clock, **settings)


def make_app_guard(issuer: FakeIssuer, clock: FakeClock, **settings: Any) -> OIDCGuard:
    return OIDCGuard(
        issuer=issuer.issuer,
        audience=issuer.audience,
        transport=issuer.transport,
        clock=clock,
        **settings,
    )


def asgi_client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_keys_are_parsed_once_per_fetch(issuer: FakeIssuer, clock: FakeClock) -> None:
    guard = make_guard(issuer, clock)
    await guard.verifier.verify_access_token(issuer.mint(sub="first"))
    keys = guard.keys.keys
    verifiers = [dict(key.verifiers) for key in keys]
    for n in range(50):
        await guard.verifier.verify_access_token(issuer.mint(sub=f"user-{n}"))
    assert guard.keys.keys is keys
    assert [dict(key.verifiers) for key in guard.keys.keys] == verifiers
    assert issuer.requests["jwks"] == 1
    await guard.aclose()


async def test_200_concurrent_first_requests_cause_one_fetch(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    guard = make_app_guard(issuer, clock)
    app = build_app(guard)
    issuer.latency = 0.01
    tokens = [issuer.mint(sub=f"user-{n}") for n in range(200)]
    async with asgi_client(app) as client:
        responses = await asyncio.gather(
            *(client.get("/api/protected", headers=bearer(t)) for t in tokens)
        )
    assert [r.status_code for r in responses] == [200] * 200
    assert issuer.requests["jwks"] == 1
    assert issuer.requests["discovery"] == 1
    await guard.aclose()


async def test_500_random_kids_cost_at_most_one_fetch_and_valid_tokens_pass(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    guard = make_app_guard(issuer, clock)
    app = build_app(guard)
    async with asgi_client(app) as client:
        assert (
            await client.get("/api/protected", headers=bearer(issuer.mint()))
        ).status_code == 200
        fetches_after_warmup = issuer.requests["jwks"]
        forged = [
            issuer.mint(key=SigningKey.generate("ES256", kid=secrets.token_hex(8)))
            for _ in range(500)
        ]
        valid = [issuer.mint(sub=f"user-{n}") for n in range(50)]
        mixed = [*forged[:250], *valid, *forged[250:]]
        responses = await asyncio.gather(
            *(client.get("/api/protected", headers=bearer(t)) for t in mixed)
        )
    by_token = dict(zip(mixed, responses, strict=True))
    assert all(by_token[t].status_code == 401 for t in forged)
    assert all(by_token[t].status_code == 200 for t in valid)
    assert issuer.requests["jwks"] - fetches_after_warmup <= 1
    await guard.aclose()


async def test_random_kids_refetch_again_only_after_the_cooldown(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    guard = make_guard(issuer, clock)
    await guard.keys.warm()
    for _ in range(3):
        for _ in range(20):
            with pytest.raises(KeyNotFound):
                await guard.keys.get_key(kid=secrets.token_hex(8), alg="RS256")
        clock.advance(31)
    assert issuer.requests["jwks"] == 1 + 3


async def test_rotated_key_is_accepted_on_first_sight(issuer: FakeIssuer, clock: FakeClock) -> None:
    guard = make_guard(issuer, clock)
    await guard.keys.warm()  # routine start-up fetch: must not start the cooldown
    issuer.rotate()
    claims = await guard.verifier.verify_access_token(issuer.mint(sub="after-rotation"))
    assert claims["sub"] == "after-rotation"
    assert issuer.requests["jwks"] == 2
    await guard.aclose()


async def test_second_rotation_within_cooldown_waits_for_the_cooldown(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    guard = make_guard(issuer, clock)
    await guard.keys.warm()
    issuer.rotate()
    await guard.verifier.verify_access_token(issuer.mint())
    issuer.rotate()
    token = issuer.mint()
    with pytest.raises(KeyNotFound):
        await guard.verifier.verify_access_token(token)
    clock.advance(31)
    assert (await guard.verifier.verify_access_token(token))["sub"] == "user-1"
    await guard.aclose()


@pytest.mark.parametrize("mode", ["down", "error", "garbage", "empty"])
async def test_outage_after_warmup_serves_last_good_keys(
    issuer: FakeIssuer, clock: FakeClock, mode: Any
) -> None:
    guard = make_guard(issuer, clock)
    await guard.verifier.verify_access_token(issuer.mint())
    with issuer.outage(mode):
        clock.advance(601)  # past the max age
        await guard.verifier.verify_access_token(issuer.mint(sub="a"))
        await asyncio.sleep(0)  # let the background refresh fail
        await guard.verifier.verify_access_token(issuer.mint(sub="b"))
        clock.advance(3600 * 20)  # well past max age, within the 24 h stale limit
        assert (await guard.verifier.verify_access_token(issuer.mint(sub="c")))["sub"] == "c"
        assert guard.keys.keys  # never wiped
    await guard.aclose()


async def test_stale_beyond_limit_is_503_not_accept(issuer: FakeIssuer, clock: FakeClock) -> None:
    guard = make_guard(issuer, clock, jwks_stale_limit=3600)
    await guard.verifier.verify_access_token(issuer.mint())
    with issuer.outage("down"):
        clock.advance(3601)
        with pytest.raises(KeySetUnavailable):
            await guard.verifier.verify_access_token(issuer.mint(sub="late"))
    clock.advance(31)  # provider back, past the retry backoff
    assert (await guard.verifier.verify_access_token(issuer.mint(sub="back")))["sub"] == "back"
    await guard.aclose()


@pytest.mark.parametrize("mode", ["down", "error", "garbage", "empty"])
async def test_no_keys_at_all_is_503(issuer: FakeIssuer, clock: FakeClock, mode: Any) -> None:
    guard = make_app_guard(issuer, clock)
    app = build_app(guard)
    with issuer.outage(mode):
        async with asgi_client(app) as client:
            response = await client.get("/api/protected", headers=bearer(issuer.mint()))
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert response.headers["Retry-After"].isdigit()
    await guard.aclose()


async def test_failed_first_fetch_is_retried_after_backoff_not_per_request(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    guard = make_guard(issuer, clock)
    with issuer.outage("error"):
        for _ in range(10):
            with pytest.raises(TemporarilyUnavailable):
                await guard.verifier.verify_access_token(issuer.mint())
    assert sum(issuer.requests.values()) == 1  # discovery failed once, then backoff
    clock.advance(31)
    await guard.discovery.get()
    with issuer.outage("garbage"):
        clock.advance(31)
        for _ in range(10):
            with pytest.raises(KeySetUnavailable):
                await guard.verifier.verify_access_token(issuer.mint())
    assert issuer.requests["jwks"] == 1
    clock.advance(31)
    assert (await guard.verifier.verify_access_token(issuer.mint()))["sub"] == "user-1"
    await guard.aclose()


CHEAP_REJECTIONS: list[Any] = [
    pytest.param(lambda i: "not-a-token", id="malformed"),
    pytest.param(lambda i: i.mint(pad="x" * 9000), id="too-large"),
    pytest.param(lambda i: i.mint(alg="HS256"), id="alg-hs256"),
    pytest.param(lambda i: i.mint(iss="https://evil.example"), id="foreign-iss"),
    pytest.param(lambda i: i.mint(exp=1), id="expired"),
    pytest.param(lambda i: i.mint(aud="https://other.example"), id="wrong-aud"),
]


@pytest.mark.parametrize("build", CHEAP_REJECTIONS)
async def test_cheap_checks_never_cause_network_io(
    issuer: FakeIssuer, clock: FakeClock, build: Any
) -> None:
    guard = make_app_guard(issuer, clock)
    app = build_app(guard)
    token = build(issuer)
    async with asgi_client(app) as client:
        for _ in range(5):
            response = await client.get("/api/protected", headers=bearer(token))
            assert response.status_code == 401
    assert sum(issuer.requests.values()) == 0
    await guard.aclose()


async def test_routine_refresh_runs_in_the_background(issuer: FakeIssuer, clock: FakeClock) -> None:
    guard = make_guard(issuer, clock)
    await guard.verifier.verify_access_token(issuer.mint())
    issuer.gate = asyncio.Event()  # the provider now holds every answer
    clock.advance(451)  # 3/4 of the 600 s max age
    # The request does not wait for the refresh (which is stuck at the provider).
    claims = await asyncio.wait_for(guard.verifier.verify_access_token(issuer.mint(sub="x")), 5)
    assert claims["sub"] == "x"
    await asyncio.sleep(0)
    assert issuer.requests["jwks"] == 2  # refresh started...
    issuer.gate.set()  # ...and completes once the provider answers
    await guard.keys.get_key(kid=issuer.signing_key.kid, alg="RS256")
    await guard.aclose()


@pytest.mark.parametrize(
    ("cache_control", "refresh_after"),
    [
        pytest.param("public, max-age=120", 91, id="honoured"),
        pytest.param("max-age=5", 46, id="clamped-to-1-minute"),
        pytest.param("max-age=9999999", 64_801, id="clamped-to-24-hours"),
        pytest.param(None, 451, id="default-10-minutes"),
    ],
)
async def test_cache_control_max_age_is_honoured_within_bounds(
    issuer: FakeIssuer, clock: FakeClock, cache_control: str | None, refresh_after: float
) -> None:
    issuer.jwks_cache_control = cache_control
    guard = make_guard(issuer, clock)
    await guard.keys.warm()
    clock.advance(refresh_after - 2)
    await guard.keys.get_key(kid=issuer.signing_key.kid, alg="RS256")
    await asyncio.sleep(0)
    assert issuer.requests["jwks"] == 1
    clock.advance(2)
    await guard.keys.get_key(kid=issuer.signing_key.kid, alg="RS256")
    await asyncio.sleep(0)
    assert issuer.requests["jwks"] == 2
    await guard.aclose()


async def test_unusable_key_is_rejected_without_refetch(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    enc = SigningKey.generate("RS256")
    enc.jwk_extra["use"] = "enc"
    issuer.keys.append(enc)
    guard = make_guard(issuer, clock)
    for _ in range(5):
        with pytest.raises(UnusableKey):
            await guard.verifier.verify_access_token(issuer.mint(key=enc))
    assert issuer.requests["jwks"] == 1
    await guard.aclose()


async def test_static_key_set_is_a_drop_in_seam(issuer: FakeIssuer) -> None:
    keys = StaticKeySet([parse_jwk(issuer.signing_key.public_jwk(), ["RS256"])])
    key = await keys.get_key(kid=issuer.signing_key.kid, alg="RS256")
    assert key.kid == issuer.signing_key.kid
    with pytest.raises(KeyNotFound):
        await keys.get_key(kid="other", alg="RS256")


async def test_every_provider_call_has_a_5_second_timeout(issuer: FakeIssuer) -> None:
    guard = OIDCGuard(issuer=issuer.issuer, audience=issuer.audience, transport=issuer.transport)
    timeout = guard.http_client().timeout
    assert (timeout.connect, timeout.read, timeout.write, timeout.pool) == (5, 5, 5, 5)
    await guard.aclose()


async def test_unknown_kid_cooldown_is_the_full_30_seconds(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    guard = make_guard(issuer, clock)
    await guard.keys.warm()
    with pytest.raises(KeyNotFound):
        await guard.keys.get_key(kid="unknown-1", alg="RS256")
    assert issuer.requests["jwks"] == 2
    clock.advance(29)
    with pytest.raises(KeyNotFound):
        await guard.keys.get_key(kid="unknown-2", alg="RS256")
    assert issuer.requests["jwks"] == 2  # still in the cooldown
    clock.advance(2)
    with pytest.raises(KeyNotFound):
        await guard.keys.get_key(kid="unknown-3", alg="RS256")
    assert issuer.requests["jwks"] == 3


async def test_unknown_kid_joins_the_refetch_in_flight(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    guard = make_guard(issuer, clock)
    await guard.keys.warm()
    issuer.rotate()
    token = issuer.mint(sub="new-key")
    issuer.gate = asyncio.Event()  # the refetch for the new kid is held at the provider
    first = asyncio.ensure_future(guard.verifier.verify_access_token(token))
    for _ in range(5):
        await asyncio.sleep(0)
    second = asyncio.ensure_future(guard.verifier.verify_access_token(token))
    for _ in range(5):
        await asyncio.sleep(0)
    issuer.gate.set()
    results = await asyncio.gather(first, second)
    assert [claims["sub"] for claims in results] == ["new-key", "new-key"]
    assert issuer.requests["jwks"] == 2
    await guard.aclose()


async def test_stale_beyond_limit_stays_503_during_the_retry_backoff(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    guard = make_guard(issuer, clock, jwks_stale_limit=3600)
    await guard.verifier.verify_access_token(issuer.mint())
    with issuer.outage("down"):
        clock.advance(3601)
        for n in range(3):
            with pytest.raises(KeySetUnavailable):
                await guard.verifier.verify_access_token(issuer.mint(sub=f"late-{n}"))
            clock.advance(1)
    await guard.aclose()


async def test_failed_background_refresh_is_not_retried_per_request(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    guard = make_guard(issuer, clock)
    await guard.verifier.verify_access_token(issuer.mint())
    with issuer.outage("down"):
        clock.advance(451)  # background refresh due
        for n in range(10):
            await guard.verifier.verify_access_token(issuer.mint(sub=f"u{n}"))
            for _ in range(3):
                await asyncio.sleep(0)
        assert issuer.requests["jwks"] == 2  # one failed refresh, then the backoff holds
        clock.advance(31)
        await guard.verifier.verify_access_token(issuer.mint(sub="later"))
        for _ in range(3):
            await asyncio.sleep(0)
        assert issuer.requests["jwks"] == 3
    await guard.aclose()
