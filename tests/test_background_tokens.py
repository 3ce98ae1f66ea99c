"""Tokens outside requests (issue #15): the app's own client-credentials token, and a user's
access token from the refresh token the app stored, with the rules of a request (one refresh
for many concurrent callers, a rotated refresh token never spent twice, the new one handed to
the app, a refreshed ID token of another user refused)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import Request

from fastapi_oidc_guard import LoginRequired, NoRefreshToken, OfflineGrant, OIDCGuard
from fastapi_oidc_guard.testing import FakeClock, FakeIssuer, alogin

from .web import BASE_URL, web_app, web_guard

pytestmark = pytest.mark.anyio


def refreshes(issuer: FakeIssuer) -> int:
    return issuer.oauth.grants["refresh_token"]


async def signed_in_grant(
    guard: OIDCGuard, issuer: FakeIssuer, user: dict[str, Any] | None = None
) -> OfflineGrant:
    """Log in through the real flow and take the grant a route would store for a job."""
    app = web_app(guard)
    grants: list[OfflineGrant] = []

    @app.post("/api/remember-me")
    async def remember(request: Request) -> dict[str, str]:
        grants.append(await guard.offline_grant(request))
        return {"ok": "stored"}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        await alogin(client, issuer, user=user or {"sub": "worker-user"})
        answer = await client.post("/api/remember-me", headers={"Origin": BASE_URL})
        assert answer.status_code == 200, answer.text
        anonymous = await client.post(
            "/api/remember-me", headers={"Origin": BASE_URL, "Cookie": ""}
        )
    assert anonymous.status_code == 401  # offline_grant needs a signed-in user
    return grants[0]


async def test_a_job_gets_a_fresh_token_and_the_rotated_refresh_token(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    guard = web_guard(issuer, clock)
    grant = await signed_in_grant(guard, issuer)
    assert grant.sub == "worker-user" and grant.refresh_token not in repr(grant)
    clock.advance(7200)  # the job runs hours later: the session's tokens have expired
    stored = {"refresh_token": grant.refresh_token}

    async def on_rotated(new: str) -> None:
        stored["refresh_token"] = new

    token = await guard.access_token_from_refresh_token(
        stored["refresh_token"], sub=grant.sub, on_rotated=on_rotated
    )
    assert token.is_jwt and token.audience == issuer.audience
    assert stored["refresh_token"] != grant.refresh_token  # the provider rotated it
    assert refreshes(issuer) == 1
    again = await guard.access_token_from_refresh_token(stored["refresh_token"], sub=grant.sub)
    assert again.token == token.token and refreshes(issuer) == 1  # remembered, not refreshed
    claims = await guard.verifier.verify_access_token(token.token)
    assert claims["sub"] == "worker-user"
    await guard.aclose()


async def test_concurrent_jobs_refresh_once_and_never_spend_a_rotated_token_twice(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    """Attack (on ourselves): 20 workers start at once with the same stored refresh token. With
    rotation, a second use of the old token makes the provider revoke the whole grant."""
    guard = web_guard(issuer, clock)
    grant = await signed_in_grant(guard, issuer)
    clock.advance(7200)
    issuer.latency = 0.02
    tokens = await asyncio.gather(*(
        guard.access_token_from_refresh_token(grant.refresh_token, sub=grant.sub)
        for _ in range(20)
    ))  # fmt: skip
    issuer.latency = 0
    assert len({t.token for t in tokens}) == 1 and refreshes(issuer) == 1
    # A job that did not store the rotated token gets the outcome, not a revoked grant.
    late = await guard.access_token_from_refresh_token(grant.refresh_token, sub=grant.sub)
    assert late.token == tokens[0].token and refreshes(issuer) == 1
    await guard.aclose()


async def test_a_stored_refresh_token_of_another_user_is_refused(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    """Attack: a job is handed (by a bug or a tampered queue message) Bob's refresh token with
    Alice's ``sub``. The refreshed ID token names Bob: no token for "Alice"."""
    guard = web_guard(issuer, clock)
    bobs = await signed_in_grant(guard, issuer, user={"sub": "bob"})
    with pytest.raises(LoginRequired, match="another user"):
        await guard.access_token_from_refresh_token(
            bobs.refresh_token, sub="alice", force_refresh=True
        )
    await guard.aclose()


async def test_a_refused_or_missing_refresh_token_is_login_required(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    guard = web_guard(issuer, clock)
    with pytest.raises(LoginRequired):
        await guard.access_token_from_refresh_token("not-a-refresh-token", sub="worker-user")
    with pytest.raises(NoRefreshToken):
        await guard.access_token_from_refresh_token("", sub="worker-user")
    await guard.aclose()


async def test_offline_grant_needs_a_refresh_token(issuer: FakeIssuer, clock: FakeClock) -> None:
    guard = web_guard(issuer, clock, scope="openid profile email")  # no offline_access
    app = web_app(guard)

    @app.post("/api/remember-me")
    async def remember(request: Request) -> dict[str, str]:
        await guard.offline_grant(request)
        return {"ok": "stored"}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        await alogin(client, issuer)
        answer = await client.post("/api/remember-me", headers={"Origin": BASE_URL})
    assert answer.status_code == 401
    assert "offline_access" in answer.json()["description"]
    await guard.aclose()


async def test_the_apps_own_token_outside_a_request(issuer: FakeIssuer, clock: FakeClock) -> None:
    guard = web_guard(issuer, clock)
    first = await guard.client_credentials_token()
    second = await guard.client_credentials_token()
    assert first.token == second.token and issuer.oauth.grants["client_credentials"] == 1
    assert (await guard.verifier.verify_access_token(first.token))["aud"] == issuer.audience
    clock.advance(3600)
    renewed = await guard.client_credentials_token(min_ttl=30)
    assert renewed.token != first.token and issuer.oauth.grants["client_credentials"] == 2
    await guard.aclose()
