"""The example app: zero-configuration development mode, every route, and its refusal when any
``OIDC_*`` setting is present; its development issuer redirects only to the app's registered URIs.
(It is driven once in a real browser in tests/e2e/test_browser_e2e.py.)"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from example_app.app import create_app
from fastapi_oidc_guard.testing import FakeIssuer

BASE = "http://127.0.0.1:8000"
EVIL = "https://evil.example/steal"


@pytest.fixture
def dev_app() -> Iterator[tuple[TestClient, FakeIssuer]]:
    app, dev = create_app({}, base_url=BASE)
    assert dev is not None
    with TestClient(app, base_url=BASE) as client:
        yield client, dev


def authorization_params(client: TestClient) -> dict[str, str]:
    """The parameters of the authorization request that ``/auth/login`` starts."""
    start = client.get("/auth/login", follow_redirects=False)
    authorize = urlsplit(start.headers["location"])
    assert authorize.path == "/_dev-issuer/authorize"
    return {k: v[0] for k, v in parse_qs(authorize.query).items()}


def sign_in(client: TestClient, login: str) -> None:
    params = authorization_params(client)
    page = client.get("/_dev-issuer/authorize", params=params)
    assert "Development issuer" in page.text
    done = client.post("/_dev-issuer/authorize", data={**params, "login": login},
                       follow_redirects=False)  # fmt: skip
    assert done.headers["location"].startswith(f"{BASE}/auth/callback?")
    callback = client.get(done.headers["location"], follow_redirects=False)
    assert callback.status_code == 302


def logout_form(html: str) -> tuple[str, str]:
    """``(method, action)`` of the page's logout form (there must be exactly one)."""
    forms = re.findall(r"<form[^>]*>.*?</form>", html, flags=re.DOTALL)
    logouts = [f for f in forms if "Log out" in f]
    assert len(logouts) == 1, forms
    method = re.search(r"method=['\"](\w+)['\"]", logouts[0])
    action = re.search(r"action=['\"]([^'\"]+)['\"]", logouts[0])
    assert method is not None and action is not None
    return method.group(1).lower(), action.group(1)


def test_development_mode_full_tour(dev_app: tuple[TestClient, FakeIssuer]) -> None:
    client, _ = dev_app
    assert "Log in" in client.get("/").text
    assert client.get("/api/protected").status_code == 401
    assert client.get("/profile", follow_redirects=False).headers["location"] == (
        "/auth/login?returnTo=%2Fprofile"
    )
    sign_in(client, "alice")
    assert "Hello, Alice Example!" in client.get("/").text
    assert client.get("/api/protected").json()["userId"] == "alice"
    assert "Profile of alice" in client.get("/profile").text
    assert "fetch(" in client.get("/fetch-demo").text
    assert client.post("/api/data", json={"text": "one"}).status_code == 201
    assert client.get("/api/data").json() == {"items": ["one"]}
    assert client.delete("/api/data").json() == {"items": []}
    assert client.get("/api/posts/7").json()["reader"] == "alice"
    assert client.get("/api/posts/700").status_code == 404
    external = client.get("/api/external-data").json()
    assert external["status"] == 200 and external["tokenIsJwt"] is True
    assert external["api"]["message"] == "Secret data for alice"


def test_log_out_is_a_form_posting_to_the_library_logout(
    dev_app: tuple[TestClient, FakeIssuer],
) -> None:
    """A "Log out" link would be a GET: another site could embed it; the library ends sessions
    only on a same-origin POST."""
    client, _ = dev_app
    sign_in(client, "alice")
    home = client.get("/").text
    assert logout_form(home) == ("post", "/auth/logout")
    assert 'href="/auth/logout' not in home and "href='/auth/logout" not in home


def test_logging_out_through_the_page_form(dev_app: tuple[TestClient, FakeIssuer]) -> None:
    """The form's POST (a browser adds ``Origin``) ends the session and round-trips through the
    development issuer's logout back to the registered home page."""
    client, dev = dev_app
    sign_in(client, "alice")
    method, action = logout_form(client.get("/").text)
    logout = client.request(method, action, headers={"Origin": BASE}, follow_redirects=False)
    assert logout.status_code in (302, 303)
    assert logout.headers["location"].startswith(f"{BASE}/_dev-issuer/logout?")
    back = client.get(logout.headers["location"], follow_redirects=False)
    assert back.status_code == 302
    assert back.headers["location"].startswith(f"{BASE}/?state=")  # the logout's state returns
    assert len(dev.oauth.ended_sessions) == 1
    assert client.get("/api/protected").status_code == 401
    assert "Log in" in client.get("/").text


