"""The app behind a reverse proxy under ``/myapp``: every URL and cookie path the library makes
includes the prefix, whether it comes from ``OIDC_BASE_URL``'s path or from the ASGI
``root_path`` (``uvicorn --root-path /myapp``). A login that drops the prefix lands on another
app (or a 404) and its transaction cookie is never sent back: tested by following every hop
with a cookie jar that honours cookie paths."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from fastapi_oidc_guard.testing import FakeClock, FakeIssuer

from ..web import BASE_URL, web_app, web_guard

PREFIX = "/myapp"


@pytest.fixture(params=["base-url-path", "root-path"])
def client(request: Any, issuer: FakeIssuer, clock: FakeClock) -> Any:
    base = BASE_URL + PREFIX if request.param == "base-url-path" else BASE_URL
    guard = web_guard(issuer, clock, base_url=base)
    with TestClient(web_app(guard), base_url=BASE_URL, root_path=PREFIX) as test_client:
        yield test_client


def test_page_login_callback_and_logout_under_a_prefix(
    client: TestClient, issuer: FakeIssuer
) -> None:
    page = client.get(f"{PREFIX}/page", params={"tab": "2"}, follow_redirects=False)
    assert page.status_code == 302
    login_url = urlsplit(page.headers["location"])
    assert login_url.path == f"{PREFIX}/auth/login"
    assert parse_qs(login_url.query)["returnTo"] == [f"{PREFIX}/page?tab=2"]

    start = client.get(page.headers["location"], follow_redirects=False)
    assert start.status_code == 302
    authorize = parse_qs(urlsplit(start.headers["location"]).query)
    assert authorize["redirect_uri"] == [f"{BASE_URL}{PREFIX}/auth/callback"]
    (txn_cookie,) = [c for c in start.headers.get_list("set-cookie") if "_txn_" in c]
    assert f"Path={PREFIX}/auth;" in txn_cookie

    callback = urlsplit(issuer.authorize(start.headers["location"]))
    assert callback.path == f"{PREFIX}/auth/callback"
    done = client.get(f"{callback.path}?{callback.query}", follow_redirects=False)
    assert done.status_code == 302, done.text
    assert done.headers["location"] == f"{PREFIX}/page?tab=2"
    assert client.get(f"{PREFIX}/page").status_code == 200

    confirm = client.get(f"{PREFIX}/auth/logout", headers={"Sec-Fetch-Site": "cross-site"})
    assert f"action='{PREFIX}/auth/logout'" in confirm.text
    logout = client.post(f"{PREFIX}/auth/logout", headers={"Origin": BASE_URL},
                         follow_redirects=False)  # fmt: skip
    assert logout.status_code == 302
    params = parse_qs(urlsplit(logout.headers["location"]).query)
    assert params["post_logout_redirect_uri"] == [f"{BASE_URL}{PREFIX}/"]
    assert client.get(f"{PREFIX}/page", follow_redirects=False).status_code == 302


def test_the_default_return_to_is_under_the_prefix(client: TestClient, issuer: FakeIssuer) -> None:
    start = client.get(f"{PREFIX}/auth/login", follow_redirects=False)
    callback = urlsplit(issuer.authorize(start.headers["location"]))
    done = client.get(f"{callback.path}?{callback.query}", follow_redirects=False)
    assert done.headers["location"] == f"{PREFIX}/"


def test_step_up_page_redirect_keeps_the_prefix(issuer: FakeIssuer, clock: FakeClock) -> None:
    from fastapi import Depends

    from fastapi_oidc_guard import User, require_step_up

    guard = web_guard(issuer, clock, base_url=BASE_URL + PREFIX)
    app = web_app(guard)
    recent = require_step_up(max_age=60)

    @app.get("/sensitive")
    async def sensitive(user: User = Depends(recent)) -> dict[str, str]:
        return {"sub": user.sub}

    with TestClient(app, base_url=BASE_URL, root_path=PREFIX) as client:
        answer = client.get(f"{PREFIX}/sensitive", headers={"Accept": "text/html"},
                            follow_redirects=False)  # fmt: skip
        assert answer.status_code == 302
        location = urlsplit(answer.headers["location"])
        assert location.path == f"{PREFIX}/auth/login"
        assert parse_qs(location.query)["returnTo"] == [f"{PREFIX}/sensitive"]


@pytest.mark.parametrize(
    "root_path", ["//evil.example", "/x;Domain=evil.example;Path=/", "/x\\y", "/a//b"]
)
def test_an_unsafe_root_path_is_ignored(
    issuer: FakeIssuer, clock: FakeClock, root_path: str
) -> None:
    """Attack: a server that fills ``root_path`` from a request header (Daphne-Root-Path) turns
    the login redirect into an open redirect, or the transaction cookie's Path into attributes.
    Such a prefix is ignored (logged), never written."""
    guard = web_guard(issuer, clock)
    with TestClient(web_app(guard), base_url=BASE_URL, root_path=root_path) as client:
        page = client.get(f"{root_path}/page", follow_redirects=False)
        assert page.status_code == 302
        assert page.headers["location"].startswith("/auth/login?")
        start = client.get("/auth/login", follow_redirects=False)
        for cookie in start.headers.get_list("set-cookie"):
            assert "evil" not in cookie and "Path=/auth;" in cookie


@pytest.mark.parametrize(
    "base",
    ["http://127.0.0.1:8000//myapp", "http://127.0.0.1:8000/a;b", "http://127.0.0.1:8000/?q"],
)
def test_an_unsafe_base_url_path_is_a_configuration_error(
    issuer: FakeIssuer, clock: FakeClock, base: str
) -> None:
    from fastapi_oidc_guard import ConfigurationError

    with pytest.raises(ConfigurationError, match="OIDC_BASE_URL"):
        web_guard(issuer, clock, base_url=base)


def test_a_default_return_to_already_under_the_prefix_is_kept(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    guard = web_guard(issuer, clock, base_url=BASE_URL + PREFIX, default_return_to=PREFIX)
    with TestClient(web_app(guard), base_url=BASE_URL, root_path=PREFIX) as client:
        start = client.get(f"{PREFIX}/auth/login", follow_redirects=False)
        callback = urlsplit(issuer.authorize(start.headers["location"]))
        done = client.get(f"{callback.path}?{callback.query}", follow_redirects=False)
        assert done.headers["location"] == PREFIX
