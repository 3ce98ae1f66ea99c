"""The public testing toolkit, used exactly as an app's own tests would (public API only)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from fastapi_oidc_guard import (
    MemorySessionBackend,
    OIDCGuard,
    User,
    optional_user,
    require_page_user,
    require_user,
)
from fastapi_oidc_guard.testing import (
    FakeIssuer,
    alogin,
    make_session,
    override_user,
    session_cookies,
)


def build(guard: OIDCGuard) -> FastAPI:
    app = FastAPI(lifespan=guard.lifespan)
    guard.install(app)

    @app.get("/api/me")
    async def me(user: User = Depends(require_user)) -> dict[str, Any]:
        return {"sub": user.sub}

    @app.get("/api/hello")
    async def hello(user: User | None = Depends(optional_user)) -> str:
        return user.sub if user else "anonymous"

    @app.get("/page")
    async def page(user: User = Depends(require_page_user)) -> str:
        return user.sub

    return app


def test_plugin_signed_in_client(oidc_signed_in_client: TestClient) -> None:
    assert oidc_signed_in_client.get("/api/me").json()["sub"] == "test-user"


class TestOverriddenUser:
    @pytest.fixture
    def oidc_user(self) -> dict[str, Any]:
        return {"sub": "custom", "email": "c@example.test"}

    def test_plugin_fixtures_can_be_overridden(self, oidc_signed_in_client: TestClient) -> None:
        assert oidc_signed_in_client.get("/api/me").json()["email"] == "c@example.test"


def test_plugin_anonymous_client(oidc_client: TestClient) -> None:
    assert oidc_client.get("/api/me").status_code == 401


def test_override_user_covers_every_user_dependency(oidc_guard: OIDCGuard) -> None:
    app = build(oidc_guard)
    client = TestClient(app)
    with override_user(app, User(sub="ov")):
        assert client.get("/api/me").json() == {"sub": "ov"}
        assert client.get("/api/hello").json() == "ov"
        assert client.get("/page").json() == "ov"
    assert client.get("/api/me").status_code == 401
    with override_user(app, None):
        assert client.get("/api/hello").json() == "anonymous"
    assert app.dependency_overrides == {}


def test_mint_access_token(oidc_issuer: FakeIssuer, oidc_guard: OIDCGuard) -> None:
    with TestClient(build(oidc_guard)) as client:
        token = oidc_issuer.mint_access_token(sub="minted")
        response = client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert response.json() == {"sub": "minted"}


@pytest.mark.parametrize("stateful", [False, True], ids=["cookie", "memory"])
def test_session_cookie_factory(
    oidc_settings: dict[str, Any], oidc_issuer: FakeIssuer, stateful: bool
) -> None:
    extra = {"session_backend": MemorySessionBackend(clock=__import__("time").time)}
    guard = OIDCGuard(**oidc_settings, **(extra if stateful else {}))
    user = {"sub": "cookie-user", "bio": "x" * 6000}
    session = make_session(user, access_token=oidc_issuer.mint(), audience=oidc_issuer.audience)
    with TestClient(build(guard), base_url="http://127.0.0.1:8000") as client:
        for name, value in session_cookies(guard, session).items():
            client.cookies.set(name, value)
        assert client.get("/api/me").json() == {"sub": "cookie-user"}


@pytest.mark.anyio
async def test_alogin_with_an_async_client(oidc_issuer: FakeIssuer, oidc_guard: OIDCGuard) -> None:
    transport = httpx.ASGITransport(app=build(oidc_guard))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
        await alogin(client, oidc_issuer, user={"sub": "async-user"})
        assert (await client.get("/api/me")).json() == {"sub": "async-user"}


@pytest.mark.anyio
async def test_fake_issuer_served_over_asgi(oidc_issuer: FakeIssuer) -> None:
    """Tools outside the process reach the issuer over HTTP (here through its ASGI app)."""
    oidc_issuer.interactive = True
    transport = httpx.ASGITransport(app=oidc_issuer.asgi)
    async with httpx.AsyncClient(transport=transport, base_url=oidc_issuer.base) as http:
        discovery = (await http.get("/.well-known/openid-configuration")).json()
        assert discovery["issuer"] == oidc_issuer.issuer
        assert (await http.get("/jwks")).json()["keys"]
        params = {"client_id": oidc_issuer.client_id, "redirect_uri": "http://127.0.0.1:8000/cb",
                  "response_type": "code", "scope": "openid", "state": "st<script>",
                  "code_challenge": "x" * 43, "code_challenge_method": "S256"}  # fmt: skip
        page = await http.get("/authorize", params=params)
        assert "Development issuer" in page.text
        assert "<script>" not in page.text  # every value is escaped
        signed_in = await http.post("/authorize", data={**params, "login": "alice"})
        assert signed_in.status_code == 302
        assert signed_in.headers["location"].startswith("http://127.0.0.1:8000/cb?code=")