def test_bearer_tokens_from_the_development_issuer(dev_app: tuple[TestClient, FakeIssuer]) -> None:
    client, dev = dev_app
    headers = {"Authorization": f"Bearer {dev.mint(sub='curl-user')}"}
    assert client.get("/api/protected", headers=headers).json()["userId"] == "curl-user"


def test_cors_allows_the_second_origin_with_credentials(
    dev_app: tuple[TestClient, FakeIssuer],
) -> None:
    client, _ = dev_app
    response = client.options("/api/protected", headers={
        "Origin": "http://localhost:3000", "Access-Control-Request-Method": "GET"})  # fmt: skip
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert response.headers["access-control-allow-credentials"] == "true"
    other = client.options("/api/protected", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})  # fmt: skip
    assert "access-control-allow-origin" not in other.headers


# -- development mode only with no OIDC_* variable at all ---------------------------------------

HALF_CONFIGURED = {
    "only the client id": {"OIDC_CLIENT_ID": "my-client"},
    "empty issuer": {"OIDC_ISSUER": ""},
    "blank issuer": {"OIDC_ISSUER": "  ", "OIDC_CLIENT_ID": "my-client"},
    "only the redis settings": {
        "OIDC_SESSION_BACKEND": "redis",
        "OIDC_REDIS_URL": "redis://localhost:6379/0",
    },
    "an empty redis url": {"OIDC_REDIS_URL": ""},
    "an empty client secret": {"OIDC_CLIENT_SECRET": ""},
    "a session secret": {"OIDC_SESSION_SECRET": "x" * 40},
    "an audience": {"OIDC_AUDIENCE": "https://api.example.com"},
    "a base url": {"OIDC_BASE_URL": "https://app.example.com"},
    "a variable the library does not read": {"OIDC_SOMETHING_NEW": "1"},
    "a lower-case variable": {"oidc_issuer": "https://idp.example.com"},
}


@pytest.mark.parametrize("case", list(HALF_CONFIGURED))
def test_development_issuer_refused_when_any_oidc_variable_is_present(case: str) -> None:
    environ = {"PORT": "8000", **HALF_CONFIGURED[case]}
    with pytest.raises(RuntimeError, match="Set OIDC_ISSUER") as refused:
        create_app(environ)
    for name in HALF_CONFIGURED[case]:
        assert name in str(refused.value)  # says which variables it found
    assert "PORT" not in str(refused.value)


def test_empty_environment_gives_development_mode() -> None:
    app, dev = create_app({})
    assert dev is not None and dev.interactive
    assert dev.issuer == "http://127.0.0.1:8000/_dev-issuer"
    assert app.state.oidc_guard.config.issuer == dev.issuer


def test_unrelated_variables_keep_development_mode() -> None:
    _, dev = create_app({"PORT": "9001", "EXAMPLE_CORS_ORIGIN": "http://localhost:5173"})
    assert dev is not None
    assert dev.redirect_uris == ("http://127.0.0.1:9001/auth/callback",)
    assert dev.post_logout_redirect_uris == ("http://127.0.0.1:9001/",)


# -- the development issuer redirects only to the app's registered URIs --------------------------


@pytest.mark.parametrize("redirect_uri", [EVIL, f"{BASE}/", f"{BASE}/auth/callback?x=1"])
def test_development_issuer_never_redirects_to_an_unregistered_uri(
    dev_app: tuple[TestClient, FakeIssuer], redirect_uri: str
) -> None:
    client, _ = dev_app
    params = {**authorization_params(client), "redirect_uri": redirect_uri}
    page = client.get("/_dev-issuer/authorize", params=params, follow_redirects=False)
    assert page.status_code == 400 and "<form" not in page.text
    signed_in = client.post("/_dev-issuer/authorize", data={**params, "login": "mallory"},
                            follow_redirects=False)  # fmt: skip
    assert signed_in.status_code == 400 and "location" not in signed_in.headers


@pytest.mark.parametrize("target", [EVIL, f"{BASE}/profile", f"{BASE}//evil.example"])
def test_development_issuer_logout_never_redirects_to_an_unregistered_uri(
    dev_app: tuple[TestClient, FakeIssuer], target: str
) -> None:
    client, dev = dev_app
    params = {"client_id": dev.client_id, "post_logout_redirect_uri": target}
    answer = client.get("/_dev-issuer/logout", params=params, follow_redirects=False)
    assert answer.status_code == 400 and "location" not in answer.headers


def test_development_issuer_logout_returns_to_the_registered_home(
    dev_app: tuple[TestClient, FakeIssuer],
) -> None:
    client, dev = dev_app
    params = {"client_id": dev.client_id, "post_logout_redirect_uri": f"{BASE}/"}
    answer = client.get("/_dev-issuer/logout", params=params, follow_redirects=False)
    assert answer.status_code == 302 and answer.headers["location"] == f"{BASE}/"


