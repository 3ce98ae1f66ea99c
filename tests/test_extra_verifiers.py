"""Extra verifiers (API keys) beside OIDC tokens on the same dependencies. The attacks: a
guessed key, a verifier answer that is truthy but not claims, a prefixed credential slipping
into OIDC verification (or a JWT into the verifier), a second header smuggling a key past a
bad Authorization header, claims the user model refuses, a route editing the store's claims,
and configurations that would let one verifier take another's credentials."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from fastapi_oidc_guard import (
    ConfigurationError,
    CredentialVerifier,
    OIDCGuard,
    User,
    require_principal,
    require_scopes,
    require_user,
)
from fastapi_oidc_guard.testing import FakeIssuer

KEYS: dict[str, dict[str, Any]] = {
    "sk_live_good": {"sub": "svc-1", "scope": "invoices:read", "groups": ["billing"]},
    "hdr-good": {"sub": "svc-2", "scope": "invoices:read"},
    "apikey-good": {"sub": "svc-3"},
}
calls: list[str] = []


def lookup(key: str) -> dict[str, Any] | None:
    calls.append(key)
    return KEYS.get(key)


async def async_lookup(key: str) -> Any:
    calls.append(key)
    return KEYS.get(key)


def api(issuer: FakeIssuer, *verifiers: CredentialVerifier) -> FastAPI:
    guard = OIDCGuard(
        issuer=issuer.issuer, audience=issuer.audience, transport=issuer.transport,
        verifiers=verifiers, clock=issuer.clock,
    )  # fmt: skip
    app = FastAPI(lifespan=guard.lifespan)
    guard.install(app)

    @app.get("/api/me")
    async def me(user: User = Depends(require_user)) -> dict[str, Any]:
        return {"sub": user.sub, "by": user.authenticated_by, "kind": user.principal}

    @app.get("/api/invoices")
    async def invoices(user: User = Depends(require_scopes("invoices:read"))) -> dict[str, Any]:
        assert user.model_extra is not None
        user.model_extra.setdefault("groups", []).append("edited")  # a careless route
        return {"sub": user.sub}

    @app.get("/api/people")
    async def people(user: User = Depends(require_principal("user"))) -> dict[str, str]:
        return {"sub": user.sub}

    return app


VERIFIERS = (
    CredentialVerifier("api_key", lookup, prefix="sk_live_"),
    CredentialVerifier("header_key", async_lookup, header="X-API-Key"),
    CredentialVerifier("scheme_key", lookup, scheme="ApiKey"),
)


@pytest.fixture
def client(issuer: FakeIssuer) -> Any:
    calls.clear()
    with TestClient(api(issuer, *VERIFIERS)) as test_client:
        yield test_client


def test_each_way_of_presenting_a_key_authenticates(client: TestClient) -> None:
    by_prefix = client.get("/api/me", headers={"Authorization": "Bearer sk_live_good"})
    assert by_prefix.json() == {"sub": "svc-1", "by": "api_key", "kind": "service"}
    by_header = client.get("/api/me", headers={"X-API-Key": "hdr-good"})
    assert by_header.json() == {"sub": "svc-2", "by": "header_key", "kind": "service"}
    by_scheme = client.get("/api/me", headers={"Authorization": "apikey apikey-good"})
    assert by_scheme.json() == {"sub": "svc-3", "by": "scheme_key", "kind": "service"}


def test_oidc_tokens_keep_working_beside_them(client: TestClient, issuer: FakeIssuer) -> None:
    response = client.get("/api/me", headers={"Authorization": f"Bearer {issuer.mint()}"})
    assert response.json() == {"sub": "user-1", "by": "bearer", "kind": "user"}
    assert calls == []  # a JWT never reaches a verifier


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer sk_live_guess"},
        {"Authorization": "Bearer sk_live_"},  # the prefix alone
        {"X-API-Key": "nope"},
        {"X-API-Key": ""},
        {"Authorization": "ApiKey nope"},
        {"Authorization": "Bearer sk_live_" + "x" * 5000},  # oversized: verify is not called
    ],
)
def test_an_unknown_key_is_401(client: TestClient, headers: dict[str, str]) -> None:
    response = client.get("/api/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert all(len(c) <= 4096 for c in calls)


def test_a_prefixed_token_never_reaches_oidc_verification(
    client: TestClient, issuer: FakeIssuer
) -> None:
    jwks = issuer.requests["jwks"]
    response = client.get("/api/me", headers={"Authorization": "Bearer sk_live_" + issuer.mint()})
    assert response.status_code == 401
    assert issuer.requests["jwks"] == jwks and len(calls) == 1


def test_a_bad_authorization_header_is_not_rescued_by_a_key_header(client: TestClient) -> None:
    response = client.get(
        "/api/me", headers={"Authorization": "Bearer junk", "X-API-Key": "hdr-good"}
    )
    assert response.status_code == 401


@pytest.mark.parametrize("answer", [True, "svc-1", ["sub"], 1, None])
def test_a_verifier_answer_that_is_not_claims_refuses(issuer: FakeIssuer, answer: Any) -> None:
    verifier = CredentialVerifier("api_key", lambda key: answer, prefix="sk_live_")
    with TestClient(api(issuer, verifier)) as client:
        response = client.get("/api/me", headers={"Authorization": "Bearer sk_live_good"})
    assert response.status_code == 401


@pytest.mark.parametrize(
    "claims", [{}, {"sub": ""}, {"sub": 7}, {"sub": "x", "email_verified": "maybe"}]
)
def test_claims_the_user_model_refuses_are_401(issuer: FakeIssuer, claims: dict[str, Any]) -> None:
    verifier = CredentialVerifier("api_key", lambda key: claims, prefix="sk_live_")
    with TestClient(api(issuer, verifier)) as client:
        response = client.get("/api/me", headers={"Authorization": "Bearer sk_live_good"})
    assert response.status_code == 401


def test_scopes_and_principals_apply_to_verified_keys(client: TestClient) -> None:
    assert client.get("/api/invoices", headers={"X-API-Key": "hdr-good"}).status_code == 200
    no_scope = client.get("/api/invoices", headers={"Authorization": "ApiKey apikey-good"})
    assert no_scope.status_code == 403
    service = client.get("/api/people", headers={"Authorization": "Bearer sk_live_good"})
    assert service.status_code == 403


def test_a_route_editing_its_user_does_not_edit_the_store(client: TestClient) -> None:
    for _ in range(2):
        client.get("/api/invoices", headers={"Authorization": "Bearer sk_live_good"})
    assert KEYS["sk_live_good"]["groups"] == ["billing"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "bearer", "prefix": "x_"}, "name"),
        ({"name": "Api", "prefix": "x_"}, "name"),
        ({"name": "k", "scheme": "Bearer"}, "scheme"),
        ({"name": "k", "scheme": "DPoP"}, "scheme"),
        ({"name": "k", "scheme": "Basic"}, "scheme"),
        ({"name": "k", "header": "Authorization"}, "header"),
        ({"name": "k", "header": "Cookie"}, "header"),
        ({"name": "k", "header": "X Key"}, "header"),
        ({"name": "k", "prefix": "sk"}, "prefix"),  # no separator: would take "skeleton..."
        ({"name": "k", "prefix": "eyJ_"}, "prefix"),  # the start of every JWT
        ({"name": "k", "prefix": "sk_", "header": "X-Key"}, "one of"),
        ({"name": "k"}, "one of"),
    ],
)
def test_a_verifier_that_could_take_other_credentials_is_refused(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        CredentialVerifier(verify=lookup, **kwargs)


def test_overlapping_verifiers_are_refused(issuer: FakeIssuer) -> None:
    for pair in (
        (
            CredentialVerifier("a", lookup, prefix="sk_"),
            CredentialVerifier("b", lookup, prefix="sk_live_"),
        ),
        (
            CredentialVerifier("a", lookup, scheme="ApiKey"),
            CredentialVerifier("b", lookup, scheme="apikey"),
        ),
        (
            CredentialVerifier("a", lookup, prefix="x_"),
            CredentialVerifier("a", lookup, prefix="y_"),
        ),
    ):
        with pytest.raises(ConfigurationError):
            api(issuer, *pair)
