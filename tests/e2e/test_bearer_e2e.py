"""Resource-server path against a real, certified provider (panva oidc-provider 8.x).

client_credentials with a resource indicator gives a real JWT access token for our audience: the
quickest real bearer token. Then the provider's signing key is rotated and a token signed by the
new key is accepted on first sight.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from fastapi_oidc_guard import OIDCGuard

from ..conftest import build_app
from ._provider import OIDCProviderProcess

pytestmark = pytest.mark.e2e

OTHER_API = "https://other-api.example.test"


def client_credentials_token(provider: OIDCProviderProcess, resource: str) -> str:
    response = httpx.post(
        provider.url("/token"),
        data={"grant_type": "client_credentials", "resource": resource, "scope": "api:read"},
        auth=(provider.client_id, provider.client_secret),
        timeout=10,
    )
    response.raise_for_status()
    token: str = response.json()["access_token"]
    assert token.count(".") == 2, "expected a JWT access token for a resource indicator"
    return token


def header_kid(token: str) -> str:
    import base64
    import json

    head = token.split(".")[0]
    kid: str = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))["kid"]
    return kid


def test_real_provider_bearer_tokens_and_key_rotation(
    make_oidc_provider: Callable[..., OIDCProviderProcess],
) -> None:
    provider = make_oidc_provider()
    guard = OIDCGuard(issuer=provider.issuer, audience=provider.api_identifier)
    app = build_app(guard)

    def call(token: str) -> Any:
        return client.get("/api/protected", headers={"Authorization": f"Bearer {token}"})

    with TestClient(app) as client:
        ours = client_credentials_token(provider, provider.api_identifier)
        ok = call(ours)
        assert ok.status_code == 200, ok.text
        assert ok.json() == {"userId": provider.client_id, "scopes": ["api:read"]}

        other = client_credentials_token(provider, OTHER_API)
        rejected = call(other)
        assert rejected.status_code == 401
        assert rejected.json()["error"] == "invalid_token"

        opaque = httpx.post(
            provider.url("/token"),
            data={"grant_type": "client_credentials"},
            auth=(provider.client_id, provider.client_secret),
            timeout=10,
        ).json()["access_token"]
        assert call(opaque).status_code == 401  # the classic trap: an opaque token

        old_kid = header_kid(ours)
        new_kid = provider.rotate_keys()
        assert new_kid != old_kid
        fresh = client_credentials_token(provider, provider.api_identifier)
        assert header_kid(fresh) == new_kid
        rotated = call(fresh)
        assert rotated.status_code == 200, rotated.text
        assert call(ours).status_code == 200  # the old key is still published
        assert guard.keys.fetch_count == 2  # start-up fetch + one refetch for the new kid
