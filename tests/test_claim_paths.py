"""Roles and permissions where providers put them (``claim_paths``), the principal kind of a
token (``principal``), and ``require_principal`` on a route."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from fastapi_oidc_guard import OIDCGuard, User, require_principal, require_roles
from fastapi_oidc_guard.claim_paths import claim_at, names_at
from fastapi_oidc_guard.principal import principal_kind
from fastapi_oidc_guard.testing import FakeClock, FakeIssuer

KEYCLOAK = {
    "realm_access": {"roles": ["offline_access", "user"]},
    "resource_access": {"my-api": {"roles": ["admin"]}, "my.dotted.client": {"roles": ["x"]}},
}

ROLE_TABLE: list[Any] = [
    pytest.param({"roles": ["a", "b"]}, "roles", {"a", "b"}, id="array"),
    pytest.param({"roles": "a b  c"}, "roles", {"a", "b", "c"}, id="space-delimited-string"),
    pytest.param(KEYCLOAK, "realm_access.roles", {"offline_access", "user"}, id="keycloak-realm"),
    pytest.param(KEYCLOAK, "resource_access.my-api.roles", {"admin"}, id="keycloak-client"),
    pytest.param(KEYCLOAK, "resource_access.my.dotted.client.roles", {"x"}, id="dotted-client-id"),
    pytest.param(
        KEYCLOAK,
        "realm_access.roles, resource_access.my-api.roles",
        {"offline_access", "user", "admin"},
        id="several-paths",
    ),
    pytest.param(
        {"urn:zitadel:iam:org:project:roles": {"admin": {"1": "acme"}, "viewer": {}}},
        "urn:zitadel:iam:org:project:roles",
        {"admin", "viewer"},
        id="zitadel-object-keys",
    ),
    pytest.param(
        {"https://example.com/roles": ["editor"]},
        "https://example.com/roles",
        {"editor"},
        id="namespaced-claim-with-dots",
    ),
    pytest.param(
        {"a.b": ["literal"], "a": {"b": ["path"]}}, "a.b", {"literal"}, id="literal-dotted-key-wins"
    ),
    pytest.param({"a": {"b": ["path"]}}, "a.b", {"path"}, id="path-when-no-literal"),
    pytest.param({"a": "not an object"}, "a.b", set(), id="through-a-string"),
    pytest.param({"a": ["x"]}, "a.b", set(), id="through-an-array"),
    pytest.param({}, "realm_access.roles", set(), id="missing"),
    pytest.param({"roles": 42}, "roles", set(), id="number"),
    pytest.param({"roles": None}, "roles", set(), id="null"),
    pytest.param({"roles": [1, None, "ok", {"x": 1}, ""]}, "roles", {"ok"}, id="mixed-array"),
    pytest.param({"roles": ["a"]}, "", set(), id="empty-setting"),
    pytest.param({"roles": ["a"]}, "." * 5000, set(), id="huge-path"),
]


@pytest.mark.parametrize(("claims", "path", "expected"), ROLE_TABLE)
def test_role_table(claims: dict[str, Any], path: str, expected: set[str]) -> None:
    assert names_at(claims, path) == expected


def test_deep_nesting_is_bounded() -> None:
    deep: dict[str, Any] = {"roles": ["bottom"]}
    for _ in range(40):
        deep = {"k": deep}
    assert claim_at(deep, ".".join(["k"] * 40 + ["roles"])) is None  # over 16 segments: none
    assert names_at(deep, ".".join(["k"] * 40)) == set()


PRINCIPALS: list[Any] = [
    pytest.param({"sub": "auth0|1", "azp": "app"}, "user", id="auth0-user"),
    pytest.param(
        {"sub": "abc@clients", "azp": "abc", "gty": "client-credentials"}, "service", id="auth0-m2m"
    ),
    pytest.param({"sub": "abc@clients", "azp": "abc"}, "service", id="auth0-m2m-without-gty"),
    pytest.param({"sub": "oid-1", "idtyp": "app", "roles": ["r"]}, "service", id="entra-app"),
    pytest.param({"sub": "x", "idtyp": "user", "scp": "a"}, "user", id="entra-user"),
    pytest.param({"sub": "0oa5", "cid": "0oa5"}, "service", id="okta-client-credentials"),
    pytest.param({"sub": "a@b.c", "cid": "0oa5", "uid": "00u1"}, "user", id="okta-user"),
    pytest.param({"sub": "app1", "client_id": "app1"}, "service", id="rfc9068-cognito-glewlwyd"),
    pytest.param({"sub": "u-1", "client_id": "app1"}, "user", id="rfc9068-user"),
    pytest.param(
        {"sub": "9b1d", "azp": "worker", "preferred_username": "service-account-worker"},
        "service",
        id="keycloak-service-account",
    ),
    pytest.param(
        {"sub": "9b1d", "azp": "web", "preferred_username": "alice"}, "user", id="keycloak-user"
    ),
    pytest.param({"sub": "x", "gty": "password"}, "user", id="other-grant"),
]


@pytest.mark.parametrize(("claims", "expected"), PRINCIPALS)
def test_principal_kind(claims: dict[str, Any], expected: str) -> None:
    assert principal_kind(claims) == expected


USERS_ONLY = require_principal("user")
SERVICES_ONLY = require_principal("service")


@pytest.fixture
def app_and_issuer() -> tuple[FastAPI, FakeIssuer]:
    issuer = FakeIssuer(clock=FakeClock(1_800_000_000))
    guard = OIDCGuard(
        issuer=issuer.issuer,
        audience=issuer.audience,
        transport=issuer.transport,
        clock=issuer.clock,
        roles_claim="realm_access.roles",
    )
    app = FastAPI()
    guard.install(app)

    @app.get("/for-users")
    async def for_users(user: User = Depends(USERS_ONLY)) -> dict[str, str]:
        return {"sub": user.sub}

    @app.get("/for-services")
    async def for_services(user: User = Depends(SERVICES_ONLY)) -> dict[str, str]:
        return {"sub": user.sub}

    @app.get("/admin")
    async def admin(user: User = Depends(require_roles("admin"))) -> dict[str, str]:
        return {"sub": user.sub}

    return app, issuer


def test_routes_for_users_or_services(app_and_issuer: tuple[FastAPI, FakeIssuer]) -> None:
    """Attack: a machine credential (client credentials) calling a route meant for people, and
    a user's token calling a service-only route: both 403 ``wrong_principal``."""
    app, issuer = app_and_issuer
    user = {"Authorization": f"Bearer {issuer.mint(sub='alice', client_id='web')}"}
    service = {"Authorization": f"Bearer {issuer.mint(sub='worker', client_id='worker')}"}
    with TestClient(app) as client:
        assert client.get("/for-users", headers=user).status_code == 200
        assert client.get("/for-services", headers=service).status_code == 200
        refused = client.get("/for-users", headers=service)
        assert refused.status_code == 403
        assert refused.json()["error"] == "wrong_principal"
        assert client.get("/for-services", headers=user).status_code == 403


