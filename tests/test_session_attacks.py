"""Attacks on the session layer (issue #10, cases 4-10), each performed against a real app.

Each test states the attack that must fail; removing the defence makes it pass again. The
interleaving cases (1-3: logout during a touch or a refresh, back-channel logout on another
instance, a copied cookie) are in the conformance kit (tests/test_conformance.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi import Depends
from fastapi.testclient import TestClient

from fastapi_oidc_guard import OIDCGuard, User, require_user
from fastapi_oidc_guard.errors import ConfigurationError
from fastapi_oidc_guard.testing import FakeClock, FakeIssuer, login

from .redis_server import RedisServer
from .web import BASE_URL, SECRET, web_app, web_guard

HTTPS_BASE = "https://app.example.test"
EVIL = "https://evil.example.test"
SIBLING = "https://blog.app.example.test"


def with_writes(guard: OIDCGuard) -> Any:
    app = web_app(guard)

    @app.api_route("/api/items", methods=["POST", "PUT", "DELETE", "PURGE"])
    async def add_item(user: User = Depends(require_user)) -> dict[str, str]:
        return {"added_by": user.sub}

    return app


@pytest.fixture
def client(issuer: FakeIssuer, clock: FakeClock) -> Iterator[TestClient]:
    with TestClient(with_writes(web_guard(issuer, clock)), base_url=BASE_URL) as test_client:
        yield test_client


# -- 4. nothing in Redis works as a cookie -----------------------------------------------------


def test_every_redis_key_value_and_member_is_useless_as_a_cookie(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    """Attack: read Redis (a replica, a backup, another app on the instance) and replay what
    is there as the session cookie. Its keys were the cookies; now they are keyed hashes."""
    with RedisServer() as server:  # KEYS allowed here: the attacker can list everything
        guard = web_guard(issuer, clock, session_backend="redis", redis_url=server.url)
        raw = redis.Redis.from_url(server.url, decode_responses=True)
        with TestClient(web_app(guard), base_url=BASE_URL) as browser:
            login(browser, issuer)
            assert browser.get("/api/protected").status_code == 200
            cookie = browser.cookies["oidc_session"]
            candidates: set[str] = set()
            for name in raw.keys("*"):
                candidates.add(name)
                candidates.add(name.split(":", 2)[-1])
                kind = raw.type(name)
                if kind == "set":
                    candidates.update(raw.smembers(name))
                elif kind == "hash":
                    candidates.update(raw.hvals(name))
                elif kind == "string":
                    candidates.add(raw.get(name) or "")
            assert candidates and not any(cookie in c or c in cookie for c in candidates if c)
            key_id = cookie.split(".")[1]
            with TestClient(web_app(guard), base_url=BASE_URL) as attacker:
                for candidate in sorted(candidates):
                    for value in (candidate, f"s1.{key_id}.{candidate}"):
                        attacker.cookies.set("oidc_session", value)
                        assert attacker.get("/api/protected").status_code == 401, value
        raw.close()


# -- 5. sessions are bound to their app --------------------------------------------------------


@pytest.mark.parametrize("backend", ["cookie", "memory"])
@pytest.mark.parametrize("differs", ["issuer", "client_id"])
def test_a_cookie_of_another_app_with_the_same_secret_is_no_session(
    clock: FakeClock, backend: str, differs: str
) -> None:
    """Attack: staging and production share OIDC_SESSION_SECRET; a staging session cookie
    (or login transaction) is replayed against production."""
    production = FakeIssuer(clock=clock)
    staging = FakeIssuer(
        "https://staging-idp.example.test" if differs == "issuer" else production.issuer,
        clock=clock,
        client_id="staging" if differs == "client_id" else "test-client",
    )
    shared = {"session_backend": backend} if backend == "cookie" else {}
    from fastapi_oidc_guard import MemorySessionBackend

    store = MemorySessionBackend(clock=clock)  # one store: what a shared Redis would be
    if backend == "memory":
        shared = {"session_backend": store}
    prod_app = web_app(web_guard(production, clock, **shared))
    with (
        TestClient(web_app(web_guard(staging, clock, **shared)), base_url=BASE_URL) as stage,
        TestClient(prod_app, base_url=BASE_URL) as prod,
    ):  # fmt: skip
        login(stage, staging)
        assert stage.get("/api/protected").status_code == 200
        start = stage.get("/auth/login", follow_redirects=False)  # a pending staging login
        for name, value in stage.cookies.items():
            prod.cookies.set(name, value)
        assert prod.get("/api/protected").status_code == 401
        assert prod.get("/auth/profile").status_code == 401
        state = start.headers["location"].split("state=")[1].split("&")[0]
        replay = prod.get(f"/auth/callback?state={state}&code=x", follow_redirects=False)
        assert replay.status_code == 400  # the staging transaction does not open here


# -- 6. __Host- cookies on https -----------------------------------------------------------


def https_guard(issuer: FakeIssuer, clock: FakeClock, **settings: Any) -> OIDCGuard:
    return web_guard(issuer, clock, **{"base_url": HTTPS_BASE, **settings})


def test_https_cookies_are_host_prefixed_and_a_planted_plain_cookie_is_ignored(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    """Attack: a sibling subdomain plants `oidc_session` (Domain=app's parent) to fix the
    victim into the attacker's session. A __Host- cookie cannot be set by a sibling."""
    with TestClient(web_app(https_guard(issuer, clock)), base_url=HTTPS_BASE) as browser:
        start = browser.get("/auth/login", follow_redirects=False)
        txn = next(c for c in start.headers.get_list("set-cookie") if "_txn_" in c)
        assert txn.startswith("__Host-oidc_session_txn_") and "Path=/;" in txn
        assert "Secure" in txn and "Domain" not in txn
        callback = browser.get(issuer.authorize(start.headers["location"]),
                               follow_redirects=False)  # fmt: skip
        session = next(c for c in callback.headers.get_list("set-cookie")
                       if c.startswith("__Host-oidc_session="))  # fmt: skip
        assert "Path=/;" in session and "Secure" in session and "Domain" not in session
        planted = browser.cookies["__Host-oidc_session"]
        browser.cookies.clear()
        browser.cookies.set("oidc_session", planted)  # the unprefixed name is not read
        assert browser.get("/api/protected").status_code == 401


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        ({"cookie_domain": "app.example.test"}, "__Secure-oidc_session"),
        ({"base_url": BASE_URL}, "oidc_session"),
        ({"cookie_name": "__Host-mine"}, "__Host-mine"),
    ],
)
def test_default_and_custom_cookie_names(
    issuer: FakeIssuer, clock: FakeClock, settings: dict[str, Any], name: str
) -> None:
    guard = https_guard(issuer, clock, **settings)
    assert guard.sessions is not None and guard.sessions.cookie.name == name


