"""The example app: zero-configuration development mode, every route, and its refusal in
production. (It is driven once in a real browser in tests/e2e/test_browser_e2e.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from example_app.app import create_app
from fastapi_oidc_guard.testing import FakeIssuer

BASE = "http://127.0.0.1:8000"


@pytest.fixture
def dev_app() -> Iterator[tuple[TestClient, FakeIssuer]]:
    app, dev = create_app({}, base_url=BASE)
    assert dev is not None
    with TestClient(app, base_url=BASE) as client:
        yield client, dev


def sign_in(client: TestClient, login: str) -> None:
    start = client.get("/auth/login", follow_redirects=False)
    authorize = urlsplit(start.headers["location"])
    assert authorize.path == "/_dev-issuer/authorize"
    page = client.get(start.headers["location"])
    assert "Development issuer" in page.text
    params = {k: v[0] for k, v in parse_qs(authorize.query).items()}
    done = client.post("/_dev-issuer/authorize", data={**params, "login": login},
                       follow_redirects=False)  # fmt: skip
    callback = client.get(done.headers["location"], follow_redirects=False)
    assert callback.status_code == 302


def test_development_mode_full_tour(dev_app: tuple[TestClient, FakeIssuer]) -> None:
    client, _ = dev_app
    assert "Log in" in client.get("/").text
    assert client.get("/api/protected").status_code == 401
    assert client.get("/profile", follow_redirects=False).headers["location"] == (
        "/auth/login?returnTo=%2Fprofile"
    )
    sign_in(client, "alice")
    assert "Hello, Alice Example!" in client.get("/").text
    assert client.get("/api/protected").json()["userId"] == "alice"
    assert "Profile of alice" in client.get("/profile").text
    assert "fetch(" in client.get("/fetch-demo").text
    assert client.post("/api/data", json={"text": "one"}).status_code == 201
    assert client.get("/api/data").json() == {"items": ["one"]}
    assert client.delete("/api/data").json() == {"items": []}
    assert client.get("/api/posts/7").json()["reader"] == "alice"
    assert client.get("/api/posts/700").status_code == 404
    external = client.get("/api/external-data").json()
    assert external["status"] == 200 and external["tokenIsJwt"] is True
    assert external["api"]["message"] == "Secret data for alice"
    logout = client.get("/auth/logout", follow_redirects=False)
    assert logout.headers["location"].startswith(f"{BASE}/_dev-issuer/logout")
    assert client.get("/api/protected").status_code == 401


def test_bearer_tokens_from_the_development_issuer(dev_app: tuple[TestClient, FakeIssuer]) -> None:
    client, dev = dev_app
    headers = {"Authorization": f"Bearer {dev.mint(sub='curl-user')}"}
    assert client.get("/api/protected", headers=headers).json()["userId"] == "curl-user"


def test_cors_allows_the_second_origin_with_credentials(
    dev_app: tuple[TestClient, FakeIssuer],
) -> None:
    client, _ = dev_app
    response = client.options("/api/protected", headers={
        "Origin": "http://localhost:3000", "Access-Control-Request-Method": "GET"})  # fmt: skip
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert response.headers["access-control-allow-credentials"] == "true"
    other = client.options("/api/protected", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})  # fmt: skip
    assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize(
    "marker", ["OIDC_CLIENT_SECRET", "OIDC_SESSION_SECRET", "OIDC_AUDIENCE", "OIDC_BASE_URL"]
)
def test_development_issuer_refused_when_production_settings_present(marker: str) -> None:
    with pytest.raises(RuntimeError, match="OIDC_ISSUER"):
        create_app({marker: "https://x.example" if marker == "OIDC_BASE_URL" else "x" * 40})


def test_configured_mode_uses_the_environment() -> None:
    app, dev = create_app({"OIDC_ISSUER": "https://idp.example.com", "OIDC_AUDIENCE": "a"})
    assert dev is None
    assert app.state.oidc_guard.config.audience == "a"
