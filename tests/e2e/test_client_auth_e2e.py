"""Client authentication by ``private_key_jwt`` (RFC 7523) and pushed authorization requests
(RFC 9126) against the real provider, which requires both for this client: login (the browser
is sent only a ``request_uri``), code exchange, refresh, client credentials and revocation at
logout all authenticate with a signed assertion; the client secret is never sent."""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from fastapi_oidc_guard import OIDCGuard

from ..web import web_app
from ._provider import OIDCProviderProcess, drive_login, drive_logout, generate_rsa_jwk
from ._server import ServedApp, free_socket

pytestmark = pytest.mark.e2e

PUBLIC = ("kty", "kid", "use", "alg", "n", "e")


@pytest.mark.parametrize("how", ["explicit", "auto"])
def test_private_key_jwt_with_pushed_authorization_requests(
    make_oidc_provider: Callable[..., OIDCProviderProcess], how: str
) -> None:
    sock = free_socket()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    key = generate_rsa_jwk(kid="app-key-1")
    provider = make_oidc_provider({
        "client": {
            "redirect_uris": [f"{base}/auth/callback"],
            "post_logout_redirect_uris": [f"{base}/"],
            "extra": {"token_endpoint_auth_method": "private_key_jwt",
                      "token_endpoint_auth_signing_alg": "RS256",
                      "jwks": {"keys": [{k: key[k] for k in PUBLIC}]}},
        },
        "api": {"access_token_ttl": 30},
        "features": {"pushedAuthorizationRequests": {
            "enabled": True, "requirePushedAuthorizationRequests": True}},
    })  # fmt: skip
    assert provider.discovery()["require_pushed_authorization_requests"] is True
    settings = {} if how == "auto" else {"token_endpoint_auth": "private_key_jwt",
                                         "use_par": True}  # fmt: skip
    guard = OIDCGuard(
        issuer=provider.issuer, audience=provider.api_identifier, client_id=provider.client_id,
        base_url=base, session_secret="k" * 40, client_private_key=json.dumps(key), **settings,
    )  # fmt: skip
    with ServedApp(web_app(guard), sock), httpx.Client(timeout=10) as browser:
        start = browser.get(f"{base}/auth/login?prompt=consent", follow_redirects=False)
        query = parse_qs(urlsplit(start.headers["location"]).query)
        assert set(query) == {"client_id", "request_uri"}  # nothing else reaches the browser
        callback = drive_login(browser, f"{base}/auth/login?prompt=consent", login="pat")
        assert browser.get(callback, follow_redirects=False).status_code == 302
        assert browser.get(f"{base}/api/protected").json()["userId"] == "pat"
        assert browser.get(f"{base}/api/token").status_code == 200  # 30 s < min_ttl: refresh
        assert browser.get(f"{base}/api/m2m").status_code == 200
        counters = provider.counters()
        assert counters.get("pushed_authorization_request", 0) == 2
        assert counters.get("token_authorization_code") == 1
        assert counters.get("token_refresh_token") == 1
        assert counters.get("token_client_credentials") == 1
        assert not counters.get("token_error"), counters
        logout = browser.post(f"{base}/auth/logout", follow_redirects=False)
        assert drive_logout(browser, logout.headers["location"]).startswith(f"{base}/")
        assert provider.counters().get("revocation") == 1
        assert not provider.counters().get("revocation_error")


def test_a_wrong_key_is_refused_by_the_provider(
    make_oidc_provider: Callable[..., OIDCProviderProcess],
) -> None:
    """The provider refuses an assertion signed by another key: the login fails with 503 (our
    configuration is wrong: logged at ERROR), and no session starts."""
    sock = free_socket()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    registered, other = generate_rsa_jwk(kid="k1"), generate_rsa_jwk(kid="k1")
    provider = make_oidc_provider({
        "client": {"redirect_uris": [f"{base}/auth/callback"],
                   "extra": {"token_endpoint_auth_method": "private_key_jwt",
                             "jwks": {"keys": [{k: registered[k] for k in PUBLIC}]}}},
    })  # fmt: skip
    guard = OIDCGuard(
        issuer=provider.issuer, audience=provider.api_identifier, client_id=provider.client_id,
        base_url=base, session_secret="k" * 40, client_private_key=json.dumps(other),
    )  # fmt: skip
    with ServedApp(web_app(guard), sock), httpx.Client(timeout=10) as browser:
        callback = drive_login(browser, f"{base}/auth/login", login="pat")
        answer = browser.get(callback, follow_redirects=False)
        assert answer.status_code == 503
        assert answer.json()["error"] == "temporarily_unavailable"
        assert browser.get(f"{base}/api/protected").status_code == 401
