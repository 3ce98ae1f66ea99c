"""Back-channel logout (OpenID Connect Back-Channel Logout 1.0): every logout-token rule has a
rejection test; a valid token ends the sessions, in the memory and in the cookie backend."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fastapi_oidc_guard import MemorySessionBackend
from fastapi_oidc_guard.testing import FakeClock, FakeIssuer, login

from .web import BASE_URL, web_app, web_guard

EVENT = "http://schemas.openid.net/event/backchannel-logout"


def logout_token(issuer: FakeIssuer, header: dict[str, Any] | None = None, **claims: Any) -> str:
    now = int(issuer.clock())
    body: dict[str, Any] = {
        "iss": issuer.issuer, "aud": issuer.client_id, "iat": now, "exp": now + 120,
        "jti": secrets.token_hex(8), "events": {EVENT: {}}, "sub": "user-1",
    }  # fmt: skip
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return issuer.sign(body, header={"typ": "logout+jwt", **(header or {})})


@pytest.fixture(params=["memory", "cookie"])
def client(request: Any, issuer: FakeIssuer, clock: FakeClock) -> Iterator[TestClient]:
    extra = (
        {"session_backend": MemorySessionBackend(clock=clock)} if request.param == "memory" else {}
    )
    with TestClient(web_app(web_guard(issuer, clock, **extra)), base_url=BASE_URL) as c:
        yield c


def sid_of(issuer: FakeIssuer) -> str:
    return next(iter(issuer.oauth.refresh.values())).sid


def post(client: TestClient, token: Any) -> Any:
    data = {} if token is None else {"logout_token": token}
    return client.post("/auth/backchannel-logout", data=data)


def test_valid_logout_token_by_sid_ends_the_session(client: TestClient, issuer: FakeIssuer) -> None:
    login(client, issuer)
    assert client.get("/api/protected").status_code == 200
    response = post(client, logout_token(issuer, sid=sid_of(issuer)))
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert client.get("/api/protected").status_code == 401


def test_logout_by_sub_ends_every_session_of_the_user(
    client: TestClient, issuer: FakeIssuer
) -> None:
    login(client, issuer)
    assert post(client, logout_token(issuer, sub="user-1")).status_code == 200
    assert client.get("/api/protected").status_code == 401


def test_logout_of_another_session_leaves_this_one(client: TestClient, issuer: FakeIssuer) -> None:
    login(client, issuer)
    assert post(client, logout_token(issuer, sid="another-sid", sub=None)).status_code == 200
    assert client.get("/api/protected").status_code == 200


def test_a_new_login_after_the_logout_works(
    client: TestClient, issuer: FakeIssuer, clock: FakeClock
) -> None:
    login(client, issuer)
    post(client, logout_token(issuer, sub="user-1", sid=None))
    clock.advance(1)
    login(client, issuer)
    assert client.get("/api/protected").status_code == 200


REJECTIONS: list[Any] = [
    pytest.param(lambda i: None, id="no-token"),
    pytest.param(lambda i: "not-a-jwt", id="malformed"),
    pytest.param(lambda i: logout_token(i, iss="https://evil.example"), id="wrong-iss"),
    pytest.param(lambda i: logout_token(i, aud="someone-else"), id="wrong-aud"),
    pytest.param(lambda i: logout_token(i, iat=None), id="no-iat"),
    pytest.param(lambda i: logout_token(i, iat=int(i.clock()) + 600), id="iat-future"),
    pytest.param(lambda i: logout_token(i, exp=int(i.clock()) - 600), id="expired"),
    pytest.param(lambda i: logout_token(i, jti=None), id="no-jti"),
    pytest.param(lambda i: logout_token(i, events=None), id="no-events"),
    pytest.param(lambda i: logout_token(i, events={"other": {}}), id="wrong-event"),
    pytest.param(lambda i: logout_token(i, events={EVENT: "yes"}), id="event-not-object"),
    pytest.param(lambda i: logout_token(i, nonce="n"), id="nonce-present"),
    pytest.param(lambda i: logout_token(i, sub=None, sid=None), id="no-sid-no-sub"),
    pytest.param(lambda i: logout_token(i, header={"typ": "at+jwt"}), id="typ-access-token"),
    pytest.param(lambda i: logout_token(i, header={"alg": "HS256"}), id="alg-hs256"),
    pytest.param(lambda i: i.mint_id_token(nonce=None), id="id-token"),
    pytest.param(lambda i: logout_token(i)[:-6] + "AAAAAA", id="bad-signature"),
]


@pytest.mark.parametrize("build", REJECTIONS)
def test_rejected_logout_tokens(client: TestClient, issuer: FakeIssuer, build: Any) -> None:
    login(client, issuer)
    response = post(client, build(issuer))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert response.headers["cache-control"] == "no-store"
    assert client.get("/api/protected").status_code == 200  # nothing was ended


def test_replayed_jti_is_rejected(client: TestClient, issuer: FakeIssuer) -> None:
    token = logout_token(issuer, sid="some-sid", sub=None)
    assert post(client, token).status_code == 200
    assert post(client, token).status_code == 400


def test_typ_jwt_is_accepted(client: TestClient, issuer: FakeIssuer) -> None:
    login(client, issuer)
    token = logout_token(issuer, header={"typ": "JWT"}, sid=sid_of(issuer))
    assert post(client, token).status_code == 200
    assert client.get("/api/protected").status_code == 401


def test_memory_backend_deletes_the_stored_session(issuer: FakeIssuer, clock: FakeClock) -> None:
    backend = MemorySessionBackend(clock=clock)
    with TestClient(web_app(web_guard(issuer, clock, session_backend=backend)),
                    base_url=BASE_URL) as client:  # fmt: skip
        login(client, issuer)
        assert len(backend) == 1
        post(client, logout_token(issuer, sid=sid_of(issuer)))
        assert len(backend) == 0


# -- the older back-channel draft (no exp; Glewlwyd), issue #13 ---------------------------------


def _legacy(issuer: FakeIssuer, **claims: Any) -> str:
    """Shaped like Glewlwyd's: typ JWT, no exp."""
    return logout_token(issuer, header={"typ": "JWT"}, exp=None, sid=sid_of(issuer), **claims)


def test_a_logout_token_without_exp_is_refused_by_default(
    client: TestClient, issuer: FakeIssuer
) -> None:
    login(client, issuer)
    assert post(client, _legacy(issuer)).status_code == 400
    assert client.get("/api/protected").status_code == 200


@pytest.mark.parametrize("backend", ["memory", "cookie"])
def test_legacy_logout_tokens_when_the_app_opts_in(
    issuer: FakeIssuer, clock: FakeClock, backend: str
) -> None:
    """With ``legacy_logout_tokens=True``: accepted within two minutes of its iat; older or
    future ones refused; a replay of an accepted one refused (its jti is remembered)."""
    guard = web_guard(issuer, clock, legacy_logout_tokens=True, session_backend=backend)
    with TestClient(web_app(guard), base_url=BASE_URL) as client:
        login(client, issuer)
        now = int(clock())
        assert post(client, _legacy(issuer, iat=now - 600)).status_code == 400  # too old
        assert post(client, _legacy(issuer, iat=now + 600)).status_code == 400  # future
        assert client.get("/api/protected").status_code == 200
        token = _legacy(issuer, iat=now - 30)
        assert post(client, token).status_code == 200
        assert client.get("/api/protected").status_code == 401
        assert post(client, token).status_code == 400  # replayed
        login(client, issuer)
        clock.advance(100)
        assert post(client, token).status_code == 400  # still remembered, then too old
