"""Smoke tests of the e2e OpenID Provider harness (httpx + the helper only)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest

from ._provider import OIDCProviderProcess, drive_login, drive_logout

pytestmark = pytest.mark.e2e

API = "https://api.example.test"


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0) as client:
        yield client


def _auth(op: OIDCProviderProcess) -> tuple[str, str]:
    return (op.client_id, op.client_secret)


def _token(http: httpx.Client, op: OIDCProviderProcess, **form: str) -> httpx.Response:
    return http.post(op.url("/token"), data=form, auth=_auth(op))


def _client_credentials(http: httpx.Client, op: OIDCProviderProcess) -> str:
    resp = _token(http, op, grant_type="client_credentials", resource=API, scope="api:read")
    assert resp.status_code == 200, resp.text
    return str(resp.json()["access_token"])


def _verify(
    http: httpx.Client, op: OIDCProviderProcess, token: str, audience: str
) -> dict[str, Any]:
    """Verify a JWT's signature against the provider's JWKS and return its claims."""
    header = jwt.get_unverified_header(token)
    jwks = jwt.PyJWKSet.from_dict(http.get(op.url("/jwks")).json())
    key = next(k for k in jwks.keys if k.key_id == header["kid"])
    return dict(
        jwt.decode(token, key.key, algorithms=["RS256"], audience=audience, issuer=op.issuer)
    )


def test_discovery_issuer(http: httpx.Client, oidc_provider: OIDCProviderProcess) -> None:
    doc = http.get(oidc_provider.url("/.well-known/openid-configuration")).json()
    assert doc["issuer"] == oidc_provider.issuer
    assert oidc_provider.issuer == f"http://127.0.0.1:{oidc_provider.port}"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["backchannel_logout_supported"] is True
    for endpoint in ("introspection_endpoint", "revocation_endpoint", "end_session_endpoint"):
        assert doc[endpoint].startswith(oidc_provider.issuer)


def test_client_credentials_with_resource_is_jwt(
    http: httpx.Client, oidc_provider: OIDCProviderProcess
) -> None:
    resp = _token(
        http, oidc_provider, grant_type="client_credentials", resource=API, scope="api:read"
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    assert body["scope"] == "api:read"
    token = body["access_token"]
    assert token.count(".") == 2
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "RS256"
    assert header["kid"] == oidc_provider.current_kid
    claims = _verify(http, oidc_provider, token, audience=API)
    assert claims["aud"] == API
    assert claims["iss"] == oidc_provider.issuer
    assert claims["client_id"] == oidc_provider.client_id
    assert claims["sub"] == oidc_provider.client_id
    assert claims["scope"] == "api:read"
    assert claims["exp"] - claims["iat"] == 300


def test_client_credentials_without_resource_is_opaque(
    http: httpx.Client, oidc_provider: OIDCProviderProcess
) -> None:
    """The trap: no resource -> 200 with an opaque token (not a JWT); API scopes are dropped."""
    resp = _token(http, oidc_provider, grant_type="client_credentials", scope="api:read")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert "." not in body["access_token"]
    assert body["expires_in"] == 600
    assert "scope" not in body


def test_client_credentials_unknown_resource_is_rejected(
    http: httpx.Client, oidc_provider: OIDCProviderProcess
) -> None:
    resp = _token(
        http,
        oidc_provider,
        grant_type="client_credentials",
        resource="https://other.test",
        scope="api:read",
    )
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_target"


def test_key_rotation_keeps_issuer(
    http: httpx.Client, make_oidc_provider: Callable[..., OIDCProviderProcess]
) -> None:
    op = make_oidc_provider()
    issuer, kid_a = op.issuer, op.current_kid
    assert jwt.get_unverified_header(_client_credentials(http, op))["kid"] == kid_a

    kid_b = op.rotate_keys()

    assert kid_b != kid_a
    assert op.issuer == issuer
    assert http.get(op.url("/.well-known/openid-configuration")).json()["issuer"] == issuer
    assert [k["kid"] for k in http.get(op.url("/jwks")).json()["keys"]] == [kid_b, kid_a]
    token = _client_credentials(http, op)
    assert jwt.get_unverified_header(token)["kid"] == kid_b
    assert _verify(http, op, token, audience=API)["iss"] == issuer


def test_counters_and_reset(
    http: httpx.Client, make_oidc_provider: Callable[..., OIDCProviderProcess]
) -> None:
    op = make_oidc_provider()
    op.reset_counters()
    assert op.counters() == {}
    http.get(op.url("/jwks"))
    http.get(op.url("/jwks"))
    _client_credentials(http, op)
    _token(http, op, grant_type="client_credentials", resource="https://other.test")
    counters = op.counters()
    assert counters["jwks"] == 2
    assert counters["token"] == 2
    assert counters["token_client_credentials"] == 2
    assert counters["token_client_credentials_error"] == 1
    assert "token_refresh_token" not in counters
    op.reset_counters()
    assert op.counters() == {}


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    return verifier, challenge


def _login(
    http: httpx.Client, op: OIDCProviderProcess, **extra: str
) -> tuple[dict[str, list[str]], str, str]:
    """Run a code flow via devInteractions; return (callback query, verifier, nonce)."""
    verifier, challenge = _pkce()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    params = {
        "response_type": "code",
        "client_id": op.client_id,
        "redirect_uri": "http://127.0.0.1:8000/auth/callback",
        "scope": "openid profile email offline_access",
        "prompt": "consent",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": state,
        "nonce": nonce,
        "resource": API,
        **extra,
    }
    final = drive_login(http, f"{op.url('/auth')}?{urlencode(params)}", login="alice")
    assert final.startswith("http://127.0.0.1:8000/auth/callback?")
    query = parse_qs(urlsplit(final).query)
    assert query["state"] == [state]
    assert query["iss"] == [op.issuer]
    return query, verifier, nonce


def test_authorization_code_login_and_refresh(
    http: httpx.Client, make_oidc_provider: Callable[..., OIDCProviderProcess]
) -> None:
    op = make_oidc_provider(
        {"client": {"backchannel_logout_uri": "http://127.0.0.1:8000/auth/backchannel-logout"}}
    )
    query, verifier, nonce = _login(http, op, scope="openid profile email offline_access api:read")
    assert "code" in query, query

    resp = _token(
        http,
        op,
        grant_type="authorization_code",
        code=query["code"][0],
        redirect_uri="http://127.0.0.1:8000/auth/callback",
        code_verifier=verifier,
        resource=API,
    )
    assert resp.status_code == 200, resp.text
    tokens = resp.json()
    assert tokens["scope"] == "api:read"
    assert {"id_token", "access_token", "refresh_token"} <= tokens.keys()

    id_claims = _verify(http, op, tokens["id_token"], audience=op.client_id)
    assert id_claims["sub"] == "alice"
    assert id_claims["nonce"] == nonce
    assert (
        id_claims["email"] == "alice@example.test"
    )  # resource AT => scope claims go in the ID token
    assert "sid" in id_claims  # because backchannel_logout_session_required
    at_header = jwt.get_unverified_header(tokens["access_token"])
    assert at_header["typ"] == "at+jwt"
    at_claims = _verify(http, op, tokens["access_token"], audience=API)
    assert at_claims["sub"] == "alice"
    assert at_claims["scope"] == "api:read"

    before = op.counters().get("token_refresh_token", 0)
    resp = _token(
        http, op, grant_type="refresh_token", refresh_token=tokens["refresh_token"], resource=API
    )
    assert resp.status_code == 200, resp.text
    refreshed = resp.json()
    assert op.counters()["token_refresh_token"] == before + 1
    assert refreshed["refresh_token"] != tokens["refresh_token"]  # rotate_refresh_token="always"
    assert _verify(http, op, refreshed["access_token"], audience=API)["sub"] == "alice"
    assert _verify(http, op, refreshed["id_token"], audience=op.client_id)["sub"] == "alice"

    # reusing the rotated-out refresh token fails AND revokes the whole grant
    reuse = _token(
        http, op, grant_type="refresh_token", refresh_token=tokens["refresh_token"], resource=API
    )
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"
    after = _token(
        http, op, grant_type="refresh_token", refresh_token=refreshed["refresh_token"], resource=API
    )
    assert after.status_code == 400
    assert after.json()["error"] == "invalid_grant"
    assert op.counters()["token_refresh_token_error"] == 2


def _code_flow_tokens(http: httpx.Client, op: OIDCProviderProcess) -> dict[str, Any]:
    query, verifier, _ = _login(http, op, scope="openid offline_access api:read")
    resp = _token(
        http,
        op,
        grant_type="authorization_code",
        code=query["code"][0],
        redirect_uri="http://127.0.0.1:8000/auth/callback",
        code_verifier=verifier,
        resource=API,
    )
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_refresh_token_survives_key_rotation(
    http: httpx.Client, make_oidc_provider: Callable[..., OIDCProviderProcess]
) -> None:
    op = make_oidc_provider()
    tokens = _code_flow_tokens(http, op)
    kid_a = jwt.get_unverified_header(tokens["access_token"])["kid"]

    kid_b = op.rotate_keys()

    resp = _token(
        http, op, grant_type="refresh_token", refresh_token=tokens["refresh_token"], resource=API
    )
    assert resp.status_code == 200, resp.text
    refreshed = resp.json()
    assert jwt.get_unverified_header(refreshed["access_token"])["kid"] == kid_b != kid_a
    assert _verify(http, op, refreshed["id_token"], audience=op.client_id)["sub"] == "alice"


class _Recorder(BaseHTTPRequestHandler):
    """Records POST bodies (back-channel logout tokens) sent to a loopback listener."""

    received: list[dict[str, list[str]]]

    def do_POST(self) -> None:  # http.server API name
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        self.server.received.append(parse_qs(body.decode()))  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # silence request logging
        pass


@pytest.fixture
def logout_listener() -> Iterator[tuple[str, list[dict[str, list[str]]]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    received: list[dict[str, list[str]]] = []
    server.received = received  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/auth/backchannel-logout", received
    finally:
        server.shutdown()
        server.server_close()


def test_rp_initiated_logout_sends_backchannel_logout(
    http: httpx.Client,
    make_oidc_provider: Callable[..., OIDCProviderProcess],
    logout_listener: tuple[str, list[dict[str, list[str]]]],
) -> None:
    uri, received = logout_listener
    op = make_oidc_provider({"client": {"backchannel_logout_uri": uri}})
    tokens = _code_flow_tokens(http, op)
    sid = jwt.decode(tokens["id_token"], options={"verify_signature": False})["sid"]
    params = {
        "id_token_hint": tokens["id_token"],
        "post_logout_redirect_uri": "http://127.0.0.1:8000/",
        "state": "bye",
    }
    final = drive_logout(http, f"{op.url('/session/end')}?{urlencode(params)}")
    assert final == "http://127.0.0.1:8000/?state=bye"
    # the provider delivers back-channel logout before answering the confirm POST
    assert op.counters()["backchannel_logout"] == 1
    assert len(received) == 1
    logout_token = received[0]["logout_token"][0]
    assert jwt.get_unverified_header(logout_token)["typ"] == "logout+jwt"
    claims = _verify(http, op, logout_token, audience=op.client_id)
    assert claims["sid"] == sid
    assert claims["sub"] == "alice"
    assert "http://schemas.openid.net/event/backchannel-logout" in claims["events"]
    assert "nonce" not in claims
