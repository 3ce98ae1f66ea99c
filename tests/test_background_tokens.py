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


def grant_revoked(issuer: FakeIssuer, token: str) -> bool:
    grant = issuer.oauth.refresh.get(token) or issuer.oauth.used_refresh.get(token)
    return grant is not None and grant.revoked


async def test_a_failing_on_rotated_never_leads_to_spending_the_old_token(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    """Attack (review of #15): the app's database is down when the provider has already
    rotated the refresh token. A retry with the old token must not reach the provider (which
    would revoke the user's whole grant): the process remembers the new one first."""
    guard = web_guard(issuer, clock)
    grant = await signed_in_grant(guard, issuer)
    clock.advance(7200)

    async def db_down(new: str) -> None:
        raise ConnectionError("database unavailable")

    with pytest.raises(ConnectionError):
        await guard.access_token_from_refresh_token(
            grant.refresh_token, sub=grant.sub, on_rotated=db_down
        )
    clock.advance(120)  # past the memory of recent refreshes
    token = await guard.access_token_from_refresh_token(grant.refresh_token, sub=grant.sub)
    assert token.is_jwt and refreshes(issuer) == 1
    assert not grant_revoked(issuer, grant.refresh_token)
    await guard.aclose()


async def test_an_intermediate_refresh_token_is_never_spent_twice(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    """Attack (review of #15): t0 -> t1 -> t2 by jobs holding t0; a job that read t1 from the
    database then runs. t1 was spent: the process continues from t2 instead."""
    guard = web_guard(issuer, clock)
    grant = await signed_in_grant(guard, issuer)
    stored: list[str] = []

    async def keep(new: str) -> None:
        stored.append(new)

    t0 = grant.refresh_token
    clock.advance(7200)
    await guard.access_token_from_refresh_token(t0, sub=grant.sub, on_rotated=keep)
    t1 = stored[-1]
    clock.advance(7200)
    await guard.access_token_from_refresh_token(t0, sub=grant.sub, on_rotated=keep)
    clock.advance(7200)
    token = await guard.access_token_from_refresh_token(t1, sub=grant.sub, on_rotated=keep)
    assert token.is_jwt and not grant_revoked(issuer, t1)
    await guard.aclose()


async def test_another_users_refresh_token_is_refused_even_right_after_their_refresh(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    """Attack (review of #15): Bob's refresh token handed to a job as Alice's seconds after
    Bob's own refresh: the remembered outcome is Bob's, never handed out for Alice."""
    guard = web_guard(issuer, clock)
    bobs = await signed_in_grant(guard, issuer, user={"sub": "bob"})
    clock.advance(7200)
    await guard.access_token_from_refresh_token(bobs.refresh_token, sub="bob")
    clock.advance(5)
    with pytest.raises(LoginRequired, match="another user"):
        await guard.access_token_from_refresh_token(bobs.refresh_token, sub="alice")
    await guard.aclose()


async def test_the_grant_is_detached_from_the_session(issuer: FakeIssuer, clock: FakeClock) -> None:
    """Attack (review of #15): the job and the browser session holding one refresh token
    break at the first rotation (a reuse: the provider revokes both). offline_grant moves it to
    the job; the session's refresh and logout never touch the job's token."""
    guard = web_guard(issuer, clock)
    app = web_app(guard)
    grants: list[OfflineGrant] = []

    @app.post("/api/remember-me")
    async def remember(request: Request) -> dict[str, str]:
        grants.append(await guard.offline_grant(request))
        return {"ok": "stored"}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        await alogin(client, issuer)
        assert (
            await client.post("/api/remember-me", headers={"Origin": BASE_URL})
        ).status_code == 200
        clock.advance(7200)  # the session's access token expired: it cannot refresh any more
        later = await client.get("/auth/access-token")
        assert later.status_code == 401
        await client.post("/auth/logout", headers={"Origin": BASE_URL})
    token = await guard.access_token_from_refresh_token(grants[0].refresh_token, sub=grants[0].sub)
    assert token.is_jwt and not grant_revoked(issuer, grants[0].refresh_token)
    await guard.aclose()