def test_development_issuer_builds_no_url_from_the_host_header(
    dev_app: tuple[TestClient, FakeIssuer],
) -> None:
    client, _ = dev_app
    params = authorization_params(client)
    page = client.get("/_dev-issuer/authorize", params=params, headers={"Host": "evil.example"})
    assert page.status_code == 200
    assert f'action="{BASE}/_dev-issuer/authorize"' in page.text
    assert "evil.example" not in page.text


@pytest.mark.parametrize("path", ["/_dev-issuer/authorize", "/_dev-issuer/token"])
@pytest.mark.parametrize(
    ("body", "content_type"),
    [(b"\xff\xfe", "application/x-www-form-urlencoded"), (b"{}", "application/json"),
     (b"a=" + b"x" * 20_000, "application/x-www-form-urlencoded")],
)  # fmt: skip
def test_development_issuer_answers_bad_bodies_with_400(
    dev_app: tuple[TestClient, FakeIssuer], path: str, body: bytes, content_type: str
) -> None:
    client, _ = dev_app  # a 500 would raise here (the test client re-raises server errors)
    answer = client.post(path, content=body, headers={"content-type": content_type},
                         follow_redirects=False)  # fmt: skip
    assert answer.status_code == 400


def test_configured_mode_uses_the_environment() -> None:
    app, dev = create_app({"OIDC_ISSUER": "https://idp.example.com", "OIDC_AUDIENCE": "a"})
    assert dev is None
    assert app.state.oidc_guard.config.audience == "a"


def test_main_refuses_half_configuration_with_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    from example_app.__main__ import main

    for name in list(os.environ):
        if name.upper().startswith("OIDC_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OIDC_CLIENT_ID", "my-client")
    with pytest.raises(SystemExit, match="OIDC_CLIENT_ID present but OIDC_ISSUER is not set"):
        main()  # refused before any server starts


# -- a module-level app, for `uvicorn example_app.app:app` and `fastapi dev` (issue #15) ---------


def test_the_module_level_app_is_built_on_first_access(monkeypatch: pytest.MonkeyPatch) -> None:
    """``fastapi dev example_app/app.py`` imports the module and reads ``app``: development mode
    is decided then, from the environment, as ``python -m example_app`` decides it."""
    import importlib

    from fastapi import FastAPI

    for name in [n for n in os.environ if n.upper().startswith("OIDC_")]:
        monkeypatch.delenv(name)
    module = importlib.import_module("example_app.app")
    vars(module).pop("app", None)  # reload keeps the old namespace: start clean
    module = importlib.reload(module)
    assert "app" not in vars(module)  # importing builds nothing
    assert "app" in dir(module)  # fastapi dev looks for an app through dir()
    app = module.app
    assert isinstance(app, FastAPI) and module.app is app
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        assert client.get("/_dev-issuer/.well-known/openid-configuration").status_code == 200
        assert client.get("/api/protected").status_code == 401
    monkeypatch.setenv("OIDC_CLIENT_ID", "half-configured")
    vars(module).pop("app")
    module = importlib.reload(module)
    with pytest.raises(RuntimeError, match="OIDC_ISSUER is not set"):
        _ = module.app
    with pytest.raises(AttributeError):
        _ = module.no_such_thing
    monkeypatch.delenv("OIDC_CLIENT_ID")
    importlib.reload(module)


def test_uvicorn_serves_the_example_by_its_import_string() -> None:
    """``uvicorn example_app.app:app`` with no configuration: the development issuer signs in."""
    from .e2e._server import AppProcess, free_port

    port = free_port()
    if any(name.upper().startswith("OIDC_") for name in os.environ):
        pytest.skip("OIDC_* variables in this environment: the example would be configured")
    server = AppProcess("example_app.app:app", {"PORT": str(port)}, port, ready_path="/")
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.get("/").status_code == 200
            discovery = client.get("/_dev-issuer/.well-known/openid-configuration").json()
            assert discovery["issuer"] == f"{server.url}/_dev-issuer"
            assert client.get("/api/protected").status_code == 401
        assert "DEVELOPMENT ISSUER" in server.output()
    finally:
        server.stop()


def test_the_fake_issuer_runs_under_uvicorn_as_asgi3() -> None:
    """``uvicorn.run(issuer.asgi)`` as documented: detected as an ASGI 3 app (a bound method
    was taken for ASGI 2 and failed on the first request)."""
    import uvicorn

    config = uvicorn.Config(FakeIssuer("http://127.0.0.1:9000").asgi)
    config.load()
    assert config.interface == "asgi3"
