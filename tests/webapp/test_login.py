"""Browser login with the fake issuer: the whole flow, sessions in dependencies, and every
hostile callback, each a named test. None may produce a 500 or a session."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
from fastapi.testclient import TestClient

from fastapi_oidc_guard import OIDCGuard
from fastapi_oidc_guard.testing import FakeClock, FakeIssuer, login

from ..web import BASE_URL, web_app, web_guard

NOT_AUTHENTICATED = {
    "error": "not_authenticated",
    "description": "The user does not have an active session or is not authenticated",
}


def start_login(client: TestClient, **params: str) -> tuple[httpx.Response, dict[str, str]]:
    response = client.get("/auth/login", params=params, follow_redirects=False)
    assert response.status_code == 302
    query = {k: v[0] for k, v in parse_qs(urlsplit(response.headers["location"]).query).items()}
    return response, query


def has_session(client: TestClient) -> bool:
    return client.get("/api/protected").status_code == 200


# -- the happy path ----------------------------------------------------------------------------


def test_full_flow_login_protected_logout(client: TestClient, issuer: FakeIssuer) -> None:
    assert client.get("/api/protected").json() == NOT_AUTHENTICATED
    issuer.login_as("alice", email="alice@example.test")
    callback = login(client, issuer, return_to="/dashboard")
    assert callback.status_code == 302
    assert callback.headers["location"] == "/dashboard"
    assert callback.headers["cache-control"] == "no-store"
    response = client.get("/api/protected")
    assert response.json() == {"userId": "alice", "email": "alice@example.test"}
    profile = client.get("/auth/profile").json()
    assert profile["sub"] == "alice"
    assert "nonce" not in profile and "aud" not in profile
    logout = client.post("/auth/logout", follow_redirects=False)
    assert logout.status_code == 302
    target = urlsplit(logout.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{issuer.issuer}/logout"
    params = parse_qs(target.query)
    assert params["post_logout_redirect_uri"] == [f"{BASE_URL}/"]
    assert params["id_token_hint"][0].count(".") == 2
    assert len(params["state"][0]) >= 16  # Glewlwyd comes back only with a state
    assert client.get("/api/protected").status_code == 401
    assert client.get("/auth/profile").status_code == 401


def test_login_request_is_pkce_s256_with_state_nonce_and_audience(
    client: TestClient, issuer: FakeIssuer
) -> None:
    _, query = start_login(client)
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43
    assert len(query["state"]) >= 32 and len(query["nonce"]) >= 32
    assert query["scope"] == "openid profile email offline_access"
    assert query["audience"] == query["resource"] == issuer.audience
    assert query["redirect_uri"] == f"{BASE_URL}/auth/callback"


def test_login_passes_allowed_parameters_only(client: TestClient) -> None:
    _, query = start_login(client, prompt="login", login_hint="bob", client_id="evil", x="y")
    assert query["prompt"] == "login" and query["login_hint"] == "bob"
    assert query["client_id"] == "test-client"
    assert "x" not in query


def test_logout_revokes_the_refresh_token(client: TestClient, issuer: FakeIssuer) -> None:
    login(client, issuer)
    assert len(issuer.oauth.refresh) == 1
    client.post("/auth/logout", follow_redirects=False)
    assert issuer.requests["revoke"] == 1
    assert all(grant.revoked for grant in issuer.oauth.refresh.values())


def test_local_logout_when_provider_has_no_end_session(
    client: TestClient, issuer: FakeIssuer, guard: OIDCGuard
) -> None:
    login(client, issuer)
    metadata = guard.discovery.cached
    assert metadata is not None
    guard.discovery._metadata = metadata.model_copy(update={"end_session_endpoint": None})
    response = client.post("/auth/logout", data={"returnTo": "/bye"}, follow_redirects=False)
    assert response.headers["location"] == "/bye"
    assert not has_session(client)


def test_page_redirects_to_login_with_return_to(client: TestClient, issuer: FakeIssuer) -> None:
    response = client.get("/page?tab=2", follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"] == "/auth/login?returnTo=%2Fpage%3Ftab%3D2"
    callback = login(client, issuer, return_to="/page?tab=2")
    assert callback.headers["location"] == "/page?tab=2"
    assert client.get("/page").json() == {"page": "hello user-1"}


def test_optional_user_with_and_without_session(client: TestClient, issuer: FakeIssuer) -> None:
    assert client.get("/api/optional").json() == {"userId": None}
    login(client, issuer)
    assert client.get("/api/optional").json() == {"userId": "user-1"}


def test_invalid_bearer_is_401_even_with_a_valid_session(
    client: TestClient, issuer: FakeIssuer
) -> None:
    login(client, issuer)
    response = client.get("/api/protected", headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


def test_new_session_id_at_every_login(
    client: TestClient, issuer: FakeIssuer, guard: OIDCGuard
) -> None:
    login(client, issuer)
    first = client.cookies.get("oidc_session")
    login(client, issuer)
    second = client.cookies.get("oidc_session")
    assert first and second and first != second


def test_session_cookie_attributes(client: TestClient, issuer: FakeIssuer) -> None:
    callback = login(client, issuer)
    cookie = next(
        v for v in callback.headers.get_list("set-cookie") if v.startswith("oidc_session")
    )
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # http://127.0.0.1 base URL: development


def test_https_base_url_sets_secure_cookies(issuer: FakeIssuer, clock: FakeClock) -> None:
    guard = web_guard(issuer, clock, base_url="https://app.example.com")
    with TestClient(web_app(guard), base_url="https://app.example.com") as client:
        start = client.get("/auth/login", follow_redirects=False)
        assert all("Secure" in c for c in start.headers.get_list("set-cookie"))
        callback = login(client, issuer)
        assert all("Secure" in c for c in callback.headers.get_list("set-cookie"))


def test_session_change_persists_when_route_returns_its_own_response(
    client: TestClient, issuer: FakeIssuer
) -> None:
    login(client, issuer)
    response = client.get("/api/own-response")
    assert response.json() == {"changed": True}
    assert any(c.startswith("oidc_session") for c in response.headers.get_list("set-cookie"))
    assert response.headers["cache-control"] == "no-store"
    assert client.get("/auth/profile").json()["marker"] == "set"


def test_parallel_logins_in_two_tabs(client: TestClient, issuer: FakeIssuer) -> None:
    first, _ = start_login(client, returnTo="/one")
    second, _ = start_login(client, returnTo="/two")
    done_second = client.get(issuer.authorize(second.headers["location"]), follow_redirects=False)
    assert done_second.headers["location"] == "/two"
    done_first = client.get(issuer.authorize(first.headers["location"]), follow_redirects=False)
    assert done_first.headers["location"] == "/one"
    assert has_session(client)


def test_pending_transactions_are_capped(client: TestClient) -> None:
    for _ in range(12):
        start_login(client)
    pending = [name for name in client.cookies if "_txn_" in name]
    assert 1 <= len(pending) <= 5
