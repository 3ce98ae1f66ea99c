"""``require_user`` / ``optional_user`` / ``require_scopes`` on real routes: statuses, bodies,
headers exactly as the error table of http_errors.py (docs/troubleshooting.md) says, and
dependency overrides."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from pydantic import Field

from fastapi_oidc_guard import OIDCGuard, User, require_scopes, require_user
from fastapi_oidc_guard.testing import FakeClock, FakeIssuer

from .conftest import build_app

NOT_AUTHENTICATED = {
    "error": "not_authenticated",
    "description": "The user does not have an active session or is not authenticated",
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_public_route_needs_nothing(client: TestClient) -> None:
    assert client.get("/api/public").json() == {"ok": "yes"}


def test_valid_bearer_token(client: TestClient, issuer: FakeIssuer) -> None:
    response = client.get("/api/protected", headers=bearer(issuer.mint(sub="alice")))
    assert response.status_code == 200
    assert response.json() == {"userId": "alice", "scopes": ["openid", "profile"]}


def test_no_credentials_is_401_not_authenticated(client: TestClient) -> None:
    response = client.get("/api/protected")
    assert response.status_code == 401
    assert response.json() == NOT_AUTHENTICATED
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.headers["Cache-Control"] == "no-store"


def test_invalid_token_is_401_invalid_token_without_echo(
    client: TestClient, issuer: FakeIssuer
) -> None:
    token = issuer.mint(sub="mallory-secret-marker", aud="https://elsewhere.example")
    response = client.get("/api/protected", headers=bearer(token))
    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_token",
        "description": "The access token is invalid or has expired",
    }
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert "mallory" not in response.text
    assert "elsewhere" not in response.text


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("Basic dXNlcjpwYXNz", id="basic"),
        pytest.param("Bearer", id="no-token"),
        pytest.param("Bearer ", id="empty-token"),
        pytest.param("Bearer a b", id="two-tokens"),
        pytest.param("Token abc", id="other-scheme"),
        pytest.param("", id="empty-header"),
    ],
)
def test_malformed_authorization_header_is_401(client: TestClient, header: str) -> None:
    response = client.get("/api/protected", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


def test_scheme_is_case_insensitive(client: TestClient, issuer: FakeIssuer) -> None:
    response = client.get("/api/protected", headers={"Authorization": f"bearer {issuer.mint()}"})
    assert response.status_code == 200


def test_huge_authorization_header_is_401(client: TestClient) -> None:
    response = client.get("/api/protected", headers=bearer("a" * 60_000))
    assert response.status_code == 401


def test_provider_down_from_start_is_503(app: FastAPI, issuer: FakeIssuer) -> None:
    with issuer.outage("down"), TestClient(app) as client:
        response = client.get("/api/protected", headers=bearer(issuer.mint()))
    assert response.status_code == 503
    assert response.json() == {
        "error": "temporarily_unavailable",
        "description": "The identity provider is temporarily unavailable",
    }
    assert response.headers["Retry-After"] == "5"


def test_optional_user(client: TestClient, issuer: FakeIssuer) -> None:
    assert client.get("/api/optional").json() == {"userId": None}
    ok = client.get("/api/optional", headers=bearer(issuer.mint(sub="bob")))
    assert ok.json() == {"userId": "bob"}
    broken = client.get("/api/optional", headers=bearer(issuer.mint(exp=1)))
    assert broken.status_code == 401


def test_dependency_override_replaces_require_user(app: FastAPI) -> None:
    app.dependency_overrides[require_user] = lambda: User(sub="u1")
    with TestClient(app) as client:
        response = client.get("/api/protected")
    assert response.json() == {"userId": "u1", "scopes": []}


def test_require_scopes_is_memoised() -> None:
    assert require_scopes("read:data") is require_scopes("read:data")
    assert require_scopes("read:data") is not require_scopes("write:data")


@pytest.mark.parametrize("bad", ["", "has space", 'quote"', "back\\slash"])
def test_require_scopes_refuses_bad_scope_names(bad: str) -> None:
    with pytest.raises(ValueError, match="scope"):
        require_scopes(bad)


def scoped_app(guard: OIDCGuard) -> FastAPI:
    app = build_app(guard)

    @app.get("/api/admin")
    async def admin(user: User = Depends(require_scopes("admin", "read:data"))) -> dict[str, str]:
        return {"userId": user.sub}

    return app


def test_missing_scope_is_403(guard: OIDCGuard, issuer: FakeIssuer) -> None:
    with TestClient(scoped_app(guard)) as client:
        response = client.get("/api/admin", headers=bearer(issuer.mint(scope="read:data")))
        assert response.status_code == 403
        assert response.json()["error"] == "insufficient_scope"
        assert response.headers["WWW-Authenticate"] == (
            'Bearer error="insufficient_scope", scope="admin read:data"'
        )
        ok = client.get("/api/admin", headers=bearer(issuer.mint(scope="admin read:data")))
        assert ok.status_code == 200


def test_forged_token_with_the_right_scopes_is_401_not_403(
    guard: OIDCGuard, issuer: FakeIssuer
) -> None:
    head, _, sig = issuer.mint(scope="read:data").split(".")
    from fastapi_oidc_guard.testing._keys import b64url

    forged_body = b64url(__import__("json").dumps(issuer.claims(scope="admin read:data")).encode())
    with TestClient(scoped_app(guard)) as client:
        response = client.get("/api/admin", headers=bearer(f"{head}.{forged_body}.{sig}"))
    assert response.status_code == 401


class MyUser(User):
    roles: list[str] = Field(alias="https://example.com/roles")
    org_id: str


def test_custom_user_model(issuer: FakeIssuer, clock: FakeClock) -> None:
    guard = OIDCGuard(
        issuer=issuer.issuer, audience=issuer.audience, transport=issuer.transport,
        clock=clock, user_model=MyUser,
    )  # fmt: skip
    app = FastAPI(lifespan=guard.lifespan)
    guard.install(app)

    @app.get("/me")
    async def me(user: Any = Depends(require_user)) -> dict[str, Any]:
        assert isinstance(user, MyUser)
        return {"roles": user.roles, "org": user.org_id}

    with TestClient(app) as client:
        token = issuer.mint(**{"https://example.com/roles": ["admin"], "org_id": "o1"})
        assert client.get("/me", headers=bearer(token)).json() == {"roles": ["admin"], "org": "o1"}
        missing = client.get("/me", headers=bearer(issuer.mint(org_id="o1")))
        assert missing.status_code == 401
        assert missing.json()["error"] == "invalid_token"
        wrong_type = issuer.mint(**{"https://example.com/roles": "admin", "org_id": 5})
        assert client.get("/me", headers=bearer(wrong_type)).status_code == 401


def test_guard_not_installed_is_a_clear_error(guard: OIDCGuard) -> None:
    app = FastAPI()

    @app.get("/p")
    async def p(user: User = Depends(require_user)) -> str:
        return user.sub

    with (
        TestClient(app, raise_server_exceptions=True) as client,
        pytest.raises(RuntimeError, match="install"),
    ):
        client.get("/p")


def test_403_body_is_the_fixed_description(guard: OIDCGuard, issuer: FakeIssuer) -> None:
    with TestClient(scoped_app(guard)) as client:
        response = client.get("/api/admin", headers=bearer(issuer.mint(scope="read:data")))
    assert response.json() == {
        "error": "insufficient_scope",
        "description": "The token does not grant the permissions this route requires",
    }


@pytest.mark.parametrize("scheme", ["Token", "Basic", "JWT", "Bearer:"])
def test_valid_jwt_under_another_scheme_is_401(
    client: TestClient, issuer: FakeIssuer, scheme: str
) -> None:
    header = {"Authorization": f"{scheme} {issuer.mint()}"}
    response = client.get("/api/protected", headers=header)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


def test_authorization_header_is_the_only_credential(
    client: TestClient, issuer: FakeIssuer
) -> None:
    token = issuer.mint()
    for name in ("access_token", "token", "id_token", "authorization"):
        client.cookies.set(name, token)
    response = client.get("/api/protected", params={"access_token": token, "token": token})
    assert response.status_code == 401
    assert response.json() == NOT_AUTHENTICATED


def test_huge_integer_date_is_401_not_500(client: TestClient, issuer: FakeIssuer) -> None:
    from fastapi_oidc_guard.testing._keys import b64url

    head = b64url(b'{"alg":"RS256","typ":"at+jwt"}')
    claims = f'{{"iss":"{issuer.issuer}","aud":"{issuer.audience}","sub":"x","exp":1'
    body = b64url((claims + "0" * 400 + "}").encode())
    response = client.get("/api/protected", headers=bearer(f"{head}.{body}.AAAA"))
    assert response.status_code == 401