@pytest.mark.parametrize(
    "settings",
    [
        {"cookie_name": "__Host-mine", "base_url": BASE_URL},  # not Secure
        {"cookie_name": "__Host-mine", "cookie_domain": "example.test"},
        {"cookie_name": "__Host-mine", "cookie_path": "/app"},
        {"cookie_name": "__Secure-mine", "base_url": BASE_URL},
        {"cookie_name": "__host-mine"},
    ],
)
def test_prefixed_names_that_browsers_would_drop_are_refused_at_start(
    issuer: FakeIssuer, clock: FakeClock, settings: dict[str, Any]
) -> None:
    with pytest.raises(ConfigurationError, match="cookie_name"):
        https_guard(issuer, clock, **settings)


def test_login_works_with_a_host_prefixed_custom_name(issuer: FakeIssuer, clock: FakeClock) -> None:
    guard = https_guard(issuer, clock, cookie_name="__Host-app")
    with TestClient(web_app(guard), base_url=HTTPS_BASE) as browser:
        assert login(browser, issuer).status_code == 302
        assert browser.get("/api/protected").status_code == 200


# -- 7. logout CSRF ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Referer": EVIL + "/page"},
        {"Origin": EVIL, "Sec-Fetch-Site": "same-origin"},
        {},
    ],
    ids=["cross-site", "same-site", "foreign-referer", "foreign-origin", "no-signal"],
)
def test_a_cross_site_get_logout_only_shows_a_confirmation(
    client: TestClient, issuer: FakeIssuer, headers: dict[str, str]
) -> None:
    """Attack: <img src=https://app/auth/logout> (or a link) on any site logs the user out,
    revokes the refresh token and ends the provider's session."""
    login(client, issuer)
    revocations = issuer.requests["revocation"]
    page = client.get("/auth/logout", headers=headers, follow_redirects=False)
    assert page.status_code == 200
    assert "<form method=post" in page.text and "Log out" in page.text
    assert not page.headers.get_list("set-cookie")
    assert issuer.requests["revocation"] == revocations
    assert client.get("/api/protected").status_code == 200


