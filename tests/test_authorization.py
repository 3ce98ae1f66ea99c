"""Authorization beyond authentication: scopes (three claim shapes), permissions, roles, any/all,
rules, Security scopes, auth_state, typed users with private fields, OpenAPI, multi-issuer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, Security
from fastapi.testclient import TestClient
from pydantic import Field

from fastapi_oidc_guard import (
    AuthState,
    OIDCGuard,
    TrustedIssuer,
    User,
    auth_state,
    optional_user,
    require_permissions,
    require_roles,
    require_rule,
    require_scopes,
    require_user,
)
from fastapi_oidc_guard.testing import FakeClock, FakeIssuer, combined_transport, login
from fastapi_oidc_guard.testing._keys import b64url

from .web import BASE_URL, web_guard

ROLES = "https://example.com/roles"


def is_org_admin(user: User) -> bool:
    return user.claims.get("org_role") == "admin"


def authz_app(guard: OIDCGuard) -> FastAPI:
    app = FastAPI(lifespan=guard.lifespan)
    guard.install(app)

    @app.get("/scopes/all")
    async def all_scopes(u: User = Depends(require_scopes("read", "write"))) -> str:
        return u.sub

    @app.get("/scopes/any")
    async def any_scope(u: User = Depends(require_scopes("read", "write", any_of=True))) -> str:
        return u.sub

    @app.get("/security")
    async def security(u: User = Security(require_user, scopes=["read"])) -> str:
        return u.sub

    @app.get("/permissions")
    async def permissions(u: User = Depends(require_permissions("delete:posts"))) -> str:
        return u.sub

    @app.get("/roles")
    async def roles(u: User = Depends(require_roles("admin", "editor", any_of=True))) -> str:
        return u.sub

    @app.get("/rule")
    async def rule(u: User = Depends(require_rule(is_org_admin))) -> str:
        return u.sub

    @app.get("/state")
    async def state(s: AuthState = Depends(auth_state)) -> dict[str, Any]:
        return {"auth": s.authenticated, "method": s.method, "error": s.error,
                "sub": s.user.sub if s.user else None, "scopes": sorted(s.scopes)}  # fmt: skip

    @app.get("/optional")
    async def optional(u: User | None = Depends(optional_user)) -> str:
        return u.sub if u else "anonymous"

    @app.get("/public")
    async def public() -> str:
        return "ok"

    return app


@pytest.fixture
def guard(issuer: FakeIssuer, clock: FakeClock) -> OIDCGuard:
    return OIDCGuard(issuer=issuer.issuer, audience=issuer.audience, transport=issuer.transport,
                     clock=clock, roles_claim=ROLES)  # fmt: skip


@pytest.fixture
def client(guard: OIDCGuard) -> Iterator[TestClient]:
    with TestClient(authz_app(guard)) as test_client:
        yield test_client


def call(client: TestClient, path: str, token: str) -> Any:
    return client.get(path, headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        pytest.param({"scope": "read write"}, 200, id="scope-string"),
        pytest.param({"scope": None, "scp": ["read", "write"]}, 200, id="scp-array"),
        pytest.param({"scope": None, "scp": "read write"}, 200, id="scp-string"),
        pytest.param({"scope": "read"}, 403, id="missing-one"),
        pytest.param({"scope": None}, 403, id="no-scopes"),
        pytest.param({"scope": None, "permissions": ["read", "write"]}, 403, id="perms-not-scopes"),
    ],
)
def test_all_of_scopes(client: TestClient, issuer: FakeIssuer, claims: dict[str, Any],
                       expected: int) -> None:  # fmt: skip
    assert call(client, "/scopes/all", issuer.mint(**claims)).status_code == expected


@pytest.mark.parametrize(("scope", "expected"), [("read", 200), ("write", 200), ("other", 403)])
def test_any_of_scopes(client: TestClient, issuer: FakeIssuer, scope: str, expected: int) -> None:
    assert call(client, "/scopes/any", issuer.mint(scope=scope)).status_code == expected


def test_403_body_and_header_exactly(client: TestClient, issuer: FakeIssuer) -> None:
    response = call(client, "/scopes/all", issuer.mint(scope="read"))
    assert response.status_code == 403
    assert response.json() == {
        "error": "insufficient_scope",
        "description": "The token does not grant the permissions this route requires",
    }
    assert response.headers["WWW-Authenticate"] == (
        'Bearer error="insufficient_scope", scope="read write", '
        'resource_metadata="https://api.example.test/.well-known/oauth-protected-resource"'
    )


@pytest.mark.parametrize(("scope", "expected"), [("read", 200), ("write", 403)])
def test_fastapi_security_scopes(client: TestClient, issuer: FakeIssuer, scope: str,
                                 expected: int) -> None:  # fmt: skip
    response = call(client, "/security", issuer.mint(scope=scope))
    assert response.status_code == expected
    if expected == 403:
        assert 'scope="read"' in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize(
    ("permissions", "expected"),
    [(["delete:posts", "x"], 200), (["read:posts"], 403), (None, 403), ("delete:posts", 403)],
    ids=["granted", "other", "absent", "string-not-array"],
)
def test_permissions(client: TestClient, issuer: FakeIssuer, permissions: Any,
                     expected: int) -> None:  # fmt: skip
    token = issuer.mint(permissions=permissions)
    assert call(client, "/permissions", token).status_code == (401 if permissions == "delete:posts"
                                                                else expected)  # fmt: skip


@pytest.mark.parametrize(
    ("roles", "expected"),
    [(["editor"], 200), (["admin", "x"], 200), ("admin", 200), (["viewer"], 403), (None, 403)],
    ids=["any-editor", "any-admin", "space-string", "other", "absent"],
)
def test_namespaced_roles(client: TestClient, issuer: FakeIssuer, roles: Any,
                          expected: int) -> None:  # fmt: skip
    token = issuer.mint(**{ROLES: roles})
    assert call(client, "/roles", token).status_code == expected


@pytest.mark.parametrize(("org_role", "expected"), [("admin", 200), ("member", 403)])
def test_custom_rule(client: TestClient, issuer: FakeIssuer, org_role: str, expected: int) -> None:
    assert call(client, "/rule", issuer.mint(org_role=org_role)).status_code == expected


@pytest.mark.parametrize("path", ["/scopes/all", "/permissions", "/roles", "/rule", "/security"])
def test_forged_token_with_the_right_rights_is_401_not_403(
    client: TestClient, issuer: FakeIssuer, path: str
) -> None:
    head, _, sig = issuer.mint().split(".")
    import json

    rich = issuer.claims(scope="read write", permissions=["delete:posts"],
                         org_role="admin", **{ROLES: ["admin"]})  # fmt: skip
    forged = f"{head}.{b64url(json.dumps(rich).encode())}.{sig}"
    assert call(client, path, forged).status_code == 401


def test_factories_are_memoised() -> None:
    assert require_permissions("a") is require_permissions("a")
    assert require_roles("a", any_of=True) is require_roles("a", any_of=True)
    assert require_roles("a", any_of=True) is not require_roles("a")
    assert require_rule(is_org_admin) is require_rule(is_org_admin)


def test_auth_state_never_raises(client: TestClient, issuer: FakeIssuer) -> None:
    assert client.get("/state").json() == {"auth": False, "method": None, "error": None,
                                           "sub": None, "scopes": []}  # fmt: skip
    ok = call(client, "/state", issuer.mint(sub="s1", scope="read")).json()
    assert ok == {"auth": True, "method": "bearer", "error": None, "sub": "s1", "scopes": ["read"]}
    bad = call(client, "/state", "garbage").json()
    assert bad["auth"] is False and bad["error"] == "invalid_token"


def test_auth_state_with_provider_down(guard: OIDCGuard, issuer: FakeIssuer) -> None:
    with issuer.outage("down"), TestClient(authz_app(guard)) as client:
        state = call(client, "/state", issuer.mint()).json()
    assert state["auth"] is False and state["error"] == "temporarily_unavailable"


def test_session_users_get_scopes_from_their_access_token(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    guard = web_guard(issuer, clock, login_params=("scope",), login_scopes=("read",))
    with TestClient(authz_app(guard), base_url=BASE_URL) as client:
        login(client, issuer, scope="openid profile read")
        state = client.get("/state").json()
        assert state["method"] == "session" and "read" in state["scopes"]
        assert client.get("/security").status_code == 200
        assert client.get("/scopes/all").status_code == 403


# -- typed users -------------------------------------------------------------------------------


class MyUser(User):
    roles: list[str] = Field(default=[], alias=ROLES)
    org_id: str
    internal_notes: str | None = Field(default=None, exclude=True)  # private: never sent out


CurrentUser = Annotated[MyUser, Depends(require_user)]


def test_custom_model_alias_private_fields_and_profile(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    guard = web_guard(issuer, clock, user_model=MyUser)
    app = authz_app(guard)

    @app.get("/me")
    async def me(user: CurrentUser) -> dict[str, Any]:
        assert isinstance(user, MyUser)
        return {"roles": user.roles, "org": user.org_id, "notes": user.internal_notes}

    with TestClient(app, base_url=BASE_URL) as client:
        issuer.login_as("typed", org_id="o1", internal_notes="secret-note", **{ROLES: ["admin"]})
        login(client, issuer)
        assert client.get("/me").json() == {"roles": ["admin"], "org": "o1", "notes": "secret-note"}
        profile = client.get("/auth/profile").json()
        assert profile["org_id"] == "o1"
        assert "internal_notes" not in profile and "secret-note" not in str(profile)
        token = issuer.mint(**{ROLES: ["x"]})  # org_id missing: does not fit the model
        response = client.get("/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_token"


# -- OpenAPI -----------------------------------------------------------------------------------


def test_openapi_security_schemes_and_scopes(client: TestClient, issuer: FakeIssuer) -> None:
    schema = client.get("/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["OpenIdConnect"] == {
        "type": "openIdConnect",
        "openIdConnectUrl": f"{issuer.issuer}/.well-known/openid-configuration",
    }
    assert schemes["BearerAuth"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    paths = schema["paths"]
    assert paths["/scopes/all"]["get"]["security"] == [
        {"OpenIdConnect": ["read", "write"]},
        {"BearerAuth": []},
    ]
    assert paths["/security"]["get"]["security"][0] == {"OpenIdConnect": ["read"]}
    assert paths["/permissions"]["get"]["security"][0] == {"OpenIdConnect": []}
    assert {} in paths["/optional"]["get"]["security"]
    assert "security" not in paths["/public"]["get"]


def test_swagger_ui_uses_pkce_with_the_client(issuer: FakeIssuer, clock: FakeClock) -> None:
    """Swagger UI asks for the audience: without it the provider hands out an opaque token and
    every "Try it out" answers 401 invalid_token."""
    app = authz_app(web_guard(issuer, clock, swagger_client_id="swagger-ui"))
    assert app.swagger_ui_init_oauth == {
        "clientId": "swagger-ui",
        "usePkceWithAuthorizationCodeGrant": True,
        "scopes": "openid profile email",
        "additionalQueryStringParams": {"audience": issuer.audience, "resource": issuer.audience},
    }
    assert authz_app(web_guard(issuer, clock)).swagger_ui_init_oauth["clientId"] == "test-client"
    mine = FastAPI()
    mine.swagger_ui_init_oauth = {"appName": "mine", "scopes": "openid"}
    web_guard(issuer, clock, swagger_client_id="swagger-ui").install(mine)
    assert mine.swagger_ui_init_oauth["appName"] == "mine"
    assert mine.swagger_ui_init_oauth["scopes"] == "openid"  # the app's own settings win


def test_protected_operations_declare_401_and_403(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    protected = paths["/scopes/all"]["get"]["responses"]
    assert {"401", "403"} <= set(protected)
    assert protected["401"]["content"]["application/json"]["schema"]["required"] == [
        "error", "description",
    ]  # fmt: skip
    assert "401" not in paths["/public"]["get"]["responses"]
    assert "401" not in paths["/optional"]["get"]["responses"]  # anonymous callers allowed


# -- multi-issuer ------------------------------------------------------------------------------


@pytest.fixture
def second(clock: FakeClock) -> FakeIssuer:
    return FakeIssuer("https://second.example.test", audience="https://api-2.example.test",
                      clock=clock)  # fmt: skip


def test_two_issuers_side_by_side_and_a_third_refused_without_network(
    issuer: FakeIssuer, second: FakeIssuer, clock: FakeClock
) -> None:
    third = FakeIssuer("https://third.example.test", clock=clock)
    guard = OIDCGuard(
        issuer=issuer.issuer, audience=issuer.audience, clock=clock,
        transport=combined_transport(issuer, second, third),
        trusted_issuers=[TrustedIssuer(second.issuer, second.audience)],
    )  # fmt: skip
    with TestClient(authz_app(guard)) as client:
        assert call(client, "/optional", issuer.mint(sub="a")).text == '"a"'
        assert call(client, "/optional", second.mint(sub="b")).text == '"b"'
        # The second issuer's audience is its own: a token for the first API is refused.
        assert call(client, "/optional", second.mint(aud=issuer.audience)).status_code == 401
        # A key id of one issuer never validates a token claiming the other issuer.
        cross = issuer.sign(second.claims(), key=issuer.signing_key)
        assert call(client, "/optional", cross).status_code == 401
        before = sum(third.requests.values())
        for _ in range(5):
            assert call(client, "/optional", third.mint()).status_code == 401
        assert sum(third.requests.values()) == before == 0
        assert issuer.requests["unrouted"] == 0


def test_issuer_resolver_for_tenants(
    issuer: FakeIssuer, second: FakeIssuer, clock: FakeClock
) -> None:
    asked: list[str] = []

    async def resolve(iss: str) -> TrustedIssuer | None:
        asked.append(iss)
        return TrustedIssuer(iss, second.audience) if iss == second.issuer else None

    guard = OIDCGuard(
        issuer=issuer.issuer, audience=issuer.audience, clock=clock,
        transport=combined_transport(issuer, second), issuer_resolver=resolve,
    )  # fmt: skip
    with TestClient(authz_app(guard)) as client:
        assert call(client, "/optional", second.mint(sub="tenant")).text == '"tenant"'
        assert call(client, "/optional", second.mint(sub="again")).text == '"again"'
        evil = FakeIssuer("https://evil.example.test", clock=clock)
        assert call(client, "/optional", evil.mint()).status_code == 401
    assert asked == [second.issuer, evil.issuer]


# -- require_rule: sync and async rules (issue #15) ----------------------------------------------


class OrgUser(User):
    org_role: str | None = None


async def is_org_admin_async(user: OrgUser) -> bool:  # a rule typed for a user subclass
    return user.org_role == "admin"


def says_yes(user: User) -> str:  # a rule that returns a truthy non-bool: a bug in the app
    return "yes"


def rule_app(guard: OIDCGuard) -> FastAPI:
    app = FastAPI(lifespan=guard.lifespan)
    guard.install(app)

    @app.get("/async-rule")
    async def by_async(u: User = Depends(require_rule(is_org_admin_async))) -> str:
        return u.sub

    @app.get("/truthy-rule")
    async def by_truthy(u: User = Depends(require_rule(says_yes))) -> str:
        return u.sub

    return app


def test_an_async_rule_is_awaited_not_taken_as_true(
    issuer: FakeIssuer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Attack: a route guarded by an ``async def`` rule that says no. The coroutine object is
    truthy: a rule that is called but not awaited lets everyone in."""
    guard = OIDCGuard(
        issuer=issuer.issuer, audience=issuer.audience, transport=issuer.transport,
        clock=clock, user_model=OrgUser,
    )  # fmt: skip
    with TestClient(rule_app(guard)) as client:
        member = {"Authorization": f"Bearer {issuer.mint(org_role='member')}"}
        admin = {"Authorization": f"Bearer {issuer.mint(org_role='admin')}"}
        refused = client.get("/async-rule", headers=member)
        assert refused.status_code == 403
        assert refused.json()["error"] == "insufficient_scope"
        assert client.get("/async-rule", headers=admin).status_code == 200
        assert client.get("/async-rule").status_code == 401


