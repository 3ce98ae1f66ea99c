"""``access_token(audience=...)``: refresh, single flight, rotation persisted, invalid_grant,
outages, the opaque-token trap, ``/auth/access-token``, client credentials and userinfo."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fastapi_oidc_guard import OIDCGuard, access_token, client_credentials_token
from fastapi_oidc_guard.testing import FakeClock, FakeIssuer, alogin, login

from ..web import BASE_URL, OTHER_API, web_app, web_guard


def refreshes(issuer: FakeIssuer) -> int:
    return issuer.oauth.grants["refresh_token"]


def test_factories_are_memoised_and_overridable(app: FastAPI, issuer: FakeIssuer) -> None:
    assert access_token() is access_token(None)
    assert access_token(audience="x") is access_token("x")
    assert access_token(audience="x") is not access_token(audience="x", scope="s")
    assert client_credentials_token("a") is client_credentials_token(audience="a")
    from fastapi_oidc_guard import AccessToken

    app.dependency_overrides[access_token()] = lambda: AccessToken(token="fake", audience="a")
    with TestClient(app, base_url=BASE_URL) as client:
        assert client.get("/api/token").json()["token"] == "fake"


def test_no_session_is_401(client: TestClient) -> None:
    response = client.get("/api/token")
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"
    assert client.get("/auth/access-token").status_code == 401


def test_fresh_token_from_login_is_a_jwt_for_the_audience(
    client: TestClient, issuer: FakeIssuer
) -> None:
    login(client, issuer)
    body = client.get("/api/token").json()
    assert body["audience"] == issuer.audience
    assert body["token"].count(".") == 2
    assert refreshes(issuer) == 0


def test_expiring_token_is_refreshed_and_rotation_persisted(
    client: TestClient, issuer: FakeIssuer, clock: FakeClock
) -> None:
    login(client, issuer)
    first = client.get("/api/token").json()["token"]
    clock.advance(3600 - 30)  # within min_ttl (60 s) of expiry
    response = client.get("/api/token")
    second = response.json()["token"]
    assert second != first
    assert refreshes(issuer) == 1
    assert any(c.startswith("oidc_session") for c in response.headers.get_list("set-cookie"))
    # The rotated refresh token reached the browser: the next refresh uses it successfully.
    assert client.get("/api/token").json()["token"] == second
    clock.advance(3600)
    third = client.get("/api/token")
    assert third.status_code == 200, third.text
    assert refreshes(issuer) == 2


def test_refresh_persists_when_route_returns_its_own_response(
    client: TestClient, issuer: FakeIssuer, clock: FakeClock
) -> None:
    login(client, issuer)
    clock.advance(3600)
    response = client.get("/api/token-own-response")
    assert any(c.startswith("oidc_session") for c in response.headers.get_list("set-cookie"))
    assert client.get("/api/token").json()["token"] == response.json()["token"]
    assert refreshes(issuer) == 1


@pytest.mark.anyio
async def test_50_concurrent_requests_on_an_expired_token_cause_one_refresh(
    guard: OIDCGuard, issuer: FakeIssuer, clock: FakeClock
) -> None:
    app = web_app(guard)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        await alogin(client, issuer)
        clock.advance(3600)
        issuer.latency = 0.02  # the refresh takes a while: requests pile up behind it
        responses = await asyncio.gather(*(client.get("/api/token") for _ in range(50)))
        issuer.latency = 0
        tokens = {r.json()["token"] for r in responses}
        assert [r.status_code for r in responses] == [200] * 50
        assert len(tokens) == 1
        assert refreshes(issuer) == 1
        # A late request that still carries the pre-refresh cookie does not spend the
        # rotated refresh token again (the provider would revoke the whole grant).
        late = await client.get("/api/token")
        assert late.json()["token"] in tokens
        assert refreshes(issuer) == 1
    await guard.aclose()


def test_late_request_with_the_old_cookie_does_not_refresh_again(
    client: TestClient, issuer: FakeIssuer, clock: FakeClock
) -> None:
    login(client, issuer)
    old_cookie = client.cookies["oidc_session"]
    clock.advance(3600)
    new_token = client.get("/api/token").json()["token"]
    client.cookies.set("oidc_session", old_cookie)
    assert client.get("/api/token").json()["token"] == new_token
    assert refreshes(issuer) == 1
    assert not any(g.revoked for g in issuer.oauth.refresh.values())


def test_invalid_grant_ends_the_session(
    client: TestClient, issuer: FakeIssuer, clock: FakeClock
) -> None:
    login(client, issuer)
    for grant in issuer.oauth.refresh.values():
        grant.revoked = True
    clock.advance(3600)
    response = client.get("/api/token")
    assert response.status_code == 401
    assert response.json()["error"] == "login_required"
    assert any("Max-Age=0" in c for c in response.headers.get_list("set-cookie"))
    assert client.get("/api/protected").status_code == 401


@pytest.mark.parametrize("mode", ["down", "error", "garbage"])
def test_provider_down_during_refresh_is_503_and_keeps_the_session(
    client: TestClient, issuer: FakeIssuer, clock: FakeClock, mode: str
) -> None:
    login(client, issuer)
    clock.advance(3600)
    with issuer.outage(mode):  # type: ignore[arg-type]
        response = client.get("/api/token")
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert "Retry-After" in response.headers
    assert client.get("/api/protected").status_code == 200
    assert client.get("/api/token").status_code == 200  # provider back: refresh works


def test_no_refresh_token_says_how_to_fix_it(issuer: FakeIssuer, clock: FakeClock) -> None:
    guard = web_guard(issuer, clock, scope="openid profile email")  # no offline_access
    with TestClient(web_app(guard), base_url=BASE_URL) as client:
        _no_refresh_token(client, issuer, clock)


def _no_refresh_token(client: TestClient, issuer: FakeIssuer, clock: FakeClock) -> None:
    login(client, issuer)
    assert client.get("/api/token").status_code == 200  # the login's token, still valid
    clock.advance(3600)
    response = client.get("/api/token")
    assert response.status_code == 401
    assert response.json()["error"] == "login_required"
    assert "offline_access" in response.json()["description"]
    assert client.get("/api/protected").status_code == 200  # the session itself is still fine


def test_another_audience_is_obtained_with_the_refresh_token(
    client: TestClient, issuer: FakeIssuer
) -> None:
    login(client, issuer)
    body = client.get("/api/token-other").json()
    assert body["audience"] == OTHER_API
    assert body["token"].count(".") == 2
    assert refreshes(issuer) == 1
    assert client.get("/api/token-other").json()["token"] == body["token"]  # kept per audience
    assert client.get("/api/token").json()["audience"] == issuer.audience
    assert refreshes(issuer) == 1


def test_opaque_token_trap_is_diagnosed(
    issuer: FakeIssuer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    guard = web_guard(issuer, clock, audience=None)
    with (
        caplog.at_level(logging.WARNING, logger="fastapi_oidc_guard"),
        TestClient(web_app(guard), base_url=BASE_URL) as client,
    ):
        login(client, issuer)
        body = client.get("/api/token").json()
        client.get("/api/token")
    assert body["token"].count(".") == 0  # opaque: no audience was asked
    assert "OIDC_AUDIENCE" in caplog.text
    assert caplog.text.count("is opaque because no audience") == 1  # once per process


def test_access_token_route(client: TestClient, issuer: FakeIssuer) -> None:
    login(client, issuer)
    response = client.get("/auth/access-token")
    body = response.json()
    assert body["access_token"].count(".") == 2
    assert body["token_type"] == "Bearer"
    assert response.headers["cache-control"] == "no-store"


def test_client_credentials_token_is_cached_and_renewed(
    client: TestClient, issuer: FakeIssuer, clock: FakeClock
) -> None:
    first = client.get("/api/m2m").json()["token"]
    assert client.get("/api/m2m").json()["token"] == first
    assert issuer.oauth.grants["client_credentials"] == 1
    clock.advance(3600 - 30)
    assert client.get("/api/m2m").json()["token"] != first
    assert issuer.oauth.grants["client_credentials"] == 2


@pytest.mark.anyio
async def test_client_credentials_single_flight(guard: OIDCGuard, issuer: FakeIssuer) -> None:
    issuer.latency = 0.02
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=web_app(guard)), base_url=BASE_URL
    ) as client:
        responses = await asyncio.gather(*(client.get("/api/m2m") for _ in range(30)))
    assert {r.status_code for r in responses} == {200}
    assert issuer.oauth.grants["client_credentials"] == 1
    await guard.aclose()


def test_userinfo_is_cached_per_session(client: TestClient, issuer: FakeIssuer) -> None:
    issuer.login_as("ui-user", name="UI", phone="+1 555")
    login(client, issuer)
    body = client.get("/api/userinfo").json()
    assert body["sub"] == "ui-user" and body["phone"] == "+1 555"
    client.get("/api/userinfo")
    assert issuer.requests["userinfo"] == 1


def test_userinfo_for_another_user_is_refused(client: TestClient, issuer: FakeIssuer) -> None:
    login(client, issuer)
    for grant in issuer.oauth.opaque.values():
        grant.user = {"sub": "someone-else"}
    response = client.get("/api/userinfo")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
