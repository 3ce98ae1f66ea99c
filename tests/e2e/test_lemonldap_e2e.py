"""LemonLDAP::NG 2.16 (Debian's packages, ``.ci/install-lemonldap.sh``) as the OpenID Provider of
a real app process (uvicorn on 127.0.0.1, ``tests.e2e.lemonldap_app``), configured as a user
would: ``OIDC_ISSUER``, ``OIDC_AUDIENCE`` (the API identifier, LemonLDAP::NG's "additional
audience" of the relying party), ``OIDC_CLIENT_ID``/``SECRET``, ``OIDC_BASE_URL``,
``OIDC_SESSION_SECRET``.

Login through the portal's form; the session works; its access token (a JWT, ``typ: JWT``,
``aud: [client id, api]``) is accepted as a bearer token and the ID token is refused; refresh
after expiry, twice on the same (not rotated) refresh token; userinfo; RP-initiated logout
ends the session (but the ``offline_access`` refresh token lives on at the provider, which has
no revocation endpoint); without ``offline_access`` in ``OIDC_SCOPE``, a logout at the portal
ends the app's session at its next refresh. One xfail shows a library gap:
``access_token(audience=<another API>)`` hands out the token LemonLDAP::NG issued for its
configured audiences as if it were for that API.

No back-channel logout case: LemonLDAP::NG 2.16 has none (discovery says
``backchannel_logout_supported: false``; its logout reaches relying parties only through
front-channel iframes in the browser).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import jwt
import pytest

from ..web import OTHER_API
from ._lemonldap import LemonLDAPProcess, require_lemonldap
from ._server import AppProcess, free_port

pytestmark = pytest.mark.e2e

TTL = 3  # seconds an access token lives at the provider in this file


class Setup:
    """LemonLDAP::NG and the app process on ``port``; ``other_port`` is registered at the
    provider too, for another app process (``start_app(setup.other_port, OIDC_...=...)``)."""

    def __init__(self, op: LemonLDAPProcess, port: int, other_port: int) -> None:
        self.op, self.other_port = op, other_port
        self.app = self.start_app(port)

    def start_app(self, port: int, **env: str) -> AppProcess:
        op, base = self.op, f"http://127.0.0.1:{port}"
        settings = {
            "OIDC_ISSUER": op.issuer, "OIDC_AUDIENCE": op.api_identifier,
            "OIDC_CLIENT_ID": op.client_id, "OIDC_CLIENT_SECRET": op.client_secret,
            "OIDC_BASE_URL": base, "OIDC_SESSION_SECRET": "l" * 48, **env,
        }  # fmt: skip
        try:
            return AppProcess("tests.e2e.lemonldap_app:app", settings, port)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\nLemonLDAP::NG's log:\n{op.log_tail()}") from exc


@pytest.fixture(scope="module")
def llng() -> Iterator[Setup]:
    """LemonLDAP::NG (3 s access tokens) and the app process, registered with each other."""
    require_lemonldap()
    ports = (free_port(), free_port())
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    with LemonLDAPProcess({
        "client": {"redirect_uris": [f"{base}/auth/callback" for base in bases],
                   "post_logout_redirect_uris": [f"{base}/" for base in bases]},
        "api": {"access_token_ttl": TTL},
    }) as op:  # fmt: skip
        setup = Setup(op, *ports)
        try:
            yield setup
        finally:
            setup.app.stop()


def log_in(op: LemonLDAPProcess, app: AppProcess, browser: httpx.Client, user: str) -> None:
    """The app's /auth/login -> the portal's form -> the app's callback -> signed in."""
    callback = op.drive_login(browser, f"{app.url}/auth/login", user)
    assert callback.startswith(f"{app.url}/auth/callback?"), callback
    finished = browser.get(callback, follow_redirects=False)
    assert finished.status_code == 302, finished.text
    assert finished.headers["location"] == "/"


def bearer(app: AppProcess, token: str) -> httpx.Response:
    """``/api/protected`` with only ``Authorization: Bearer`` (no cookie)."""
    return httpx.get(
        f"{app.url}/api/protected", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def unverified(token: str) -> tuple[dict[str, object], dict[str, object]]:
    return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})


