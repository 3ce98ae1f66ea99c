"""The fake issuer's public clients (Swagger UI's: PKCE, no secret) are held to a real
provider's rules, so tests against it cannot pass where a real provider refuses: a client
redeems only its own codes and refresh tokens, tokens name the client they were issued to, and
registrations are checked."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from fastapi_oidc_guard.testing import FakeIssuer

REDIRECT = "http://127.0.0.1:8000/auth/callback"
SWAGGER = "http://127.0.0.1:8000/docs/oauth2-redirect"
VERIFIER = "v" * 50
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=")


def issuer() -> FakeIssuer:
    return FakeIssuer(redirect_uris=[REDIRECT], public_clients={"swagger-ui": [SWAGGER]})


def code_for(iss: FakeIssuer, client_id: str, redirect: str) -> str:
    where = iss.oauth.authorize_params({
        "client_id": client_id, "redirect_uri": redirect, "response_type": "code",
        "scope": "openid offline_access", "code_challenge": CHALLENGE.decode(),
        "code_challenge_method": "S256", "state": "s", "audience": iss.audience,
    })  # fmt: skip
    return parse_qs(urlsplit(where).query)["code"][0]


def claims(jwt: str) -> dict[str, Any]:
    part = jwt.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def public_tokens(iss: FakeIssuer) -> dict[str, Any]:
    status, body = iss.oauth.token({
        "grant_type": "authorization_code", "client_id": "swagger-ui",
        "code": code_for(iss, "swagger-ui", SWAGGER), "redirect_uri": SWAGGER,
        "code_verifier": VERIFIER,
    }, None)  # fmt: skip
    assert status == 200
    return body


def test_a_public_clients_tokens_name_it() -> None:
    body = public_tokens(issuer())
    assert claims(body["access_token"])["client_id"] == "swagger-ui"
    assert claims(body["id_token"])["aud"] == "swagger-ui"


def test_a_public_clients_refresh_token_is_its_own() -> None:
    iss = issuer()
    body = public_tokens(iss)
    confidential = {"client_id": iss.client_id, "client_secret": iss.client_secret}
    status, refused = iss.oauth.token(
        {"grant_type": "refresh_token", "refresh_token": body["refresh_token"], **confidential},
        None,
    )
    assert (status, refused["error"]) == (400, "invalid_grant")
    status, refreshed = iss.oauth.token(
        {"grant_type": "refresh_token", "refresh_token": body["refresh_token"],
         "client_id": "swagger-ui"}, None,
    )  # fmt: skip
    assert status == 200
    assert claims(refreshed["access_token"])["client_id"] == "swagger-ui"


def test_the_apps_refresh_token_is_not_a_public_clients() -> None:
    iss = issuer()
    status, body = iss.oauth.token({
        "grant_type": "authorization_code", "client_id": iss.client_id,
        "client_secret": iss.client_secret, "code": code_for(iss, iss.client_id, REDIRECT),
        "redirect_uri": REDIRECT, "code_verifier": VERIFIER,
    }, None)  # fmt: skip
    assert status == 200
    status, refused = iss.oauth.token(
        {"grant_type": "refresh_token", "refresh_token": body["refresh_token"],
         "client_id": "swagger-ui"}, None,
    )  # fmt: skip
    assert (status, refused["error"]) == (400, "invalid_grant")


@pytest.mark.parametrize(
    "clients",
    [
        {"swagger-ui": "http://127.0.0.1:8000/docs/oauth2-redirect"},  # a string, not a list
        {"swagger-ui": ["javascript:alert(1)"]},
        {"swagger-ui": ["http://127.0.0.1:8000/cb#frag"]},
        {"test-client": [SWAGGER]},  # the app's own client id
        {"": [SWAGGER]},
    ],
)
def test_a_bad_public_client_registration_is_refused(clients: dict[str, Any]) -> None:
    with pytest.raises((TypeError, ValueError)):
        FakeIssuer(public_clients=clients)
