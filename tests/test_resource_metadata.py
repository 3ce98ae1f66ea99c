"""RFC 9728 protected-resource metadata: the document, where it is served (the identifier's
path), and ``resource_metadata`` in every 401/403 challenge of the bearer path. The attacks:
a Host header that would point clients at another metadata URL, an identifier that is not a
safe URL, a document that leaks a credential or differs per caller."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import Depends, FastAPI, Security
from fastapi.testclient import TestClient

from fastapi_oidc_guard import (
    ConfigurationError,
    OIDCGuard,
    TrustedIssuer,
    User,
    require_principal,
    require_scopes,
    require_step_up,
    require_user,
)
from fastapi_oidc_guard.testing import FakeIssuer, combined_transport

WELL_KNOWN = "/.well-known/oauth-protected-resource"
GUID = "6e74172b-be56-4843-9ff4-e66a39bb12e3"


def api(issuer: FakeIssuer, **settings: Any) -> FastAPI:
    settings.setdefault("audience", issuer.audience)
    guard = OIDCGuard(issuer=issuer.issuer, transport=issuer.transport, **settings)
    app = FastAPI(lifespan=guard.lifespan)
    guard.install(app)

    @app.get("/api/items")
    async def items(user: User = Depends(require_scopes("items:read"))) -> dict[str, str]:
        return {"sub": user.sub}

    @app.post("/api/items")
    async def add(user: User = Security(require_user, scopes=["items:write"])) -> dict[str, str]:
        return {"sub": user.sub}

    @app.get("/api/me")
    async def me(user: User = Depends(require_user)) -> dict[str, str]:
        return {"sub": user.sub}

    @app.get("/api/jobs")
    async def jobs(user: User = Depends(require_principal("service"))) -> dict[str, str]:
        return {"sub": user.sub}

    @app.get("/api/transfer")
    async def transfer(user: User = Depends(require_step_up(max_age=60))) -> dict[str, str]:
        return {"sub": user.sub}

    return app


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def issuer() -> FakeIssuer:
    return FakeIssuer()


def test_the_document_names_the_resource_its_issuer_and_the_routes_scopes(
    issuer: FakeIssuer,
) -> None:
    with TestClient(api(issuer)) as client:
        response = client.get(WELL_KNOWN)
    assert response.status_code == 200
    assert response.json() == {
        "resource": issuer.audience,  # a client checks it equals the URL it started from
        "authorization_servers": [issuer.issuer],
        "bearer_methods_supported": ["header"],
        "scopes_supported": ["items:read", "items:write"],
        "dpop_signing_alg_values_supported": ["ES256", "PS256", "RS256", "EdDSA"],
        "dpop_bound_access_tokens_required": False,
    }
    assert response.headers["Access-Control-Allow-Origin"] == "*"  # browser-based clients
    assert "max-age" in response.headers["Cache-Control"]


def test_an_identifier_with_a_path_is_served_below_the_well_known_prefix(
    issuer: FakeIssuer,
) -> None:
    resource = "https://api.example.test/v1/mcp"
    with TestClient(api(issuer, audience=resource)) as client:
        assert client.get(WELL_KNOWN).status_code == 404
        document = client.get(WELL_KNOWN + "/v1/mcp")
        assert document.status_code == 200 and document.json()["resource"] == resource
        challenge = client.get("/api/me").headers["WWW-Authenticate"]
    assert challenge == f'Bearer resource_metadata="https://api.example.test{WELL_KNOWN}/v1/mcp"'


def test_an_audience_that_is_no_url_needs_the_resource_setting(issuer: FakeIssuer) -> None:
    minted = issuer.mint(aud=GUID)
    with TestClient(api(issuer, audience=GUID)) as client:
        assert client.get(WELL_KNOWN).status_code == 404
        assert client.get("/api/me").headers["WWW-Authenticate"] == "Bearer"
        assert client.get("/api/me", headers=bearer(minted)).status_code == 200
    resource = "https://api.example.test/orders"
    with TestClient(api(issuer, audience=GUID, resource=resource)) as client:
        assert client.get(WELL_KNOWN + "/orders").json()["resource"] == resource
        assert (
            f'resource_metadata="https://api.example.test{WELL_KNOWN}/orders"'
            in (client.get("/api/me").headers["WWW-Authenticate"])
        )


@pytest.mark.parametrize("off", ["off", ""])
def test_resource_off_turns_the_metadata_off(issuer: FakeIssuer, off: str) -> None:
    with TestClient(api(issuer, resource=off)) as client:
        assert client.get(WELL_KNOWN).status_code == 404
        assert client.get("/api/me").headers["WWW-Authenticate"] == "Bearer"
    env = {"OIDC_ISSUER": issuer.issuer, "OIDC_AUDIENCE": issuer.audience, "OIDC_RESOURCE": "off"}
    assert OIDCGuard.from_env(env).config.resource_identifier is None


def test_trusted_issuers_are_authorization_servers_too() -> None:
    first, second = FakeIssuer(), FakeIssuer("https://partner.example.test")
    guard = OIDCGuard(
        issuer=first.issuer, audience=first.audience,
        transport=combined_transport(first, second),
        trusted_issuers=[TrustedIssuer(second.issuer, first.audience)],
    )  # fmt: skip
    app = FastAPI()
    guard.install(app)
    servers = TestClient(app).get(WELL_KNOWN).json()["authorization_servers"]
    assert servers == [first.issuer, second.issuer]


REFUSALS = {
    "no credentials": ("GET", "/api/me", None, 401, None),
    "bad token": ("GET", "/api/me", "not-a-token", 401, "invalid_token"),
    "expired": ("GET", "/api/me", {"exp": 1}, 401, "invalid_token"),
    "other audience": ("GET", "/api/me", {"aud": "https://other.example"}, 401, "invalid_token"),
    "missing scope": ("GET", "/api/items", {"scope": "profile"}, 403, "insufficient_scope"),
    "Security scope": ("POST", "/api/items", {"scope": "items:read"}, 403, "insufficient_scope"),
    "wrong principal": ("GET", "/api/jobs", {}, 403, "insufficient_scope"),
    "step-up": ("GET", "/api/transfer", {"auth_time": 1}, 401, "insufficient_user_authentication"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_every_refusal_of_the_bearer_path_names_the_metadata(issuer: FakeIssuer, case: str) -> None:
    method, path, credential, status, error = REFUSALS[case]
    headers = {}
    if isinstance(credential, str):
        headers = bearer(credential)
    elif isinstance(credential, dict):
        headers = bearer(issuer.mint(**credential))
    with TestClient(api(issuer)) as client:
        response = client.request(method, path, headers=headers)
    assert response.status_code == status
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert challenge.endswith(f'resource_metadata="{issuer.audience}{WELL_KNOWN}"')
    if error:
        assert f'error="{error}"' in challenge


def test_a_hostile_host_header_changes_neither_the_url_nor_the_document(
    issuer: FakeIssuer,
) -> None:
    """The metadata URL comes from the configured identifier: a request for another Host (a
    proxy that forwards it, a poisoned cache) cannot send clients to an attacker's metadata."""
    with TestClient(api(issuer)) as client:
        evil = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}
        challenge = client.get("/api/me", headers=evil).headers["WWW-Authenticate"]
        document = client.get(WELL_KNOWN, headers=evil).json()
    assert "evil" not in challenge and "evil" not in str(document)
    assert document["resource"] == issuer.audience


