"""Errors of the browser routes as pages for browsers, JSON for API clients (issue #15): a
replayed callback, a login cancelled at the provider, the provider down at login, a logout from
another origin; the app's own page through ``error_page``; nothing echoed, no open redirect."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.responses import HTMLResponse, Response
from fastapi.testclient import TestClient

from fastapi_oidc_guard.browser_errors import BrowserError, prefers_html
from fastapi_oidc_guard.testing import FakeClock, FakeIssuer, login

from .web import BASE_URL, web_app, web_guard

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
API = {"Accept": "application/json"}


def client_for(issuer: FakeIssuer, clock: FakeClock, **options: Any) -> TestClient:
    return TestClient(web_app(web_guard(issuer, clock, **options)), base_url=BASE_URL)


def start_login(client: TestClient, return_to: str) -> str:
    """The state of a login started for ``return_to`` (the browser is now at the provider)."""
    start = client.get("/auth/login", params={"returnTo": return_to}, follow_redirects=False)
    assert start.status_code == 302
    return parse_qs(urlsplit(start.headers["location"]).query)["state"][0]


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (BROWSER["Accept"], True),
        ("text/html", True),
        ("application/json", False),
        ("*/*", False),
        ("", False),
        ("application/json, text/html;q=0.5", False),
        ("text/html;q=0", False),
        ("text/html;q=nonsense", False),
        ("text/html," * 400, False),  # huge: not parsed
    ],
)
def test_prefers_html(accept: str, html: bool) -> None:
    assert prefers_html({"accept": accept}) is html


def test_a_login_cancelled_at_the_provider(issuer: FakeIssuer, clock: FakeClock) -> None:
    with client_for(issuer, clock) as client:
        state = start_login(client, "/reports?month=11")
        page = client.get("/auth/callback", params={"state": state, "error": "access_denied"},
                          headers=BROWSER)  # fmt: skip
        assert page.status_code == 400 and page.headers["content-type"].startswith("text/html")
        assert "cancelled or refused" in page.text
        assert "href='/auth/login?returnTo=%2Freports%3Fmonth%3D11'" in page.text  # try again
        assert "href='/reports?month=11'" in page.text
        assert page.headers["Cache-Control"] == "no-store"
        state = start_login(client, "/reports")
        api = client.get("/auth/callback", params={"state": state, "error": "access_denied"},
                         headers=API)  # fmt: skip
        assert api.json() == {
            "error": "access_denied",
            "description": "The sign-in was cancelled or refused at the identity provider",
        }


def test_a_replayed_callback(issuer: FakeIssuer, clock: FakeClock) -> None:
    with client_for(issuer, clock) as client:
        done = login(client, issuer, return_to="/reports")
        replayed = client.get(str(done.request.url), headers=BROWSER)
        assert replayed.status_code == 400
        assert "expired or was already completed" in replayed.text
        assert "href='/auth/login?returnTo=%2F'" in replayed.text
        api = client.get(str(done.request.url), headers=API)
        assert api.json()["error"] == "invalid_request"
        assert client.get("/api/protected").status_code == 200  # the session is untouched


def test_the_provider_down_at_login(issuer: FakeIssuer, clock: FakeClock) -> None:
    with issuer.outage("down"), client_for(issuer, clock) as client:  # never reached at start-up
        page = client.get("/auth/login", params={"returnTo": "/inbox"}, headers=BROWSER,
                          follow_redirects=False)  # fmt: skip
        assert page.status_code == 503
        assert "temporarily unavailable" in page.text
        assert "href='/auth/login?returnTo=%2Finbox'" in page.text
        api = client.get("/auth/login", params={"returnTo": "/inbox"}, headers=API,
                         follow_redirects=False)  # fmt: skip
        assert api.status_code == 503 and api.json()["error"] == "temporarily_unavailable"


def test_a_cross_origin_logout_gets_a_page_and_stays_signed_in(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    with client_for(issuer, clock) as client:
        login(client, issuer)
        page = client.post("/auth/logout", headers={**BROWSER, "Origin": "https://evil.example"})
        assert page.status_code == 403 and "text/html" in page.headers["content-type"]
        assert client.get("/api/protected").status_code == 200


def test_hostile_return_to_never_becomes_a_link(issuer: FakeIssuer, clock: FakeClock) -> None:
    """Attack: a login started with ``returnTo=//evil.example`` or markup, then cancelled: the
    page's links stay on this site and nothing from the request is rendered as HTML."""
    with client_for(issuer, clock) as client:
        for hostile in ("//evil.example/x", "https://evil.example", "/'><script>x</script>"):
            state = start_login(client, hostile)
            page = client.get("/auth/callback", params={"state": state, "error": "access_denied"},
                              headers=BROWSER)  # fmt: skip
            assert "evil.example" not in page.text and "<script>" not in page.text
            assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_the_app_renders_its_own_page(issuer: FakeIssuer, clock: FakeClock, kind: str) -> None:
    seen: list[BrowserError] = []

    def render(request: Any, error: BrowserError) -> Response:
        seen.append(error)
        return HTMLResponse(f"<p>ours: {error.error}</p>", status_code=error.status)

    async def arender(request: Any, error: BrowserError) -> Response:
        return render(request, error)

    with client_for(issuer, clock, error_page=render if kind == "sync" else arender) as client:
        state = start_login(client, "/reports")
        page = client.get("/auth/callback", params={"state": state, "error": "access_denied"},
                          headers=BROWSER)  # fmt: skip
        assert (page.status_code, page.text) == (400, "<p>ours: access_denied</p>")
        api = client.get("/auth/callback", params={"state": "nope"}, headers=API)
        assert api.json()["error"] == "invalid_request"  # API clients never see the page
    if kind == "sync":
        assert seen[0].try_again == "/auth/login?returnTo=%2Freports"
        assert seen[0].home == "/reports"


@pytest.mark.parametrize("failure", ["raises", "raises OIDC error", "not a response"])
def test_a_failing_error_page_hook_falls_back_to_the_librarys_page(
    issuer: FakeIssuer, clock: FakeClock, failure: str
) -> None:
    """Review of #15: an app hook that raises (a missing template) used to turn a cancelled
    login into a 500 that kept the login transaction usable; it is logged, and the library's
    page is shown, with the transaction spent."""
    calls: list[str] = []

    def page(request: Any, error: BrowserError) -> Any:
        calls.append(error.error)
        if failure == "raises":
            raise RuntimeError("template missing")
        if failure == "raises OIDC error":
            from fastapi_oidc_guard import InvalidRequest

            raise InvalidRequest("from the hook")
        return "<p>not a response</p>"

    with client_for(issuer, clock, error_page=page) as client:
        state = start_login(client, "/x")
        answer = client.get(
            "/auth/callback", params={"state": state, "error": "access_denied"}, headers=BROWSER
        )
        assert answer.status_code == 400 and "text/html" in answer.headers["content-type"]
        assert calls == ["access_denied"]  # once
        again = client.get(
            "/auth/callback", params={"state": state, "error": "access_denied"}, headers=BROWSER
        )
        assert calls == ["access_denied", "invalid_request"]  # the transaction was spent
        assert again.status_code == 400 and "already completed" in again.text