def test_login_session_bearer_tokens_and_userinfo(llng: Setup) -> None:
    op, app = llng.op, llng.app
    with httpx.Client(timeout=10) as browser:
        assert browser.get(f"{app.url}/api/protected").status_code == 401
        log_in(op, app, browser, "rtyler")
        login_id_token = browser.get(f"{app.url}/api/session-tokens").json()["id_token"]
        id_header, id_claims = unverified(login_id_token)
        assert id_header["alg"] == "RS256"
        assert id_claims["aud"] == [op.client_id, op.api_identifier]  # the API too
        assert id_claims["azp"] == op.client_id
        assert {"nonce", "at_hash", "auth_time", "acr", "name", "email"} <= id_claims.keys()
        assert "sid" not in id_claims

        me = browser.get(f"{app.url}/api/protected")
        assert me.status_code == 200, me.text
        assert me.json() == {"userId": "rtyler", "email": "rtyler@badwolf.org"}

        profile = browser.get(f"{app.url}/api/userinfo")
        assert profile.status_code == 200, profile.text
        assert profile.json() == {
            "sub": "rtyler", "name": "Rose Tyler", "email": "rtyler@badwolf.org",
            "preferred_username": "rtyler",
        }  # fmt: skip

        token = browser.get(f"{app.url}/api/short-token").json()["token"]
        header, claims = unverified(token)
        kids = [key["kid"] for key in httpx.get(op.discovery()["jwks_uri"]).json()["keys"]]
        assert header == {"alg": "RS256", "typ": "JWT", "kid": kids[0]}  # not at+jwt
        assert claims["aud"] == [op.client_id, op.api_identifier]
        assert claims["client_id"] == op.client_id
        assert claims["iss"] == op.issuer
        assert claims["sub"] == "rtyler"
        assert claims["scope"] == "openid profile email"  # offline_access is never listed
        assert {"jti", "iat", "exp"} <= claims.keys()
        assert claims["email"] == "rtyler@badwolf.org"  # AccessTokenClaims: profile claims too
        assert bearer(app, token).json() == {"userId": "rtyler", "email": "rtyler@badwolf.org"}

        assert bearer(app, login_id_token).status_code == 401  # aud holds the API: nonce tells
        # userinfo refreshed the 3 s access token: the session now holds the refresh's ID
        # token, with at_hash but no nonce; refused all the same.
        refreshed_id_token = browser.get(f"{app.url}/api/session-tokens").json()["id_token"]
        assert refreshed_id_token != login_id_token
        assert "nonce" not in unverified(refreshed_id_token)[1]
        refused = bearer(app, refreshed_id_token)
        assert refused.status_code == 401
        assert refused.json()["error"] == "invalid_token"


def test_refresh_after_expiry_twice_on_the_same_refresh_token(llng: Setup) -> None:
    op, app = llng.op, llng.app
    with httpx.Client(timeout=10) as browser:
        log_in(op, app, browser, "dwho")
        first = browser.get(f"{app.url}/api/short-token").json()
        refresh_token = browser.get(f"{app.url}/api/session-tokens").json()["refresh_token"]
        assert refresh_token

        seen = [first["token"]]
        for _ in range(2):
            # min_ttl=1: refreshed once less than a second remains (bounded: TTL at most).
            time.sleep(min(max(0.0, first["expires_at"] - time.time()) + 0.1, TTL + 1))
            answer = browser.get(f"{app.url}/api/short-token")
            assert answer.status_code == 200, answer.text
            first = answer.json()
            assert first["token"] not in seen
            seen.append(first["token"])
            # LemonLDAP::NG answers a refresh without a new refresh token: the session keeps
            # the one it has and uses it again.
            held = browser.get(f"{app.url}/api/session-tokens").json()
            assert held["refresh_token"] == refresh_token
            assert browser.get(f"{app.url}/api/protected").status_code == 200
            assert bearer(app, first["token"]).status_code == 200

        jtis = {unverified(token)[1]["jti"] for token in seen}
        assert len(jtis) == 3