@pytest.mark.parametrize(
    "headers", [{"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"},
                {"Referer": BASE_URL + "/profile"}],
)  # fmt: skip
def test_a_same_origin_get_logout_logs_out(
    client: TestClient, issuer: FakeIssuer, headers: dict[str, str]
) -> None:
    login(client, issuer)
    assert client.get("/auth/logout", headers=headers, follow_redirects=False).status_code == 302
    assert client.get("/api/protected").status_code == 401


@pytest.mark.parametrize(
    "headers", [{"Origin": EVIL}, {"Origin": SIBLING}, {"Origin": "null"},
                {"Sec-Fetch-Site": "cross-site"}],
)  # fmt: skip
def test_a_cross_origin_logout_post_is_refused(
    client: TestClient, issuer: FakeIssuer, headers: dict[str, str]
) -> None:
    login(client, issuer)
    refused = client.post("/auth/logout", headers=headers, follow_redirects=False)
    assert refused.status_code == 403
    assert refused.json()["error"] == "cross_origin_request"
    assert client.get("/api/protected").status_code == 200


def test_a_same_origin_form_with_no_referrer_policy_can_log_out(
    client: TestClient, issuer: FakeIssuer
) -> None:
    """`Referrer-Policy: no-referrer` makes a same-origin form POST say `Origin: null`."""
    login(client, issuer)
    headers = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}
    assert client.post("/auth/logout", headers=headers, follow_redirects=False).status_code == 302
    assert client.get("/api/protected").status_code == 401


def test_the_confirmation_page_escapes_return_to(client: TestClient) -> None:
    page = client.get("/auth/logout", params={"returnTo": "/x'><script>alert(1)</script>"})
    assert "<script>" not in page.text


# -- 8. cookie-authenticated writes from other origins ----------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{"Origin": SIBLING}, {"Origin": EVIL}, {"Origin": "null"}, {"Sec-Fetch-Site": "same-site"},
     {"Sec-Fetch-Site": "cross-site"}],
)  # fmt: skip
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PURGE"])
def test_cookie_writes_from_another_origin_are_403(
    client: TestClient, issuer: FakeIssuer, headers: dict[str, str], method: str
) -> None:
    """Attack: a form on a sibling subdomain (same site: Lax cookies go along) POSTs to the
    API with the victim's session (or any method but GET, HEAD, OPTIONS, TRACE)."""
    login(client, issuer)
    refused = client.request(method, "/api/items", headers=headers)
    assert refused.status_code == 403
    assert refused.json() == {
        "error": "cross_origin_request",
        "description": "Requests that change state with the session cookie must come from "
        "this site's origin",
    }


@pytest.mark.parametrize(
    "headers", [{"Origin": BASE_URL}, {"Sec-Fetch-Site": "same-origin"}, {}],
    ids=["own-origin", "same-origin", "non-browser"],
)  # fmt: skip
def test_cookie_writes_from_the_own_origin_pass(
    client: TestClient, issuer: FakeIssuer, headers: dict[str, str]
) -> None:
    login(client, issuer)
    assert client.post("/api/items", headers=headers).json() == {"added_by": "user-1"}


