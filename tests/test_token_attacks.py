"""Attacks on the token rules (issue #11, cases 1-7), each against a real app and the fake issuer
scripted to answer as real providers do (no ``scope``, no nonce at refresh, huge numbers, old
``auth_time``, lower-case ``bearer``, refresh tokens that are not rotated)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import Depends, Request
from fastapi.testclient import TestClient

from fastapi_oidc_guard import AccessToken, User, access_token, require_step_up, require_user
from fastapi_oidc_guard.testing import FakeClock, FakeIssuer, login

from .web import BASE_URL, web_app, web_guard


def step_up_app(guard: Any) -> Any:
    app = web_app(guard)

    @app.get("/api/transfer")
    async def transfer(user: User = Depends(require_step_up(max_age=300))) -> dict[str, str]:
        return {"ok": user.sub}

    @app.get("/api/gold")
    async def gold(user: User = Depends(require_step_up(acr="gold"))) -> dict[str, str]:
        return {"ok": user.sub}

    short = access_token(min_ttl=120)

    @app.get("/api/short")
    async def short_token(tok: AccessToken = Depends(short)) -> dict[str, Any]:
        return {"token": tok.token, "expires_at": tok.expires_at}

    return app


@pytest.fixture
def client(issuer: FakeIssuer, clock: FakeClock) -> Iterator[TestClient]:
    with TestClient(step_up_app(web_guard(issuer, clock)), base_url=BASE_URL) as test_client:
        yield test_client


# -- 1. an ID token is never a bearer token ----------------------------------------------------


def test_an_id_token_from_a_refresh_is_refused_as_a_bearer_token(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    """One registration (API audience = client id, as on Entra ID or Google): the ID token of a
    refresh response (no nonce, no at_hash) used to be accepted by require_user."""
    guard = web_guard(issuer, clock, audience=issuer.client_id)
    captured: list[str] = []

    def keep(grant_type: str, body: dict[str, Any]) -> dict[str, Any]:
        if grant_type == "refresh_token":
            captured.append(body["id_token"])
        return body

    issuer.oauth.shape = keep
    with TestClient(web_app(guard), base_url=BASE_URL) as browser:
        login(browser, issuer)
        issuer.oauth.id_token_claims = {"at_hash": None}  # refresh ID tokens: no nonce either
        clock.advance(3600)
        assert browser.get("/api/token").status_code == 200  # refreshed: an ID token came too
        (id_token,) = captured
        bearer = {"Authorization": f"Bearer {id_token}"}
        browser.cookies.clear()
        refused = browser.get("/api/protected", headers=bearer)
        assert refused.status_code == 401
        assert refused.json()["error"] == "invalid_token"


# -- 2. scopes never from the browser ---------------------------------------------------------


def test_scopes_asked_by_the_browser_are_not_the_session_s(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    """The provider grants `openid profile` and leaves `scope` out of its token response
    (RFC 6749 allows it; Cognito does); the session used to get the *asked* `admin`."""
    issuer.oauth.grantable_scopes = {"openid", "profile", "email", "offline_access"}
    issuer.oauth.shape = lambda _, body: {k: v for k, v in body.items() if k != "scope"}
    guard = web_guard(issuer, clock, login_params=("scope",), login_scopes=("admin",))
    app = web_app(guard)

    @app.get("/admin")
    async def admin(user: User = Depends(require_user)) -> dict[str, Any]:
        return {"scopes": sorted(user.scopes)}

    with TestClient(app, base_url=BASE_URL) as browser:
        login(browser, issuer, scope="openid profile admin")
        scopes = browser.get("/admin").json()["scopes"]
        assert "admin" not in scopes
        assert "profile" in scopes  # read from the verified access token


def test_without_a_scope_anywhere_the_configured_scope_is_the_session_s(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    guard = web_guard(issuer, clock, audience="https://another-api.example.test")
    issuer.oauth.shape = lambda _, body: {k: v for k, v in body.items() if k != "scope"}
    with TestClient(web_app(guard), base_url=BASE_URL) as browser:
        login(browser, issuer, scope="openid admin")  # dropped: not in login_params
        session = browser.get("/auth/profile").json()
        assert "admin" not in session.get("scope", "")


# -- 3. max_age and acr enforced (step-up) ---------------------------------------------------


@pytest.mark.parametrize(
    ("auth_time", "ok"),
    [(-3600, False), (None, False), (-10, True), ("yesterday", False), (10**400, False)],
    ids=["an-hour-old", "absent", "fresh", "not-a-number", "huge"],
)
def test_max_age_is_enforced_at_the_callback(
    client: TestClient, issuer: FakeIssuer, clock: FakeClock, auth_time: Any, ok: bool
) -> None:
    """`/auth/login?max_age=60` used to sign in with an ID token an hour old, or without
    `auth_time` (OIDC Core 3.1.2.1 makes it required, 3.1.3.7 says to check it)."""
    value = auth_time
    if isinstance(auth_time, int) and auth_time < 10**10:
        value = int(clock()) + auth_time
    issuer.oauth.id_token_claims = {"auth_time": value}
    callback = login(client, issuer, max_age="60")
    assert callback.status_code == (302 if ok else 400)
    assert any("_txn_" in c and "Max-Age=0" in c for c in callback.headers.get_list("set-cookie"))
    assert (client.get("/api/protected").status_code == 200) is ok


def test_step_up_api_challenge_then_page_redirect_and_back(
    client: TestClient, issuer: FakeIssuer, clock: FakeClock
) -> None:
    login(client, issuer)
    assert client.get("/api/transfer").json() == {"ok": "user-1"}
    clock.advance(301 + 30)  # past max_age and the leeway
    challenge = client.get("/api/transfer")
    assert challenge.status_code == 401
    assert challenge.json()["error"] == "insufficient_user_authentication"
    header = challenge.headers["WWW-Authenticate"]
    assert header.startswith('Bearer error="insufficient_user_authentication", error_description=')
    assert ", max_age=300," in header
    page = client.get("/api/transfer?x=1", headers={"Accept": "text/html"}, follow_redirects=False)
    assert page.status_code == 302
    assert page.headers["location"] == "/auth/login?returnTo=%2Fapi%2Ftransfer%3Fx%3D1&max_age=300"
    start = client.get(page.headers["location"], follow_redirects=False)
    assert "max_age=300" in start.headers["location"]
    back = client.get(issuer.authorize(start.headers["location"]), follow_redirects=False)
    assert back.headers["location"] == "/api/transfer?x=1"
    assert client.get("/api/transfer").json() == {"ok": "user-1"}


def test_step_up_acr_for_sessions_and_bearer_tokens(client: TestClient, issuer: FakeIssuer) -> None:
    issuer.oauth.id_token_claims = {"acr": "silver"}
    login(client, issuer)
    refused = client.get("/api/gold")
    assert refused.status_code == 401
    assert 'acr_values="gold"' in refused.headers["WWW-Authenticate"]
    client.cookies.clear()
    gold = {"Authorization": f"Bearer {issuer.mint(acr='gold', auth_time=int(issuer.clock()))}"}
    assert client.get("/api/gold", headers=gold).status_code == 200
    silver = {"Authorization": f"Bearer {issuer.mint(acr='silver')}"}
    assert client.get("/api/gold", headers=silver).status_code == 401
    no_auth_time = {"Authorization": f"Bearer {issuer.mint()}"}
    assert client.get("/api/transfer", headers=no_auth_time).status_code == 401


def test_step_up_without_any_credential_is_401_for_apis_and_login_for_pages(
    client: TestClient,
) -> None:
    assert client.get("/api/transfer").json()["error"] == "not_authenticated"
    page = client.get("/api/transfer", headers={"Accept": "text/html"}, follow_redirects=False)
    assert page.headers["location"].startswith("/auth/login?returnTo=%2Fapi%2Ftransfer")


def test_require_step_up_is_memoised_and_overridable() -> None:
    assert require_step_up(max_age=300) is require_step_up(max_age=300)
    assert require_step_up(acr="a b") is require_step_up(acr=["a", "b"])
    with pytest.raises(ValueError, match="needs max_age"):
        require_step_up()


# -- 4. always-fresh access tokens -------------------------------------------------------------


@pytest.mark.parametrize("rotate", [True, False], ids=["rotating", "not-rotating"])
def test_access_token_is_never_handed_out_expiring_within_min_ttl(
    client: TestClient, issuer: FakeIssuer, clock: FakeClock, rotate: bool
) -> None:
    """Glewlwyd does not rotate refresh tokens: for 60 s after a refresh the remembered token
    used to be handed out unchecked, even past its `exp`."""
    issuer.oauth.rotate_refresh_tokens = rotate
    issuer.oauth.access_token_ttl = 150
    login(client, issuer)
    seen = set()
    for _ in range(6):
        clock.advance(40)
        answer = client.get("/api/short").json()
        assert answer["expires_at"] - clock() > 120, "a token expiring within min_ttl"
        seen.add(answer["token"])
    assert len(seen) >= 3  # refreshed as often as needed


def force_app(guard: Any) -> Any:
    """The web app plus ``/api/force``: a route that forces a refresh."""
    app = web_app(guard)

    @app.get("/api/force")
    async def force(request: Request) -> dict[str, str]:
        token = await guard.access_token_for(request, audience=guard.config.audience, scope=None,
                                             force_refresh=True)  # fmt: skip
        return {"token": token.token}

    return app


def test_force_refresh(issuer: FakeIssuer, clock: FakeClock) -> None:
    app = force_app(web_guard(issuer, clock))

    with TestClient(app, base_url=BASE_URL) as browser:
        login(browser, issuer)
        first = browser.get("/api/token").json()["token"]
        refreshes = issuer.oauth.grants["refresh_token"]
        clock.advance(1)  # a new iat: a new token
        assert browser.get("/api/force").json()["token"] != first
        assert issuer.oauth.grants["refresh_token"] == refreshes + 1


def test_a_forced_refresh_with_a_cookie_one_request_old_does_not_spend_a_rotated_token(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    """Two requests of one page both force a refresh; the second still carries the cookie sent
    before the first's Set-Cookie arrived. Spending the old refresh token again would make the
    provider revoke the whole grant (reuse detection)."""
    app = force_app(web_guard(issuer, clock))

    with TestClient(app, base_url=BASE_URL) as browser:
        login(browser, issuer)
        late_tab = TestClient(app, base_url=BASE_URL)
        for name, value in browser.cookies.items():
            late_tab.cookies.set(name, value)
        assert browser.get("/api/force").status_code == 200
        late = late_tab.get("/api/force")
        assert late.status_code == 200  # refreshed from the newest refresh token
        assert not any(g.revoked for g in issuer.oauth.used_refresh.values())
        for name, value in late.cookies.items():  # one browser, one jar: the last answer wins
            browser.cookies.set(name, value)
        clock.advance(3600)
        assert browser.get("/api/token").status_code == 200


# -- 5. outgoing requests say Bearer ---------------------------------------------------------


def test_lower_case_bearer_from_the_provider_goes_out_as_bearer(
    client: TestClient, issuer: FakeIssuer
) -> None:
    issuer.oauth.shape = lambda _, body: {**body, "token_type": "bearer"}
    login(client, issuer)
    assert client.get("/api/userinfo").status_code == 200  # the fake refuses "bearer ..."


# -- 6. bounded numbers ------------------------------------------------------------------------


@pytest.mark.parametrize("expires_in", [10**400, 1e308 * 10, -5, 0, True, "soon", 10**12], ids=str)
def test_a_hostile_expires_in_is_a_clean_503_at_the_callback(
    client: TestClient, issuer: FakeIssuer, expires_in: Any
) -> None:
    issuer.oauth.shape = lambda _, body: {**body, "expires_in": expires_in}
    callback = login(client, issuer)
    assert callback.status_code == 503
    assert callback.json()["error"] == "temporarily_unavailable"
    assert any("_txn_" in c and "Max-Age=0" in c for c in callback.headers.get_list("set-cookie"))
    assert client.get("/api/protected").status_code == 401


def test_a_hostile_expires_in_at_refresh_is_503_and_keeps_the_session(
    client: TestClient, issuer: FakeIssuer, clock: FakeClock
) -> None:
    issuer.oauth.rotate_refresh_tokens = False  # else the refused answer spent the token
    login(client, issuer)
    clock.advance(3600)
    issuer.oauth.shape = lambda _, body: {**body, "expires_in": 10**400}
    assert client.get("/api/token").status_code == 503
    issuer.oauth.shape = None
    assert client.get("/api/token").status_code == 200


def test_a_digit_string_expires_in_is_read(client: TestClient, issuer: FakeIssuer) -> None:
    issuer.oauth.shape = lambda _, body: {**body, "expires_in": "3600"}
    assert login(client, issuer).status_code == 302
    assert client.get("/api/token").status_code == 200


# -- 7. parsing --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["state", "code", "iss", "error"])
def test_a_callback_with_a_repeated_parameter_is_400(
    client: TestClient, issuer: FakeIssuer, name: str
) -> None:
    start = client.get("/auth/login", follow_redirects=False)
    callback = issuer.authorize(start.headers["location"])
    value = {"state": "x", "code": "y", "iss": issuer.issuer, "error": "access_denied"}[name]
    response = client.get(f"{callback}&{name}={value}", follow_redirects=False)
    assert response.status_code == 400
    assert client.get("/api/protected").status_code == 401


# -- 8. junk tenants neither evict verified ones nor drive unbounded fetches -----------------


def test_junk_tenants_cost_at_most_the_fetch_budget_and_evict_nobody(clock: FakeClock) -> None:
    from fastapi_oidc_guard import OIDCGuard, TrustedIssuer
    from fastapi_oidc_guard.testing.issuer import combined_transport

    home = FakeIssuer(clock=clock)
    tenant = FakeIssuer("https://tenant-good.example.test", clock=clock)

    async def resolve(iss: str) -> TrustedIssuer | None:
        if iss.startswith("https://tenant-") and iss.endswith(".example.test"):
            return TrustedIssuer(iss, tenant.audience)
        return None

    guard = OIDCGuard(
        issuer=home.issuer, audience=home.audience, clock=clock, issuer_resolver=resolve,
        transport=combined_transport(home, tenant),
    )  # fmt: skip
    app = web_app_for_bearer(guard)
    with TestClient(app) as client:

        def call(token: str) -> int:
            return client.get("/who", headers={"Authorization": f"Bearer {token}"}).status_code

        assert call(tenant.mint(sub="t1")) == 200  # verified: joins the verified tenants
        tenant_fetches = sum(tenant.requests.values())
        statuses = set()
        junk = FakeIssuer("https://tenant-junk.example.test", clock=clock)  # unpublished keys
        for n in range(300):  # bad signatures, a new tenant each time
            statuses.add(call(junk.mint(iss=f"https://tenant-junk{n}.example.test")))
        assert statuses <= {401, 503}
        outbound = home.requests["unrouted"]
        assert outbound <= guard.config.resolver_fetch_budget, outbound  # not 600
        assert call(tenant.mint(sub="t2")) == 200
        assert sum(tenant.requests.values()) == tenant_fetches  # kept its keys: no refetch
        clock.advance(guard.config.resolver_budget_interval)
        assert call(junk.mint(iss="https://tenant-junk-late.example.test")) in (401, 503)
        assert home.requests["unrouted"] > outbound  # the budget renews per interval


def web_app_for_bearer(guard: Any) -> Any:
    from fastapi import FastAPI

    app = FastAPI()
    guard.install(app)

    @app.get("/who")
    async def who(user: User = Depends(require_user)) -> dict[str, str]:
        return {"sub": user.sub}

    return app


# -- review findings (issue #11) ------------------------------------------------------------


def resolver_guard(clock: FakeClock, *tenants: FakeIssuer, **settings: Any) -> Any:
    from fastapi_oidc_guard import OIDCGuard, TrustedIssuer
    from fastapi_oidc_guard.testing.issuer import combined_transport

    home = FakeIssuer(clock=clock)

    async def resolve(iss: str) -> TrustedIssuer | None:
        if iss.startswith("https://tenant-") and iss.endswith(".example.test"):
            return TrustedIssuer(iss, home.audience)
        return None

    guard = OIDCGuard(issuer=home.issuer, audience=home.audience, clock=clock,
                      issuer_resolver=resolve, transport=combined_transport(home, *tenants),
                      **settings)  # fmt: skip
    return guard, home


def test_expired_junk_tokens_cost_no_budget_and_lock_out_no_tenant(clock: FakeClock) -> None:
    good = FakeIssuer("https://tenant-good.example.test", clock=clock)
    guard, home = resolver_guard(clock, good)
    junk = FakeIssuer("https://tenant-x.example.test", clock=clock)
    with TestClient(web_app_for_bearer(guard)) as client:

        def call(token: str) -> int:
            return client.get("/who", headers={"Authorization": f"Bearer {token}"}).status_code

        for n in range(50):  # expired or for another audience: refused before any fetch
            assert call(junk.mint(iss=f"https://tenant-j{n}.example.test", exp=int(clock()) - 99))
            assert call(junk.mint(iss=f"https://tenant-k{n}.example.test", aud="other")) == 401
        assert home.requests["unrouted"] == 0
        assert call(good.mint(aud=home.audience)) == 200


def test_newcomers_refetching_stay_within_the_budget(clock: FakeClock) -> None:
    guard, home = resolver_guard(clock)
    junk = FakeIssuer("https://tenant-x.example.test", clock=clock)
    with TestClient(web_app_for_bearer(guard)) as client:
        per_interval = []
        for _ in range(6):
            before = home.requests["unrouted"]
            for n in range(40):  # the same 16+ newcomers again and again, each interval
                client.get("/who", headers={
                    "Authorization": f"Bearer {junk.mint(iss=f'https://tenant-j{n}.example.test')}"
                })  # fmt: skip
            per_interval.append(home.requests["unrouted"] - before)
            clock.advance(guard.config.resolver_budget_interval)
        assert max(per_interval) <= guard.config.resolver_fetch_budget, per_interval


@pytest.mark.anyio
async def test_evicting_a_newcomer_does_not_cancel_its_request_in_flight(clock: FakeClock) -> None:
    import asyncio

    import httpx

    good = FakeIssuer("https://tenant-good.example.test", clock=clock)
    guard, home = resolver_guard(clock, good, resolver_fetch_budget=100)
    junk = FakeIssuer("https://tenant-x.example.test", clock=clock)
    transport = httpx.ASGITransport(app=web_app_for_bearer(guard))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        good.gate = asyncio.Event()  # the good tenant's discovery is slow
        pending = asyncio.ensure_future(client.get("/who", headers={
            "Authorization": f"Bearer {good.mint(aud=home.audience)}"}))  # fmt: skip
        while not good.requests:
            await asyncio.sleep(0)
        for n in range(20):  # newer newcomers push it out of the probation cache
            token = junk.mint(iss=f"https://tenant-j{n}.example.test")
            await client.get("/who", headers={"Authorization": f"Bearer {token}"})
        good.gate.set()
        assert (await asyncio.wait_for(pending, 5)).status_code == 200


def test_a_trusted_issuer_s_id_tokens_are_refused_when_its_client_id_is_known(
    clock: FakeClock,
) -> None:
    from fastapi_oidc_guard import OIDCGuard, TrustedIssuer
    from fastapi_oidc_guard.testing.issuer import combined_transport

    home = FakeIssuer(clock=clock)
    partner = FakeIssuer("https://partner.example.test", clock=clock, client_id="partner-app")
    trusted = TrustedIssuer(partner.issuer, audience="partner-app", client_id="partner-app")
    guard = OIDCGuard(
        issuer=home.issuer, audience=home.audience, clock=clock, trusted_issuers=[trusted],
        transport=combined_transport(home, partner),
    )  # fmt: skip
    with TestClient(web_app_for_bearer(guard)) as client:
        id_token = partner.sign(partner.claims(aud="partner-app", scope=None),
                                header={"typ": "JWT"})  # fmt: skip
        assert (
            client.get("/who", headers={"Authorization": f"Bearer {id_token}"}).status_code == 401
        )
        access = partner.mint(aud="partner-app", scp=["read"], scope=None)
        assert client.get("/who", headers={"Authorization": f"Bearer {access}"}).status_code == 200


@pytest.mark.parametrize(
    "shape",
    [{"expires_in": "²"}, {"expires_in": "①"}, {"token_type": "Bearer\r\nX-Injected: 1"},
     {"token_type": "Bearer x"}, {"access_token": "abc\r\ndef"}, {"access_token": "a b"}],
    ids=["superscript-two", "circled-one", "crlf-type", "space-type", "crlf-token", "space-token"],
)  # fmt: skip
def test_token_response_values_that_would_break_headers_are_a_clean_503(
    client: TestClient, issuer: FakeIssuer, shape: dict[str, Any]
) -> None:
    issuer.oauth.shape = lambda _, body: {**body, **shape}
    callback = login(client, issuer)
    assert callback.status_code in (400, 503)  # a changed access_token also breaks at_hash
    assert any("_txn_" in c and "Max-Age=0" in c for c in callback.headers.get_list("set-cookie"))


def test_deeply_nested_json_in_an_access_token_without_expires_in_is_no_500(
    client: TestClient, issuer: FakeIssuer
) -> None:
    import base64

    nested = base64.urlsafe_b64encode(b"[" * 5000 + b"]" * 5000).rstrip(b"=").decode()
    issuer.oauth.shape = lambda _, body: {
        **{k: v for k, v in body.items() if k != "expires_in"},
        "access_token": f"e30.{nested}.sig",
    }
    assert login(client, issuer).status_code in (302, 400)


def test_a_token_type_with_spaces_around_bearer_is_bearer(
    client: TestClient, issuer: FakeIssuer
) -> None:
    issuer.oauth.shape = lambda _, body: {**body, "token_type": " bearer "}
    login(client, issuer)
    assert client.get("/api/userinfo").status_code == 200


def test_a_future_auth_time_is_refused_at_the_callback_and_by_step_up(
    client: TestClient, issuer: FakeIssuer, clock: FakeClock
) -> None:
    from fastapi_oidc_guard.errors import InsufficientUserAuthentication
    from fastapi_oidc_guard.step_up import check_step_up

    issuer.oauth.id_token_claims = {"auth_time": int(clock()) + 365 * 86_400}
    assert login(client, issuer).status_code == 400
    with pytest.raises(InsufficientUserAuthentication):
        check_step_up(auth_time=clock() + 3650 * 86_400, acr=None, max_age=0, acr_values=(),
                      now=clock(), leeway=30)  # fmt: skip


def test_a_provider_that_cannot_give_the_asked_acr_fails_the_login_instead_of_looping(
    client: TestClient, issuer: FakeIssuer
) -> None:
    issuer.oauth.id_token_claims = {"acr": "silver"}
    login(client, issuer)
    page = client.get("/api/gold", headers={"Accept": "text/html"}, follow_redirects=False)
    start = client.get(page.headers["location"], follow_redirects=False)
    back = client.get(issuer.authorize(start.headers["location"]), follow_redirects=False)
    assert back.status_code == 400  # not another redirect to /api/gold


def test_step_up_parameters_pass_even_when_login_params_leave_them_out(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    guard = web_guard(issuer, clock, login_params=("prompt",))
    with TestClient(step_up_app(guard), base_url=BASE_URL) as browser:
        start = browser.get("/auth/login?max_age=60&acr_values=gold", follow_redirects=False)
        assert "max_age=60" in start.headers["location"]
        assert "acr_values=gold" in start.headers["location"]


@pytest.mark.parametrize("name", ["nonce", "resource", "code_challenge", "redirect_uri", "state"])
def test_login_params_cannot_name_what_the_library_sets(
    issuer: FakeIssuer, clock: FakeClock, name: str
) -> None:
    from fastapi_oidc_guard.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="login_params"):
        web_guard(issuer, clock, login_params=(name,))


def test_entra_app_only_tokens_pass_when_the_audience_is_the_client_id(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    guard = web_guard(issuer, clock, audience=issuer.client_id)
    with TestClient(web_app(guard), base_url=BASE_URL) as browser:
        token = issuer.mint(header={"typ": "JWT"}, aud=issuer.client_id, scope=None,
                            roles=["Data.Read"], idtyp="app", azpacr="1")  # fmt: skip
        answer = browser.get("/api/protected", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200


def test_a_token_for_another_audience_than_asked_is_diagnosed(
    issuer: FakeIssuer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The provider ignores the ``audience``/``resource`` parameter (LemonLDAP::NG, Okta's
    authorization servers): ``access_token(audience=X)`` gets a JWT for other audiences. A
    warning names what was asked and what came, once per audience (the API would refuse the
    token with no hint why)."""
    from .web import OTHER_API

    def ignore_audience(grant_type: str, body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "access_token": issuer.mint(aud=[issuer.client_id, issuer.audience])}

    with TestClient(web_app(web_guard(issuer, clock)), base_url=BASE_URL) as browser:
        login(browser, issuer)
        issuer.oauth.shape = ignore_audience
        caplog.set_level("WARNING", logger="fastapi_oidc_guard")
        assert browser.get("/api/token-other").status_code == 200
        assert browser.get("/api/token-other").status_code == 200
        warned = [r for r in caplog.records if "asked for audience" in r.getMessage()]
        assert len(warned) == 1
        assert OTHER_API in warned[0].getMessage() and issuer.client_id in warned[0].getMessage()
        caplog.clear()
        assert browser.get("/api/token").status_code == 200  # its own audience: no warning
        assert not [r for r in caplog.records if "asked for audience" in r.getMessage()]
