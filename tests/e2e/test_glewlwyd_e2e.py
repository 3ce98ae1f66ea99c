"""The library against a second, independently written OpenID Provider: Glewlwyd 2.7.5 (Debian),
on 127.0.0.1, with the app configured as a user would (``OIDC_*`` only) and served by a real
uvicorn process (tests/e2e/glewlwyd_app.py).

The journey: login through Glewlwyd's login API, the session, the session's access token as a
bearer token, refresh after expiry (Glewlwyd does not rotate refresh tokens), userinfo,
RP-initiated logout, a client-credentials token as a bearer token, an ID token refused as a
bearer token, and Glewlwyd's back-channel logout (refused today: its logout tokens have no
``exp``). Glewlwyd's behaviours that differ from panva's oidc-provider each get an assertion.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from fastapi_oidc_guard.discovery import parse_metadata

from ._glewlwyd import GlewlwydProcess, drive_login, drive_logout, require_glewlwyd
from ._server import AppProcess, free_port

pytestmark = pytest.mark.e2e

TTL = 3  # Glewlwyd's access token lifetime here (seconds)


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a compact JWS, unverified (to assert on shapes)."""

    def part(segment: str) -> dict[str, Any]:
        return dict(json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))))

    header, payload, _ = token.split(".")
    return part(header), part(payload)