def test_trusted_origins_and_bearer_requests_pass(issuer: FakeIssuer, clock: FakeClock) -> None:
    guard = web_guard(issuer, clock, trusted_origins="https://front.example.test")
    with TestClient(with_writes(guard), base_url=BASE_URL) as browser:
        login(browser, issuer)
        ok = browser.post("/api/items", headers={"Origin": "https://front.example.test"})
        assert ok.status_code == 200
        bearer = {"Authorization": f"Bearer {issuer.mint(sub='api')}", "Origin": EVIL}
        browser.cookies.clear()
        assert browser.post("/api/items", headers=bearer).json() == {"added_by": "api"}


def test_same_site_none_without_trusted_origins_warns(
    issuer: FakeIssuer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="fastapi_oidc_guard"):
        https_guard(issuer, clock, cookie_same_site="none")
    assert "OIDC_TRUSTED_ORIGINS" in caplog.text


@pytest.mark.parametrize("origin", ["*", "https://a.example/", "https://a.example/path", "a"])
def test_trusted_origins_must_be_origins(issuer: FakeIssuer, clock: FakeClock, origin: str) -> None:
    with pytest.raises(ConfigurationError, match="OIDC_TRUSTED_ORIGINS"):
        web_guard(issuer, clock, trusted_origins=(origin,))


# -- 9. oversized sessions are refused, not lost -----------------------------------------------


