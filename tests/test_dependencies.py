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

# RFC 9728: the fake issuer's audience is a URL, so challenges name its metadata
METADATA = "https://api.example.test/.well-known/oauth-protected-resource"


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
    assert response.headers["WWW-Authenticate"] == f'Bearer resource_metadata="{METADATA}"'
    assert response.headers["Cache-Control"] == "no-store"


def test_invalid_token_is_401_invalid_token_without_echo(
    client: TestClient, issuer: FakeIssuer
) -> None:
    token = issuer.mint(sub="mallory-secret-marker", aud="https://elsewhere.example")
    response = client.get("/api/protected", headers=bearer(token))
    assert response.status_code == 401
    description = "The access token was issued for another audience than this API"
    assert response.json() == {"error": "invalid_token", "description": description}
    assert response.headers["WWW-Authenticate"] == (
        f'Bearer error="invalid_token", error_description="{description}", '
        f'resource_metadata="{METADATA}"'
    )
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
            'Bearer error="insufficient_scope", scope="admin read:data", '
            f'resource_metadata="{METADATA}"'
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


def test_a_lifespan_without_install_refuses_to_start(guard: OIDCGuard) -> None:
    """``FastAPI(lifespan=guard.lifespan)`` but no ``guard.install(app)``: the app fails at
    start-up with the fix in the message, not with a 500 on its first protected request."""
    app = FastAPI(lifespan=guard.lifespan)

    @app.get("/p")
    async def p(user: User = Depends(require_user)) -> str:
        return user.sub

    client = TestClient(app)
    with pytest.raises(RuntimeError, match=r"guard.install\(app\) was never called"):
        client.__enter__()


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


# -- found by the review of issue #14 ------------------------------------------------------------


def test_a_route_that_edits_its_user_changes_no_later_request(issuer: Any, clock: Any) -> None:
    """Attack: a route appends to its user's lists or nested claims (``user.permissions``,
    ``user.realm_access["roles"]``); the next request with the same token or session cookie
    must not see it, and its authorization must not pass because of it."""
    from fastapi import Depends
    from fastapi.testclient import TestClient

    from fastapi_oidc_guard import require_permissions, require_roles, require_user
    from fastapi_oidc_guard.testing import login

    from .web import BASE_URL, web_app, web_guard

    guard = web_guard(issuer, clock, roles_claim="realm_access.roles")
    app = web_app(guard)
    writers, admins = require_permissions("admin:write"), require_roles("admin")

    @app.get("/edit")
    async def edit(user: User = Depends(require_user)) -> dict[str, bool]:
        if user.permissions is not None:
            user.permissions.append("admin:write")
        nested = user.claims.get("realm_access")
        if isinstance(nested, dict):
            getattr(user, "realm_access")["roles"].append("admin")  # noqa: B009
        return {"edited": True}

    @app.get("/write")
    async def write(user: User = Depends(writers)) -> dict[str, bool]:
        return {"ok": True}

    @app.get("/admin")
    async def admin(user: User = Depends(admins)) -> dict[str, bool]:
        return {"ok": True}

    token = issuer.mint(permissions=["read"], realm_access={"roles": ["user"]})
    bearer = {"Authorization": f"Bearer {token}"}
    with TestClient(app, base_url=BASE_URL) as client:
        for _ in range(3):  # the token is cached from the second request on
            assert client.get("/edit", headers=bearer).status_code == 200
        assert client.get("/write", headers=bearer).status_code == 403
        assert client.get("/admin", headers=bearer).status_code == 403
        login(client, issuer, user={"sub": "s-1", "permissions": ["read"],
                                    "realm_access": {"roles": ["user"]}})  # fmt: skip
        for _ in range(2):
            assert client.get("/edit").status_code == 200
        assert client.get("/write").status_code == 403
        assert client.get("/admin").status_code == 403


def test_a_user_model_validator_that_edits_its_input_changes_no_later_request(
    issuer: Any, clock: Any
) -> None:
    """Attack: the user model's ``before`` validator edits the claims it is given in place
    (appends a permission). It must never be handed the claims the cache keeps: every request
    with the same token sees exactly one appended value, never an accumulation."""
    from fastapi import Depends
    from fastapi.testclient import TestClient
    from pydantic import model_validator

    class Appending(User):
        @model_validator(mode="before")
        @classmethod
        def _append(cls, data: Any) -> Any:
            if isinstance(data, dict) and isinstance(data.get("permissions"), list):
                data["permissions"].append("added")
            return data

    guard = OIDCGuard(
        issuer=issuer.issuer, audience=issuer.audience, transport=issuer.transport,
        clock=clock, user_model=Appending,
    )  # fmt: skip
    app = FastAPI(lifespan=guard.lifespan)
    guard.install(app)

    @app.get("/me")
    async def me(user: User = Depends(require_user)) -> list[str]:
        return list(user.permissions or [])

    headers = bearer(issuer.mint(permissions=["read"]))
    with TestClient(app) as client:
        seen = [client.get("/me", headers=headers).json() for _ in range(3)]
    assert seen == [["read", "added"]] * 3


def test_app_level_dependencies_apply_to_the_auth_routes(issuer: Any, clock: Any) -> None:
    """``FastAPI(dependencies=[...])`` (an allow-list, a maintenance switch) guards the /auth
    routes too, as it does every route."""
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.testclient import TestClient

    from .web import BASE_URL, web_guard

    async def closed() -> None:
        raise HTTPException(status_code=403, detail="maintenance")

    guard = web_guard(issuer, clock)
    app = FastAPI(dependencies=[Depends(closed)])
    guard.install(app)
    with TestClient(app, base_url=BASE_URL) as client:
        assert client.get("/auth/login", follow_redirects=False).status_code == 403
        assert client.post("/auth/backchannel-logout").status_code == 403


def test_install_keeps_the_routes_declared_before_it_and_the_docs(issuer: Any, clock: Any) -> None:
    """Found by the Swagger browser test (#15): with FastAPI's newer include_router (one entry
    for the whole router), install took the last N routes of the app for its own: /docs,
    /openapi.json and any route declared before install() answered 404."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from .web import BASE_URL, web_guard

    guard = web_guard(issuer, clock)
    app = FastAPI(lifespan=guard.lifespan)

    @app.get("/declared-before")
    async def before() -> str:
        return "still here"

    guard.install(app)
    with TestClient(app, base_url=BASE_URL) as client:
        assert client.get("/declared-before").json() == "still here"
        assert client.get("/docs").status_code == 200
        assert "/declared-before" in client.get("/openapi.json").json()["paths"]
        assert client.get("/auth/login", follow_redirects=False).status_code == 302
        assert client.get("/auth/nope").status_code == 404