def test_the_document_is_the_same_for_every_caller(issuer: FakeIssuer) -> None:
    with TestClient(api(issuer)) as client:
        anonymous = client.get(WELL_KNOWN).json()
        signed_in = client.get(WELL_KNOWN, headers=bearer(issuer.mint(scope="secret:x"))).json()
        garbage = client.get(WELL_KNOWN, headers=bearer("x" * 5000))
    assert anonymous == signed_in == garbage.json() and garbage.status_code == 200


@pytest.mark.parametrize(
    "resource",
    [
        "http://api.example.com/",  # plain http off loopback
        "https://api.example.com/?tenant=1",
        "https://api.example.com/#x",
        'https://api.example.com/"injected',
        "https://api.example.com\\@evil.example/",
        "ftp://api.example.com/",
        "https://[::1",
    ],
)
def test_an_unsafe_resource_identifier_is_refused_at_start(resource: str) -> None:
    with pytest.raises(ConfigurationError, match="OIDC_RESOURCE"):
        OIDCGuard(issuer="https://idp.example.com", audience=GUID, resource=resource)


def test_an_unsafe_audience_is_no_resource_identifier() -> None:
    """An audience with a quote or a query never reaches a challenge: no metadata instead."""
    for audience in ('https://api.example.com/"x', "https://api.example.com/?q=1", "urn:x"):
        guard = OIDCGuard(issuer="https://idp.example.com", audience=audience)
        assert guard.config.resource_identifier is None