def test_require_roles_reads_a_dotted_path(app_and_issuer: tuple[FastAPI, FakeIssuer]) -> None:
    app, issuer = app_and_issuer
    admin = issuer.mint(realm_access={"roles": ["admin"]})
    flat = issuer.mint(roles=["admin"], **{"realm_access.roles": "user"})
    broken = issuer.mint(realm_access=["admin"])
    with TestClient(app) as client:
        assert client.get("/admin", headers={"Authorization": f"Bearer {admin}"}).status_code == 200
        for token in (flat, broken):  # a literal "realm_access.roles" claim wins; never a 500
            answer = client.get("/admin", headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 403


def test_require_principal_refuses_other_kinds() -> None:
    with pytest.raises(ValueError, match="user"):
        require_principal("robot")  # type: ignore[arg-type]


SPOOFS: list[Any] = [
    pytest.param(
        {"sub": "u-3", "preferred_username": "service-account-worker"},
        "user",
        id="chosen-username-without-the-client",
    ),
    pytest.param(
        {"sub": "u-3", "azp": "web", "preferred_username": "service-account-worker"},
        "user",
        id="chosen-username-for-another-client",
    ),
    pytest.param(
        {"sub": "sp-oid", "azp": "c0ffee", "azpacr": "1", "roles": ["Jobs.Run"]},
        "service",
        id="entra-v2-app-only-without-idtyp",
    ),
    pytest.param(
        {"sub": "sp-oid", "appid": "c0ffee", "appidacr": "1", "roles": ["Jobs.Run"]},
        "service",
        id="entra-v1-app-only",
    ),
    pytest.param(
        {"sub": "u", "azp": "web", "azpacr": "0", "scp": "read"}, "user", id="entra-delegated"
    ),
]


@pytest.mark.parametrize(("claims", "expected"), SPOOFS)
def test_principal_spoofs(claims: dict[str, Any], expected: str) -> None:
    assert principal_kind(claims) == expected


def test_a_browser_session_is_always_a_user(issuer: FakeIssuer, clock: FakeClock) -> None:
    """Attack: a person whose ID token looks like a service's (a chosen username, a sub equal
    to a client id) reaches a service-only route with their session cookie."""
    from fastapi_oidc_guard.testing import login

    from .web import BASE_URL, web_app, web_guard

    app = web_app(web_guard(issuer, clock))

    @app.get("/for-services")
    async def for_services(user: User = Depends(SERVICES_ONLY)) -> dict[str, str]:
        return {"sub": user.sub}

    with TestClient(app, base_url=BASE_URL) as client:
        # Claims that survive into the session (azp does not) and say "service" on a token.
        login(client, issuer, user={"sub": issuer.client_id, "client_id": issuer.client_id,
                                    "gty": "client-credentials"})  # fmt: skip
        answer = client.get("/for-services")
        assert answer.status_code == 403
        assert answer.json()["error"] == "wrong_principal"
