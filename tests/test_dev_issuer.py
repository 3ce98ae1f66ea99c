"""The development issuer served over HTTP (``FakeIssuer.asgi`` with ``interactive=True``), as a
browser meets it: each test performs an attack that must fail.

- it redirects only to the client's registered redirect and post-logout redirect URIs (an
  unregistered one gets a 400 page, never a redirect: RFC 6749 section 4.1.2.1);
- it builds no URL from request headers (``Host``);
- a malformed body is a 400, never a 500;
- a code is bound to the redirect URI it was issued for.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator, MutableMapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from fastapi_oidc_guard.testing import FakeIssuer
from fastapi_oidc_guard.testing._pages import MAX_FORM_BYTES

pytestmark = pytest.mark.anyio

APP = "http://127.0.0.1:8000"
ISSUER = f"{APP}/_dev-issuer"
CALLBACK = f"{APP}/auth/callback"
VERIFIER = "v" * 50
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=")
FORM = "application/x-www-form-urlencoded"


def dev_issuer(issuer: str = ISSUER) -> FakeIssuer:
    return FakeIssuer(
        issuer, client_id="app", client_secret="app-secret", interactive=True,
        redirect_uris=[CALLBACK], post_logout_redirect_uris=[f"{APP}/"],
    )  # fmt: skip


def authorization(redirect_uri: str = CALLBACK, **extra: str) -> dict[str, str]:
    return {"client_id": "app", "redirect_uri": redirect_uri, "response_type": "code",
            "scope": "openid", "state": "st", "code_challenge": CHALLENGE.decode(),
            "code_challenge_method": "S256", **extra}  # fmt: skip


@pytest.fixture
def issuer() -> FakeIssuer:
    return dev_issuer()


@pytest.fixture
async def http(issuer: FakeIssuer) -> AsyncIterator[httpx.AsyncClient]:
    # raise_app_exceptions (the default): a 500 from the issuer fails the test loudly
    transport = httpx.ASGITransport(app=issuer.asgi)
    async with httpx.AsyncClient(transport=transport, base_url=issuer.base) as client:
        yield client


# -- registration --------------------------------------------------------------------------------


def test_an_interactive_issuer_must_register_its_uris() -> None:
    with pytest.raises(ValueError, match="register"):
        FakeIssuer(ISSUER, interactive=True)
    with pytest.raises(ValueError, match="register"):
        FakeIssuer(ISSUER, interactive=True, redirect_uris=[CALLBACK])
    with pytest.raises(ValueError, match="register"):
        FakeIssuer(ISSUER, interactive=True, post_logout_redirect_uris=[f"{APP}/"])


@pytest.mark.parametrize("uri", ["/auth/callback", f"{CALLBACK}#frag", "javascript:alert(1)"])
def test_registration_refuses_uris_that_cannot_be_exact_redirect_targets(uri: str) -> None:
    with pytest.raises(ValueError, match="registrable"):
        FakeIssuer(ISSUER, redirect_uris=[uri])


def test_registration_is_a_sequence_not_one_string() -> None:
    with pytest.raises(TypeError):
        FakeIssuer(ISSUER, redirect_uris=CALLBACK)


UNREGISTERED = [
    "https://evil.example/cb",
    f"{APP}/",  # same origin, other path: still an open redirect on the app's origin
    f"{CALLBACK}/../../evil",
    f"{CALLBACK}?next=https://evil.example",
    f"{CALLBACK}x",
    "http://127.0.0.1:8000.evil.example/auth/callback",
    "HTTP://127.0.0.1:8000/auth/callback",
]


@pytest.mark.parametrize("redirect_uri", UNREGISTERED)
async def test_unregistered_redirect_uri_gets_no_login_page(
    http: httpx.AsyncClient, redirect_uri: str
) -> None:
    page = await http.get("/authorize", params=authorization(redirect_uri))
    assert page.status_code == 400
    assert "location" not in page.headers
    assert "<form" not in page.text and "not registered" in page.text


@pytest.mark.parametrize("redirect_uri", UNREGISTERED)
async def test_unregistered_redirect_uri_is_never_redirected_to(
    http: httpx.AsyncClient, issuer: FakeIssuer, redirect_uri: str
) -> None:
    signed_in = await http.post("/authorize", data={**authorization(redirect_uri), "login": "bob"})
    assert signed_in.status_code == 400
    assert "location" not in signed_in.headers
    assert issuer.oauth.codes == {}  # no code was issued either


async def test_unknown_client_is_refused_in_place(http: httpx.AsyncClient) -> None:
    answer = await http.get("/authorize", params={**authorization(), "client_id": "other"})
    assert answer.status_code == 400 and "location" not in answer.headers


async def test_registered_redirect_uri_signs_in(http: httpx.AsyncClient) -> None:
    page = await http.get("/authorize", params=authorization())
    assert page.status_code == 200 and "Development issuer" in page.text
    signed_in = await http.post("/authorize", data={**authorization(), "login": "bob"})
    assert signed_in.status_code == 302
    assert signed_in.headers["location"].startswith(f"{CALLBACK}?code=")


def test_the_in_process_helper_enforces_the_registration_too() -> None:
    issuer = FakeIssuer(redirect_uris=[CALLBACK], post_logout_redirect_uris=[])
    url = str(httpx.URL(f"{issuer.base}/authorize", params={
        **authorization("https://evil.example/cb"), "client_id": issuer.client_id}))  # fmt: skip
    with pytest.raises(ValueError, match="not registered"):
        issuer.authorize(url)


async def test_non_interactive_issuer_over_http_refuses_in_place() -> None:
    issuer = FakeIssuer(redirect_uris=[CALLBACK], post_logout_redirect_uris=[])
    transport = httpx.ASGITransport(app=issuer.asgi)
    async with httpx.AsyncClient(transport=transport, base_url=issuer.base) as http:
        params = {**authorization("https://evil.example/cb"), "client_id": issuer.client_id}
        answer = await http.get("/authorize", params=params)
    assert answer.status_code == 400 and "location" not in answer.headers


# -- post-logout redirect ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target", ["https://evil.example/", f"{APP}/profile", f"{APP}", f"{APP}/?x=1", "//evil.example"]
)
async def test_unregistered_post_logout_redirect_uri_is_not_followed(
    http: httpx.AsyncClient, issuer: FakeIssuer, target: str
) -> None:
    answer = await http.get(
        "/logout", params={"client_id": "app", "post_logout_redirect_uri": target}
    )
    assert answer.status_code == 400
    assert "location" not in answer.headers
    assert issuer.oauth.ended_sessions == []


async def test_post_logout_redirect_for_another_client_is_not_followed(
    http: httpx.AsyncClient,
) -> None:
    params = {"client_id": "other", "post_logout_redirect_uri": f"{APP}/"}
    answer = await http.get("/logout", params=params)
    assert answer.status_code == 400 and "location" not in answer.headers


async def test_registered_post_logout_redirect_uri_is_followed_with_state(
    http: httpx.AsyncClient, issuer: FakeIssuer
) -> None:
    params = {"client_id": "app", "post_logout_redirect_uri": f"{APP}/", "id_token_hint": "t",
              "state": "s1"}  # fmt: skip
    answer = await http.get("/logout", params=params)
    assert answer.status_code == 302
    assert answer.headers["location"] == f"{APP}/?state=s1"
    assert issuer.oauth.ended_sessions == ["t"]
    plain = await http.get("/logout")
    assert plain.status_code == 200 and "location" not in plain.headers


# -- no URL from request headers -----------------------------------------------------------------


async def test_login_form_action_comes_from_the_issuer_url_not_the_host_header(
    http: httpx.AsyncClient,
) -> None:
    headers = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}
    page = await http.get("/authorize", params=authorization(), headers=headers)
    assert page.status_code == 200
    assert f'action="{ISSUER}/authorize"' in page.text
    assert "evil.example" not in page.text
    discovery = await http.get("/.well-known/openid-configuration", headers=headers)
    assert "evil.example" not in discovery.text


async def test_served_at_its_own_path_without_a_mount() -> None:
    issuer = dev_issuer("http://127.0.0.1:9000/_dev")
    transport = httpx.ASGITransport(app=issuer.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:9000") as http:
        page = await http.get("/_dev/authorize", params=authorization())
    assert 'action="http://127.0.0.1:9000/_dev/authorize"' in page.text


# -- malformed bodies: 400, never 500 ------------------------------------------------------------

BAD_BODIES = {
    "not utf-8": (b"\xff\xfe", FORM),
    "percent-encoded not utf-8": (b"login=%FF%FE&client_id=app", FORM),
    "repeated parameter": (b"grant_type=a&grant_type=b", FORM),
    "oversized": (b"a=" + b"x" * MAX_FORM_BYTES, FORM),
    "too many fields": (b"&".join(b"f%d=1" % i for i in range(200)), FORM),
    "json": (b'{"grant_type": "client_credentials"}', "application/json"),
    "no content type": (b"grant_type=client_credentials", ""),
}


@pytest.mark.parametrize("path", ["/authorize", "/token", "/revoke", "/logout", "/userinfo"])
@pytest.mark.parametrize("case", list(BAD_BODIES))
async def test_malformed_body_is_a_400(http: httpx.AsyncClient, path: str, case: str) -> None:
    body, content_type = BAD_BODIES[case]
    headers = {"content-type": content_type} if content_type else {}
    answer = await http.post(path, content=body, headers=headers, auth=("app", "app-secret"))
    assert answer.status_code == 400
    assert "location" not in answer.headers
    if path in ("/token", "/revoke"):
        assert answer.json()["error"] == "invalid_request"


async def test_an_endless_body_is_cut_off(issuer: FakeIssuer) -> None:
    chunks = 0
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        nonlocal chunks
        chunks += 1
        assert chunks < 100, "the issuer kept reading an endless body"
        return {"type": "http.request", "body": b"a" * 1024, "more_body": True}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/_dev-issuer/token",
             "root_path": "", "query_string": b"",
             "headers": [(b"content-type", FORM.encode())]}  # fmt: skip
    await issuer.asgi(scope, receive, send)
    assert sent[0]["status"] == 400


@pytest.mark.parametrize(
    "authorization_header", ["Basic !!!", "Basic " + base64.b64encode(b"\xff:\xfe").decode()]
)
async def test_malformed_basic_credentials_are_invalid_client(
    http: httpx.AsyncClient, authorization_header: str
) -> None:
    answer = await http.post("/token", data={"grant_type": "client_credentials"},
                             headers={"Authorization": authorization_header})  # fmt: skip
    assert answer.status_code == 401
    assert answer.json() == {"error": "invalid_client"}


@pytest.mark.parametrize("path", ["/token", "/revoke"])
async def test_non_ascii_basic_credentials_are_refused_not_a_500(
    http: httpx.AsyncClient, path: str
) -> None:
    header = "Basic \xe9\xe9\xe9\xe9".encode("latin-1")
    answer = await http.post(path, data={"grant_type": "client_credentials", "token": "t"},
                             headers={"Authorization": header})  # fmt: skip
    assert answer.status_code == 401


# -- the code is bound to its redirect URI -------------------------------------------------------


async def _code(http: httpx.AsyncClient) -> str:
    signed_in = await http.post("/authorize", data={**authorization(), "login": "bob"})
    return parse_qs(urlsplit(signed_in.headers["location"]).query)["code"][0]


async def test_token_endpoint_requires_the_authorization_redirect_uri(
    http: httpx.AsyncClient,
) -> None:
    async def exchange(**redirect: str) -> httpx.Response:
        form = {"grant_type": "authorization_code", "code_verifier": VERIFIER,
                "code": await _code(http), **redirect}  # fmt: skip
        return await http.post("/token", auth=("app", "app-secret"), data=form)

    stolen = await exchange(redirect_uri="https://evil.example/cb")
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    missing = await exchange()
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_grant"
    good = await exchange(redirect_uri=CALLBACK)
    assert good.status_code == 200 and good.json()["id_token"]