def test_a_rule_that_returns_no_bool_refuses(
    issuer: FakeIssuer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A rule that returns ``"yes"`` (or ``None``) is a bug in the app: it refuses, loudly."""
    guard = OIDCGuard(
        issuer=issuer.issuer, audience=issuer.audience, transport=issuer.transport, clock=clock
    )
    with TestClient(rule_app(guard)) as client, caplog.at_level("ERROR"):
        response = client.get("/truthy-rule", headers={"Authorization": f"Bearer {issuer.mint()}"})
    assert response.status_code == 403
    assert "returned str, not a bool" in caplog.text


@pytest.mark.parametrize("not_a_rule", [None, "admin", 42, ["admin"]])
def test_a_rule_that_is_not_callable_is_refused_at_declaration(not_a_rule: Any) -> None:
    with pytest.raises(TypeError, match="needs a function of the user"):
        require_rule(not_a_rule)


def test_rules_stay_memoised_sync_and_async() -> None:
    assert require_rule(is_org_admin_async) is require_rule(is_org_admin_async)
    assert require_rule(is_org_admin, name="x") is require_rule(is_org_admin, name="x")
    assert require_rule(is_org_admin, name="x") is not require_rule(is_org_admin)


RULE_TYPING = """
from fastapi_oidc_guard import User, require_rule


class OrgUser(User):
    org_role: str | None = None


def sync_rule(user: OrgUser) -> bool:
    return user.org_role == "admin"


async def async_rule(user: OrgUser) -> bool:
    return user.org_role == "admin"


def counts(user: OrgUser) -> int:
    return 1


require_rule(sync_rule)
require_rule(async_rule, name="admins")
require_rule(42)  # line 23: not a rule
require_rule(counts)  # line 24: returns no bool
"""


def test_require_rule_keeps_its_typed_signature(tmp_path: Any) -> None:
    """mypy sees ``require_rule``'s signature (the memoised factory used to erase it): sync and
    async rules of a user subclass check, a non-callable and a non-bool rule do not."""
    from mypy import api

    snippet = tmp_path / "rules.py"
    snippet.write_text(RULE_TYPING)
    out, _, status = api.run(["--strict", "--no-error-summary", str(snippet)])
    lines = sorted(int(line.split(":")[1]) for line in out.splitlines() if ": error:" in line)
    assert (status, lines) == (1, [23, 24]), out