def test_rp_initiated_logout_ends_the_session(llng: Setup) -> None:
    op, app = llng.op, llng.app
    with httpx.Client(timeout=10) as browser:
        log_in(op, app, browser, "dwho")
        cookie = {"oidc_session": browser.cookies.get("oidc_session", path="/") or ""}
        refresh_token = browser.get(f"{app.url}/api/session-tokens").json()["refresh_token"]

        logout = browser.post(f"{app.url}/auth/logout", follow_redirects=False)
        assert logout.status_code in (302, 303), logout.text
        end_session = logout.headers["location"]
        assert end_session.startswith(op.discovery()["end_session_endpoint"] + "?")
        landing = op.drive_logout(browser, end_session)  # the portal asks for confirmation
        assert landing.startswith(f"{app.url}/"), landing

        assert browser.get(f"{app.url}/api/protected").status_code == 401
        gone = httpx.get(f"{app.url}/api/protected", cookies=cookie, timeout=10)
        assert gone.status_code == 401  # the old cookie too
        # The portal's SSO session ended as well: a new login shows its form again.
        again = browser.get(f"{app.url}/auth/login", follow_redirects=True)
        assert again.url.host == "127.0.0.1" and again.url.port == op.port
        assert 'name="password"' in again.text

        # No revocation endpoint: the offline_access refresh token (OIDC_SCOPE's default)
        # outlives the logout at LemonLDAP::NG (30 days by default).
        assert "revocation_endpoint" not in op.discovery()
        grant = httpx.post(
            op.discovery()["token_endpoint"],
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            auth=(op.client_id, op.client_secret), timeout=10,
        )  # fmt: skip
        assert grant.status_code == 200, grant.text


def test_without_offline_access_a_portal_logout_ends_the_session_at_its_next_refresh(
    llng: Setup,
) -> None:
    """``OIDC_SCOPE`` without ``offline_access``: LemonLDAP::NG still issues a refresh token
    (``RefreshToken``), but one bound to its SSO session. A logout at the portal itself (or
    through another relying party) then ends the app's session at its next refresh: the
    closest thing to single logout that 2.16 offers an app without front-channel iframes."""
    op = llng.op
    app = llng.start_app(llng.other_port, OIDC_SCOPE="openid profile email")
    try:
        with httpx.Client(timeout=10) as browser:
            log_in(op, app, browser, "dwho")
            first = browser.get(f"{app.url}/api/short-token").json()
            refresh_token = browser.get(f"{app.url}/api/session-tokens").json()["refresh_token"]
            assert refresh_token

            portal = browser.get(f"{op.issuer}/?logout=1", follow_redirects=False)
            assert portal.status_code == 200, portal.text
            assert browser.cookies.get("lemonldap") is None  # the SSO session is over
            assert browser.get(f"{app.url}/api/protected").status_code == 200  # not yet

            time.sleep(min(max(0.0, first["expires_at"] - time.time()) + 0.1, TTL + 1))
            refused = browser.get(f"{app.url}/api/short-token")
            assert refused.status_code == 401, refused.text
            assert refused.json()["error"] == "login_required"
            assert browser.get(f"{app.url}/api/protected").status_code == 401
            grant = httpx.post(
                op.discovery()["token_endpoint"],
                data={"grant_type": "refresh_token", "refresh_token": refresh_token},
                auth=(op.client_id, op.client_secret), timeout=10,
            )  # fmt: skip
            assert grant.status_code == 400
            assert grant.json()["error"] == "invalid_grant"
    finally:
        app.stop()


def test_lemonldap_ignores_the_asked_audience(llng: Setup) -> None:
    """LemonLDAP::NG ignores ``audience``/``resource``: ``access_token(audience=X)`` gets its
    usual JWT (aud = [client id, AdditionalAudiences]). The library hands it out and logs a
    warning naming both (tests/test_token_attacks.py checks the warning); the guide says to
    list every API in AdditionalAudiences."""
    op, app = llng.op, llng.app
    with httpx.Client(timeout=10) as browser:
        log_in(op, app, browser, "dwho")
        answer = browser.get(f"{app.url}/api/token-other")  # access_token(audience=OTHER_API)
        assert answer.status_code == 200
        aud = unverified(answer.json()["token"])[1]["aud"]
        assert OTHER_API not in aud
        assert op.api_identifier in aud
