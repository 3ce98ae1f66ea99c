"""Browser login against the real provider, driven over HTTP through its login and consent
pages: login -> /api/protected with the session cookie -> RP-initiated logout -> 401."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from fastapi_oidc_guard import OIDCGuard, SessionData
from fastapi_oidc_guard.sessions.cookies import read_chunked

from ..web import web_app
from ._provider import OIDCProviderProcess, drive_login, drive_logout
from ._server import ServedApp, free_socket

pytestmark = pytest.mark.e2e


def session_of(guard: OIDCGuard, browser: httpx.Client) -> SessionData:
    assert guard.sessions is not None
    cookies = {c.name: c.value or "" for c in browser.cookies.jar if c.path == "/"}
    assert read_chunked(cookies, "oidc_session") is not None
    header = "; ".join(f"{name}={value}" for name, value in cookies.items()).encode()
    session = asyncio.run(guard.sessions.get({"type": "http", "headers": [(b"cookie", header)]}))
    assert session is not None
    return session


def test_login_session_and_rp_initiated_logout(
    make_oidc_provider: Callable[..., OIDCProviderProcess],
) -> None:
    sock = free_socket()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    provider = make_oidc_provider(
        {"client": {"redirect_uris": [f"{base}/auth/callback"],
                    "post_logout_redirect_uris": [f"{base}/"]}}
    )  # fmt: skip
    guard = OIDCGuard(
        issuer=provider.issuer, audience=provider.api_identifier, client_id=provider.client_id,
        client_secret=provider.client_secret, base_url=base, session_secret="k" * 40,
    )  # fmt: skip
    with ServedApp(web_app(guard), sock), httpx.Client(timeout=10) as browser:
        assert browser.get(f"{base}/api/protected").status_code == 401

        # prompt=consent so that offline_access (a refresh token) is granted.
        callback = drive_login(browser, f"{base}/auth/login?returnTo=/home&prompt=consent",
                               login="alice")  # fmt: skip
        assert callback.startswith(f"{base}/auth/callback?")
        assert "iss" in parse_qs(urlsplit(callback).query)  # the provider speaks RFC 9207
        finished = browser.get(callback, follow_redirects=False)
        assert finished.status_code == 302, finished.text
        assert finished.headers["location"] == "/home"

        me = browser.get(f"{base}/api/protected")
        assert me.status_code == 200, me.text
        assert me.json()["userId"] == "alice"
        profile = browser.get(f"{base}/auth/profile").json()
        assert profile["sub"] == "alice"
        session = session_of(guard, browser)
        assert session.refresh_token  # offline_access granted
        (tokens,) = session.tokens.values()
        assert tokens.access_token.count(".") == 2  # a JWT for our API: audience sent twice
        assert tokens.audience == provider.api_identifier

        logout = browser.post(f"{base}/auth/logout", follow_redirects=False)
        assert logout.status_code == 302
        assert logout.headers["location"].startswith(provider.issuer)
        assert browser.get(f"{base}/api/protected").status_code == 401  # local session gone
        back = drive_logout(browser, logout.headers["location"])
        assert back.startswith(f"{base}/?state=")  # the logout's state comes back
        assert provider.counters().get("revocation", 0) == 1  # refresh token revoked
        assert browser.get(f"{base}/api/protected").status_code == 401