def test_an_oversized_session_is_refused_and_the_last_good_one_kept(
    client: TestClient, issuer: FakeIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    """Attack (or accident): a large profile. A ~100 KB session used to be written as 36
    chunks with a 200, and the next request (servers refuse such headers) was signed out.
    (The ID token's own 16 KiB cap bounds what a provider can send; 9 KB of claims plus that
    ID token already need ~29 KB of cookies, twice what a default uvicorn accepts.)"""
    issuer.login_as("small")
    login(client, issuer)
    before = dict(client.cookies)
    issuer.login_as("big", bio="x" * 9000)
    with caplog.at_level(logging.ERROR, logger="fastapi_oidc_guard"):
        callback = login(client, issuer)
    assert callback.status_code == 500
    assert callback.json()["error"] == "session_too_large"
    assert not [c for c in callback.headers.get_list("set-cookie") if "_txn_" not in c]
    assert "max_cookie_bytes" in caplog.text and "before_session_saved" in caplog.text
    assert {k: v for k, v in client.cookies.items() if "_txn_" not in k} == {
        k: v for k, v in before.items() if "_txn_" not in k
    }
    assert client.get("/api/protected").json()["userId"] == "small"


def test_the_budget_is_a_setting_and_stores_are_not_limited(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    issuer.login_as("big", bio="x" * 9000)
    big_cookie = web_guard(issuer, clock, max_cookie_bytes=70_000)
    in_memory = web_guard(issuer, clock, session_backend="memory")
    for guard in (big_cookie, in_memory):
        with TestClient(web_app(guard), base_url=BASE_URL) as browser:
            assert login(browser, issuer).status_code == 302
            assert browser.get("/auth/profile").json()["bio"] == "x" * 9000


# -- 10. one path for "the provider refused the refresh token" ---------------------------------


@pytest.mark.parametrize("path", ["/api/token", "/api/userinfo", "/auth/access-token"])
def test_a_refused_refresh_token_ends_the_session_on_every_path(
    client: TestClient, issuer: FakeIssuer, clock: FakeClock, path: str
) -> None:
    login(client, issuer)
    for grant in issuer.oauth.refresh.values():
        grant.revoked = True
    clock.advance(3600)
    response = client.get(path)
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "login_required"
    assert any("Max-Age=0" in c for c in response.headers.get_list("set-cookie"))
    assert client.get("/api/protected").status_code == 401


@pytest.mark.parametrize("path", ["/api/token", "/api/userinfo", "/api/m2m"])
def test_our_misconfigured_client_is_503_with_an_error_log(
    issuer: FakeIssuer, clock: FakeClock, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    guard = web_guard(issuer, clock)
    with TestClient(web_app(guard), base_url=BASE_URL) as browser:
        login(browser, issuer)
        clock.advance(3600)
        guard.credentials.client_secret = "rotated-at-the-provider"
        with caplog.at_level(logging.ERROR, logger="fastapi_oidc_guard"):
            response = browser.get(path)
        assert response.status_code == 503, response.text
        assert response.json()["error"] == "temporarily_unavailable"
        assert "Retry-After" in response.headers
        assert "invalid_client" in caplog.text and "OIDC_CLIENT_SECRET" in caplog.text
        guard.credentials.client_secret = issuer.client_secret
        assert browser.get("/api/protected").status_code == 200  # the session was kept


def test_a_misconfigured_client_at_the_callback_is_503(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    guard = web_guard(issuer, clock, client_secret="wrong")
    with TestClient(web_app(guard), base_url=BASE_URL) as browser:
        callback = login(browser, issuer)
        assert callback.status_code == 503
        assert browser.get("/api/protected").status_code == 401


def test_a_session_secret_shared_by_name_only_is_not_enough(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    """Sanity: the binding does not break the app's own sessions across its instances."""
    apps = [web_app(web_guard(issuer, clock)) for _ in range(2)]
    with TestClient(apps[0], base_url=BASE_URL) as a, TestClient(apps[1], base_url=BASE_URL) as b:
        login(a, issuer)
        b.cookies.set("oidc_session", a.cookies["oidc_session"])
        assert b.get("/api/protected").status_code == 200
    assert SECRET


# -- review findings: back-channel logout robustness -------------------------------------------


@pytest.mark.parametrize("backend", [{"session_backend": "redis"}, {}], ids=["redis", "cookie"])
def test_a_logout_token_is_not_burned_by_a_store_failure(
    issuer: FakeIssuer, clock: FakeClock, backend: dict[str, Any]
) -> None:
    """Redis fails right after the jti would have been recorded: the endpoint answers 503 and
    the provider's retry must still end the session (the jti is spent only after the logout
    was applied, and applying it again is a no-op)."""
    from .test_backchannel import logout_token

    with RedisServer() as server:
        guard = web_guard(issuer, clock, redis_url=server.url, **backend)
        assert guard.backchannel is not None
        original, pause = guard.backchannel.first_use, [True]

        async def first_use_then_redis_blips(claims: dict[str, Any]) -> bool:
            result = await original(claims)
            if pause[0]:
                server.pause()
            return result

        guard.backchannel.first_use = first_use_then_redis_blips  # type: ignore[method-assign]
        with TestClient(web_app(guard), base_url=BASE_URL) as browser:
            login(browser, issuer)
            token = logout_token(issuer, sid=next(iter(issuer.oauth.refresh.values())).sid)
            browser.post("/auth/backchannel-logout", data={"logout_token": token})
            server.resume()
            pause[0] = False
            browser.post("/auth/backchannel-logout", data={"logout_token": token})
            assert browser.get("/api/protected").status_code == 401


@pytest.mark.parametrize("backend", [{"session_backend": "redis"}, {}], ids=["redis", "cookie"])
def test_another_app_s_back_channel_logout_on_a_shared_redis_ends_nothing_here(
    clock: FakeClock, backend: dict[str, Any]
) -> None:
    """Staging and production share one Redis (and prefix): staging's provider logs out
    sub 1234; production's user 1234 stays signed in (index and revocation names are bound
    to the app)."""
    from .test_backchannel import logout_token

    prod = FakeIssuer("https://prod-idp.example.test", clock=clock)
    staging = FakeIssuer("https://staging-idp.example.test", clock=clock)
    with RedisServer() as server:
        app_p = web_app(web_guard(prod, clock, redis_url=server.url, **backend))
        app_s = web_app(web_guard(staging, clock, redis_url=server.url, **backend))
        with (
            TestClient(app_p, base_url=BASE_URL) as p,
            TestClient(app_s, base_url=BASE_URL) as s,
        ):
            login(p, prod, user={"sub": "1234"})
            clock.advance(5)
            token = logout_token(staging, sub="1234")
            assert (
                s.post("/auth/backchannel-logout", data={"logout_token": token}).status_code == 200
            )
            assert p.get("/api/protected").status_code == 200
