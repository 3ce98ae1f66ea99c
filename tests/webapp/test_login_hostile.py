"""Hostile callbacks and redirects, each a named test: never a 500, never a session."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from fastapi_oidc_guard.routes import safe_return_to
from fastapi_oidc_guard.testing import FakeClock, FakeIssuer, login
from fastapi_oidc_guard.testing.issuer import DEFAULT_AUDIENCE as AUDIENCE

from ..web import BASE_URL, web_app, web_guard


def authorize(client: TestClient, issuer: FakeIssuer, **login_params: str) -> str:
    """Start a login and let the issuer answer: the callback URL, not yet visited."""
    start = client.get("/auth/login", params=login_params, follow_redirects=False)
    return issuer.authorize(start.headers["location"])


def with_params(url: str, **changes: str | None) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    for key, value in changes.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = value
    return f"{parts.path}?{urlencode(query)}"


def assert_refused(response: httpx.Response, client: TestClient, error: str = "invalid_request"):
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error
    assert client.get("/api/protected").status_code == 401  # no session was created


def test_callback_without_state(client: TestClient, issuer: FakeIssuer) -> None:
    callback = authorize(client, issuer)
    assert_refused(client.get(with_params(callback, state=None)), client)


def test_callback_with_mismatched_state(client: TestClient, issuer: FakeIssuer) -> None:
    callback = authorize(client, issuer)
    assert_refused(client.get(with_params(callback, state="forged-state")), client)


def test_callback_replayed_state(client: TestClient, issuer: FakeIssuer) -> None:
    callback = authorize(client, issuer)
    assert client.get(callback, follow_redirects=False).status_code == 302
    client.cookies.clear()  # a fresh browser (the attacker's) replays the same callback URL
    assert_refused(client.get(callback, follow_redirects=False), client)


def test_callback_without_transaction_cookie(client: TestClient, issuer: FakeIssuer) -> None:
    callback = authorize(client, issuer)
    client.cookies.clear()
    assert_refused(client.get(callback), client)


def test_transaction_cookie_of_another_login(client: TestClient, issuer: FakeIssuer) -> None:
    first = authorize(client, issuer)
    second = authorize(client, issuer)
    # Code of the first login, state of the second: the code belongs to another transaction.
    code = parse_qs(urlsplit(first).query)["code"][0]
    response = client.get(with_params(second, code=code))
    assert_refused(response, client)


def test_transaction_cookie_is_deleted_after_use(client: TestClient, issuer: FakeIssuer) -> None:
    callback = client.get(authorize(client, issuer), follow_redirects=False)
    deleted = [c for c in callback.headers.get_list("set-cookie") if "_txn_" in c]
    assert deleted and all("Max-Age=0" in c for c in deleted)


def test_wrong_nonce(client: TestClient, issuer: FakeIssuer) -> None:
    callback = authorize(client, issuer)
    code = parse_qs(urlsplit(callback).query)["code"][0]
    issuer.oauth.codes[code].nonce = "attacker-nonce"
    assert_refused(client.get(callback), client)


@pytest.mark.parametrize("iss", [None, "https://evil.example"], ids=["iss-missing", "iss-wrong"])
def test_wrong_or_missing_iss_when_provider_advertises_rfc9207(
    client: TestClient, issuer: FakeIssuer, iss: str | None
) -> None:
    callback = authorize(client, issuer)
    assert_refused(client.get(with_params(callback, iss=iss)), client)


def test_code_reused(client: TestClient, issuer: FakeIssuer) -> None:
    callback = authorize(client, issuer)
    state = parse_qs(urlsplit(callback).query)["state"][0]
    txn_cookie = next(
        (name, value)
        for name, value in client.cookies.items()
        if name.endswith(__import__("hashlib").sha256(state.encode()).hexdigest()[:16])
    )
    assert client.get(callback, follow_redirects=False).status_code == 302
    client.cookies.clear()
    client.cookies.set(*txn_cookie, path="/auth")  # attacker kept the transaction cookie too
    assert_refused(client.get(callback, follow_redirects=False), client)


def test_provider_error_is_not_reflected(client: TestClient, issuer: FakeIssuer) -> None:
    callback = authorize(client, issuer)
    hostile = "<script>alert(1)</script>"
    response = client.get(
        with_params(callback, code=None, error="access_denied", error_description=hostile)
    )
    assert_refused(response, client, error="access_denied")
    assert "<script>" not in response.text and "alert" not in response.text
    assert response.headers["content-type"] == "application/json"


def test_callback_with_missing_code(client: TestClient, issuer: FakeIssuer) -> None:
    assert_refused(client.get(with_params(authorize(client, issuer), code=None)), client)


def test_huge_state_is_refused(client: TestClient) -> None:
    assert_refused(client.get("/auth/callback", params={"state": "s" * 5000, "code": "c"}), client)


RETURN_TO_ATTACKS = [
    "//evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "https://evil.example",
    "http:evil.example",
    "/%2F%2Fevil.example",
    "/%252F%252Fevil.example",
    "/%5Cevil.example",
    "javascript:alert(1)",
    "/ok\r\nSet-Cookie: x=1",
    "/ok%0d%0aSet-Cookie:%20x=1",
    "/\tevil",
    "evil.example/path",
    "/" + "a" * 5000,
]


@pytest.mark.parametrize("attack", RETURN_TO_ATTACKS)
def test_return_to_attacks_fall_back_to_root(attack: str) -> None:
    assert safe_return_to(attack) == "/"


@pytest.mark.parametrize("good", ["/", "/dashboard", "/a/b?x=1&y=%20z", "/page#top"])
def test_return_to_same_origin_paths_are_kept(good: str) -> None:
    assert safe_return_to(good) == good


@pytest.mark.parametrize("attack", RETURN_TO_ATTACKS)
def test_return_to_attacks_through_the_flow(
    client: TestClient, issuer: FakeIssuer, attack: str
) -> None:
    response = login(client, issuer, return_to=attack)
    assert response.status_code == 302
    assert response.headers["location"] == "/"
    logout = client.post("/auth/logout", data={"returnTo": attack}, follow_redirects=False)
    post_logout = parse_qs(urlsplit(logout.headers["location"]).query)["post_logout_redirect_uri"]
    assert post_logout == [f"{BASE_URL}/"]


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"scope": "profile email"}, id="scope-without-openid"),
        pytest.param({"scope": "openid " + "x" * 600}, id="scope-too-long"),
        pytest.param({"scope": "openid profile admin"}, id="scope-not-allowed"),
        pytest.param({"audience": "https://evil.example.test"}, id="audience-not-allowed"),
        pytest.param({"login_hint": "a\r\nb"}, id="control-chars"),
        pytest.param({"prompt": "x" * 600}, id="param-too-long"),
        pytest.param({"max_age": "60s"}, id="max_age-not-a-number"),
        pytest.param({"max_age": "9" * 12}, id="max_age-huge"),
        pytest.param({"acr_values": "a  b"}, id="acr_values-empty-token"),
    ],
)
def test_bad_login_parameters_are_400(
    issuer: FakeIssuer, clock: FakeClock, params: dict[str, str]
) -> None:
    guard = web_guard(issuer, clock, login_params=("scope", "audience", "prompt", "login_hint",
                                                   "max_age", "acr_values"))  # fmt: skip
    with TestClient(web_app(guard), base_url=BASE_URL) as client:
        response = client.get("/auth/login", params=params, follow_redirects=False)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    "params",
    [{"scope": "openid profile admin"}, {"audience": "https://evil.example.test"},
     {"organization": "org_evil"}, {"client_id": "evil"}, {"redirect_uri": "https://evil"}],
)  # fmt: skip
def test_parameters_the_app_did_not_allow_are_dropped(
    client: TestClient, params: dict[str, str]
) -> None:
    """Attack (issue #11, case 2): the browser widens what the login asks for."""
    start = client.get("/auth/login", params=params, follow_redirects=False)
    assert start.status_code == 302
    query = parse_qs(urlsplit(start.headers["location"]).query)
    assert query["scope"] == ["openid profile email offline_access"]
    assert query.get("audience") == [AUDIENCE] and "organization" not in query
    assert query["client_id"] == ["test-client"]
    assert query["redirect_uri"] == [f"{BASE_URL}/auth/callback"]