@dataclass
class Stack:
    op: GlewlwydProcess
    app: AppProcess

    @property
    def base(self) -> str:
        return self.app.url

    def login(self, username: str) -> httpx.Client:
        """A browser (cookie jar) signed in to the app as ``username`` through Glewlwyd."""
        browser = httpx.Client(timeout=15)
        try:
            password = self.op.user(username)["password"]
            callback = drive_login(browser, f"{self.base}/auth/login", username, password)
            finished = browser.get(callback, follow_redirects=False)
            assert finished.status_code == 302, finished.text
        except BaseException:
            browser.close()
            raise
        return browser

    def session(self, browser: httpx.Client) -> dict[str, Any]:
        """What the app's session for ``browser`` holds (tests/e2e/glewlwyd_app.py)."""
        session = browser.get(f"{self.base}/_test/session").json()["session"]
        assert session is not None
        return dict(session)

    def backchannel_deliveries(self, sid: str, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The back-channel logout POSTs the app saw for ``sid``, waiting (bounded) for the
        first: Glewlwyd sends them in the background, after answering DELETE /session/<sid>."""
        deadline = time.monotonic() + timeout
        while True:
            deliveries = [
                seen for seen in httpx.get(f"{self.base}/_test/backchannel").json()
                if seen["logout_token"] and jwt_parts(seen["logout_token"])[1].get("sid") == sid
            ]  # fmt: skip
            if deliveries or time.monotonic() > deadline:
                return deliveries
            time.sleep(0.05)

    def refresh_at_glewlwyd(self, refresh_token: str) -> httpx.Response:
        """A refresh straight at Glewlwyd's token endpoint (to see its answer unfiltered)."""
        return httpx.post(
            f"{self.op.issuer}/token",
            data={"grant_type": "refresh_token", "refresh_token": refresh_token,
                  "resource": self.op.api_identifier},
            auth=(self.op.client_id, self.op.client_secret), timeout=10,
        )  # fmt: skip


@contextmanager
def running_stack(**extra_env: str) -> Iterator[Stack]:
    require_glewlwyd()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with GlewlwydProcess(
        redirect_uris=[f"{base}/auth/callback"],
        post_logout_redirect_uris=[f"{base}/"],
        backchannel_logout_uri=f"{base}/auth/backchannel-logout",
        access_token_ttl=TTL,
    ) as op:
        env = {
            "OIDC_ISSUER": op.issuer, "OIDC_AUDIENCE": op.api_identifier,
            "OIDC_CLIENT_ID": op.client_id, "OIDC_CLIENT_SECRET": op.client_secret,
            "OIDC_BASE_URL": base, "OIDC_SESSION_SECRET": "g" * 48,
            "E2E_M2M_SCOPE": op.api_scope, **extra_env,
        }  # fmt: skip
        app = AppProcess("tests.e2e.glewlwyd_app:app", env, port)
        try:
            yield Stack(op, app)
        finally:
            app.stop()


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack() as running:
        yield running


def test_discovery_is_what_the_library_reads(stack: Stack) -> None:
    document = stack.op.discovery()
    # The issuer is exactly <external_url>/api/oidc (no trailing slash) and must be configured so.
    assert document["issuer"] == stack.op.issuer
    assert not document["issuer"].endswith("/")
    metadata = parse_metadata(document, issuer=stack.op.issuer)
    assert metadata.end_session_endpoint == f"{stack.op.issuer}/end_session"
    assert metadata.revocation_endpoint == f"{stack.op.issuer}/revoke"
    assert metadata.code_challenge_methods_supported is not None
    assert "S256" in metadata.code_challenge_methods_supported  # only with pkce-allowed
    # Quirks: refresh_token and client_credentials work but are not advertised; neither is
    # back-channel logout (which works) nor RFC 9207's iss parameter (not sent).
    assert document["grant_types_supported"] == ["authorization_code", "implicit"]
    assert "backchannel_logout_supported" not in document
    assert not metadata.authorization_response_iss_parameter_supported


def test_login_session_bearer_userinfo_id_token_and_rp_initiated_logout(stack: Stack) -> None:
    with httpx.Client(timeout=15) as browser:
        _journey(stack, browser)


def _journey(stack: Stack, browser: httpx.Client) -> None:
    base, op = stack.base, stack.op
    assert browser.get(f"{base}/api/protected").status_code == 401

    alice = op.user("alice")
    callback = drive_login(browser, f"{base}/auth/login?returnTo=/page", "alice", alice["password"])
    assert callback.startswith(f"{base}/auth/callback?")
    query = parse_qs(urlsplit(callback).query)
    assert "iss" not in query and "session_state" in query  # no RFC 9207; session management
    finished = browser.get(callback, follow_redirects=False)
    assert finished.status_code == 302, finished.text
    assert finished.headers["location"] == "/page"

    # The session works; sub is Glewlwyd's opaque user id, not the user name.
    session = stack.session(browser)
    me = browser.get(f"{base}/api/protected")
    assert me.status_code == 200, me.text
    assert me.json() == {"userId": session["sub"], "email": alice["email"]}
    assert session["sub"] != "alice"
    profile = browser.get(f"{base}/auth/profile").json()
    assert (profile["name"], profile["email"]) == (alice["name"], alice["email"])
    assert session["refresh_token"] and session["sid"]

    # The ID token: typ JWT, sid, amr, name/email (with name-claim/email-claim "mandatory"),
    # and auth_time 0 (so a max_age/step-up requirement can never be met with Glewlwyd).
    id_header, id_claims = jwt_parts(session["id_token"])
    assert (id_header["typ"], id_header["alg"]) == ("JWT", "RS256")
    assert id_claims["aud"] == op.client_id and id_claims["azp"] == op.client_id
    assert id_claims["sid"] == session["sid"] and id_claims["amr"] == ["password"]
    assert (id_claims["name"], id_claims["email"]) == (alice["name"], alice["email"])
    assert id_claims["auth_time"] == 0 and session["auth_time"] == 0

    # The session's access token (at+jwt, aud = the resource asked) works as a bearer token.
    handed = browser.get(f"{base}/api/short-token").json()
    assert handed["token_type"] == "Bearer"  # Glewlwyd says "bearer"; the library normalises
    at_header, at_claims = jwt_parts(handed["token"])
    assert at_header["typ"] == "at+jwt"
    assert at_claims["aud"] == op.api_identifier and at_claims["client_id"] == op.client_id
    assert at_claims["sub"] == session["sub"] and at_claims["type"] == "access_token"
    assert set(at_claims["scope"].split()) == {"openid", "profile", "email", "offline_access"}
    bearer = httpx.get(
        f"{base}/api/protected", headers={"Authorization": f"Bearer {handed['token']}"}
    )
    assert bearer.status_code == 200, bearer.text
    assert bearer.json()["userId"] == session["sub"]

    # userinfo through the library (which sends "Bearer": Glewlwyd refuses "bearer").
    info = browser.get(f"{base}/api/userinfo")
    assert info.status_code == 200, info.text
    assert info.json()["sub"] == session["sub"]
    assert (info.json()["name"], info.json()["email"]) == (alice["name"], alice["email"])
    userinfo_url = f"{op.issuer}/userinfo"
    lower = httpx.get(userinfo_url, headers={"Authorization": f"bearer {handed['token']}"})
    assert lower.status_code == 401  # RFC 6750 says the scheme is case-insensitive
    upper = httpx.get(userinfo_url, headers={"Authorization": f"Bearer {handed['token']}"})
    assert upper.status_code == 200

    # Glewlwyd's ID token is never a bearer token.
    refused = httpx.get(
        f"{base}/api/protected", headers={"Authorization": f"Bearer {session['id_token']}"}
    )
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_token"

    # RP-initiated logout: the local session ends at once and the refresh token is revoked
    # (RFC 7009, allowed by introspection-revocation-allow-target-client) ...
    logout = browser.post(f"{base}/auth/logout", follow_redirects=False)
    assert logout.status_code == 302
    end_session = logout.headers["location"]
    assert end_session.startswith(f"{op.issuer}/end_session?")
    assert browser.get(f"{base}/api/protected").status_code == 401
    assert stack.refresh_at_glewlwyd(session["refresh_token"]).status_code == 400
    # ... then Glewlwyd's end-session page ends its session (where it goes next: see
    # test_rp_initiated_logout_comes_back_to_the_app).
    drive_logout(browser, end_session)
    assert browser.get(f"{base}/api/protected").status_code == 401
    relogin = browser.get(f"{base}/auth/login", follow_redirects=True)  # asks for the password
    assert urlsplit(str(relogin.url)).path == "/login.html"


def test_rp_initiated_logout_comes_back_to_the_app(stack: Stack) -> None:
    """Glewlwyd 2.7.5 sends the user back to ``post_logout_redirect_uri`` only when the
    end-session request carries a ``state``: the library always sends one."""
    base = stack.base
    with closing(stack.login("dave")) as browser:
        logout = browser.post(f"{base}/auth/logout", follow_redirects=False)
        assert logout.status_code == 302
        back = drive_logout(browser, logout.headers["location"])
        assert back is not None
        assert back.split("?")[0] == f"{base}/"


def test_refresh_after_expiry_keeps_the_unrotated_refresh_token(stack: Stack) -> None:
    with closing(stack.login("bob")) as browser:
        _refresh_twice(stack, browser)


def _refresh_twice(stack: Stack, browser: httpx.Client) -> None:
    base = stack.base
    first = stack.session(browser)
    token0 = browser.get(f"{base}/api/short-token").json()["token"]
    tokens = [token0]
    for _ in range(2):
        time.sleep(TTL + 1)  # the access token has expired
        handed = browser.get(f"{base}/api/short-token")
        assert handed.status_code == 200, handed.text
        tokens.append(handed.json()["token"])
        # Glewlwyd's refresh response has no refresh_token: the session keeps the first one.
        assert stack.session(browser)["refresh_token"] == first["refresh_token"]
        assert browser.get(f"{base}/api/protected").status_code == 200
    assert len(set(tokens)) == 3
    latest = httpx.get(f"{base}/api/protected", headers={"Authorization": f"Bearer {tokens[-1]}"})
    assert latest.status_code == 200, latest.text
    # Glewlwyd's own answer to a refresh: token_type lower case, no new refresh token.
    direct = stack.refresh_at_glewlwyd(first["refresh_token"])
    assert direct.status_code == 200, direct.text
    body = direct.json()
    assert body["token_type"] == "bearer" and "refresh_token" not in body
    assert body["expires_in"] == TTL


def test_client_credentials_token_is_accepted_as_a_bearer_token(stack: Stack) -> None:
    base, op = stack.base, stack.op
    handed = httpx.get(f"{base}/api/m2m-scoped", timeout=15)
    assert handed.status_code == 200, handed.text
    token = handed.json()["token"]
    header, claims = jwt_parts(token)
    assert header["typ"] == "at+jwt"
    assert claims["sub"] == op.client_id == claims["client_id"]  # sub is the client id
    assert claims["aud"] == op.api_identifier and claims["scope"] == op.api_scope
    bearer = httpx.get(f"{base}/api/protected", headers={"Authorization": f"Bearer {token}"})
    assert bearer.status_code == 200, bearer.text
    assert bearer.json()["userId"] == op.client_id
    # Without a scope Glewlwyd refuses the grant (403): client_credentials_token() needs one.
    unscoped = httpx.get(f"{base}/api/m2m", timeout=15)
    assert unscoped.status_code == 503, unscoped.text
    assert unscoped.json()["error"] == "temporarily_unavailable", unscoped.text


def test_a_login_asking_max_age_is_refused_because_auth_time_is_0(stack: Stack) -> None:
    """Glewlwyd 2.7.5 puts ``auth_time: 0`` in every ID token (max_age or not), so a login that
    asks ``max_age`` (as ``require_step_up(max_age=...)`` does) is refused at the callback: the
    library reads a login made in 1970. Correct, but step-up by max_age cannot work with it."""
    base, erin = stack.base, stack.op.user("erin")
    with httpx.Client(timeout=15) as browser:
        url = f"{base}/auth/login?max_age=60"
        callback = drive_login(browser, url, "erin", erin["password"])
        assert "code" in parse_qs(urlsplit(callback).query)  # Glewlwyd accepted max_age=60
        finished = browser.get(callback, follow_redirects=False)
        assert finished.status_code == 400, finished.text
        assert browser.get(f"{base}/api/protected").status_code == 401


def test_backchannel_logout_from_glewlwyd_is_refused_for_lack_of_exp(stack: Stack) -> None:
    """Glewlwyd's logout tokens follow Back-Channel Logout draft 06: ``typ: JWT`` and no
    ``exp`` (1.0 final requires ``exp``). The library refuses them today (400), so a logout at
    Glewlwyd does not end the app's session.

    With ``OIDC_LEGACY_LOGOUT_TOKENS=true`` they are accepted: see the next test.
    """
    with closing(stack.login("carol")) as browser:
        _logout_at_glewlwyd(stack, browser, expected_status=400)
        # The app's session therefore stays valid, though Glewlwyd has disabled its tokens.
        assert browser.get(f"{stack.base}/api/protected").status_code == 200


def test_backchannel_logout_from_glewlwyd_with_legacy_logout_tokens_on() -> None:
    """With the compatibility setting on, Glewlwyd's logout token (no ``exp``, fresh ``iat``)
    ends the app's session; a replay of it is refused."""
    with (
        running_stack(OIDC_LEGACY_LOGOUT_TOKENS="true") as legacy,
        closing(legacy.login("carol")) as browser,
    ):
        token = _logout_at_glewlwyd(legacy, browser, expected_status=200)
        assert browser.get(f"{legacy.base}/api/protected").status_code == 401
        replay = httpx.post(f"{legacy.base}/auth/backchannel-logout",
                            data={"logout_token": token}, timeout=10)  # fmt: skip
        assert replay.status_code == 400


def _logout_at_glewlwyd(stack: Stack, browser: httpx.Client, *, expected_status: int) -> str:
    base, op = stack.base, stack.op
    session = stack.session(browser)
    # The user logs out at Glewlwyd itself (its end-session endpoint, not the app's logout).
    end_session = f"{op.issuer}/end_session?" + urlencode({
        "id_token_hint": session["id_token"], "post_logout_redirect_uri": f"{base}/",
        "state": "bye",
    })  # fmt: skip
    assert drive_logout(browser, end_session) == f"{base}/?state=bye"

    deliveries = stack.backchannel_deliveries(session["sid"])
    assert len(deliveries) == 1, deliveries
    header, claims = jwt_parts(deliveries[0]["logout_token"])
    assert (header["typ"], header["alg"]) == ("JWT", "RS256")
    assert claims["iss"] == op.issuer and claims["aud"] == op.client_id
    assert claims["sub"] == session["sub"] and claims["jti"] and claims["iat"]
    assert claims["events"] == {"http://schemas.openid.net/event/backchannel-logout": {}}
    assert "exp" not in claims
    assert deliveries[0]["status"] == expected_status
    assert stack.refresh_at_glewlwyd(session["refresh_token"]).status_code == 400
    return str(deliveries[0]["logout_token"])
