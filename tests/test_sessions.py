"""Session storage: sealing, chunking, rotation, expiry, rolling limits, the memory backend."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fastapi_oidc_guard import OIDCGuard, SessionBackend, SessionData
from fastapi_oidc_guard.sessions.cookie import CookieSessionBackend
from fastapi_oidc_guard.sessions.cookies import CookieSettings, read_chunked, write_chunked
from fastapi_oidc_guard.sessions.memory import MemorySessionBackend
from fastapi_oidc_guard.sessions.sealing import Sealer
from fastapi_oidc_guard.testing import FakeClock, FakeIssuer, login

from .web import BASE_URL, SECRET, web_app, web_guard

pytestmark = pytest.mark.anyio


@pytest.fixture
def client(issuer: FakeIssuer, clock: FakeClock) -> Iterator[TestClient]:
    with TestClient(web_app(web_guard(issuer, clock)), base_url=BASE_URL) as test_client:
        yield test_client


@pytest.fixture
def big_client(issuer: FakeIssuer, clock: FakeClock) -> Iterator[TestClient]:
    """Cookies up to the most the reader joins (20 chunks): for the chunking tests."""
    guard = web_guard(issuer, clock, max_cookie_bytes=70_000)
    with TestClient(web_app(guard), base_url=BASE_URL) as test_client:
        yield test_client


def session_cookies(client: TestClient) -> dict[str, str]:
    return {k: v for k, v in client.cookies.items() if k.startswith("oidc_session") and
            "_txn_" not in k}  # fmt: skip


def replace_cookies(client: TestClient, cookies: dict[str, str]) -> None:
    for name in list(session_cookies(client)):
        client.cookies.delete(name)
    for name, value in cookies.items():
        client.cookies.set(name, value)


def authenticated(client: TestClient) -> bool:
    response = client.get("/api/protected")
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


# -- sealing ----------------------------------------------------------------------------------


def test_sealing_round_trip_and_purpose_binding(clock: FakeClock) -> None:
    sealer = Sealer([SECRET], clock=clock)
    sealed = sealer.seal({"a": 1}, purpose="session", expires_at=clock() + 60)
    assert sealer.open(sealed, purpose="session") == {"a": 1}
    assert sealer.open(sealed, purpose="txn") is None


def test_sealing_expiry_is_inside_the_ciphertext(clock: FakeClock) -> None:
    sealer = Sealer([SECRET], clock=clock)
    sealed = sealer.seal({"a": 1}, purpose="session", expires_at=clock() + 60)
    clock.advance(61)
    assert sealer.open(sealed, purpose="session") is None


def test_key_rotation_first_seals_all_open(clock: FakeClock) -> None:
    old = Sealer(["o" * 32], clock=clock).seal({"v": "old"}, purpose="p", expires_at=clock() + 60)
    rotated = Sealer(["n" * 32, "o" * 32], clock=clock)
    assert rotated.open(old, purpose="p") == {"v": "old"}
    new = rotated.seal({"v": "new"}, purpose="p", expires_at=clock() + 60)
    assert Sealer(["o" * 32], clock=clock).open(new, purpose="p") is None
    assert Sealer(["n" * 32], clock=clock).open(new, purpose="p") == {"v": "new"}


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda v: v[:-4], id="truncated"),
        pytest.param(lambda v: v[:20] + ("A" if v[20] != "A" else "B") + v[21:], id="bit-flip"),
        pytest.param(lambda v: "v2" + v[2:], id="wrong-version"),
        pytest.param(lambda v: v + "!!", id="bad-base64"),
        pytest.param(lambda v: "v1.", id="empty"),
        pytest.param(lambda v: "v1." + "A" * 70_000, id="huge"),
    ],
)
def test_tampered_sealed_values_do_not_open(clock: FakeClock, mangle: Any) -> None:
    sealer = Sealer([SECRET], clock=clock)
    sealed = sealer.seal({"a": 1}, purpose="s", expires_at=clock() + 60)
    assert sealer.open(mangle(sealed), purpose="s") is None


# -- cookies through the app ------------------------------------------------------------------


def test_cookie_sealed_with_retired_secret_is_still_read(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    old_guard = web_guard(issuer, clock, session_secret="o" * 40)
    with TestClient(web_app(old_guard), base_url=BASE_URL) as old:
        login(old, issuer)
        cookies = session_cookies(old)
    rotated = web_guard(issuer, clock, session_secret="n" * 40 + "," + "o" * 40)
    with TestClient(web_app(rotated), base_url=BASE_URL) as client:
        replace_cookies(client, cookies)
        assert authenticated(client)


def test_cookie_sealed_with_unknown_secret_is_401_and_cleared(
    issuer: FakeIssuer, clock: FakeClock, client: TestClient
) -> None:
    other = web_guard(issuer, clock, session_secret="x" * 40)
    with TestClient(web_app(other), base_url=BASE_URL) as foreign:
        login(foreign, issuer)
        cookies = session_cookies(foreign)
    replace_cookies(client, cookies)
    response = client.get("/api/protected")
    assert response.status_code == 401
    assert any("Max-Age=0" in c for c in response.headers.get_list("set-cookie"))


def test_expired_session_is_401(client: TestClient, issuer: FakeIssuer, clock: FakeClock) -> None:
    login(client, issuer)
    assert authenticated(client)
    clock.advance(86_400 + 1)  # inactivity limit
    assert not authenticated(client)


def test_rolling_session_extends_with_use_up_to_the_absolute_limit(
    client: TestClient, issuer: FakeIssuer, clock: FakeClock
) -> None:
    login(client, issuer)
    for _ in range(3):
        clock.advance(20 * 3600)  # under the 1-day inactivity limit each time
        assert authenticated(client)
    clock.advance(20 * 3600)  # 80 h after login: past the 3-day absolute limit
    assert not authenticated(client)


def test_touch_is_rate_limited(client: TestClient, issuer: FakeIssuer, clock: FakeClock) -> None:
    login(client, issuer)
    clock.advance(10)
    assert not client.get("/api/protected").headers.get_list("set-cookie")
    clock.advance(60)
    assert client.get("/api/protected").headers.get_list("set-cookie")


def test_oversized_session_is_chunked_and_each_cookie_under_4kb(
    issuer: FakeIssuer, big_client: TestClient
) -> None:
    issuer.login_as("big", bio="x" * 9000)
    callback = login(big_client, issuer)
    set_cookies = [c for c in callback.headers.get_list("set-cookie") if "_txn_" not in c]
    assert len(set_cookies) >= 3
    assert all(len(c) < 4096 for c in set_cookies)
    assert set(session_cookies(big_client)) >= {"oidc_session.0", "oidc_session.1"}
    assert big_client.get("/auth/profile").json()["bio"] == "x" * 9000


def test_shrinking_session_removes_stale_chunks(issuer: FakeIssuer, big_client: TestClient) -> None:
    issuer.login_as("big", bio="x" * 9000)
    login(big_client, issuer)
    issuer.login_as("small")
    callback = login(big_client, issuer)
    deleted = [c for c in callback.headers.get_list("set-cookie") if "Max-Age=0" in c]
    assert any(c.startswith("oidc_session.0=") for c in deleted)
    assert set(session_cookies(big_client)) == {"oidc_session"}
    assert big_client.get("/auth/profile").json()["sub"] == "small"


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda c: {k: v for k, v in c.items() if k != "oidc_session.1"}, id="missing"),
        pytest.param(lambda c: {**c, "oidc_session.0": c["oidc_session.1"],
                                "oidc_session.1": c["oidc_session.0"]}, id="reordered"),
        pytest.param(lambda c: {**c, "oidc_session.2": c["oidc_session.2"][:-10]}, id="truncated"),
        pytest.param(lambda c: {**c, "oidc_session.1": c["oidc_session.1"][::-1]}, id="tampered"),
    ],
)  # fmt: skip
def test_tampered_chunks_give_no_session(
    issuer: FakeIssuer, big_client: TestClient, mangle: Any
) -> None:
    issuer.login_as("big", bio="x" * 9000)
    login(big_client, issuer)
    replace_cookies(big_client, mangle(session_cookies(big_client)))
    assert not authenticated(big_client)


def test_chunks_mixed_from_two_sessions_give_no_session(
    issuer: FakeIssuer, clock: FakeClock, big_client: TestClient
) -> None:
    issuer.login_as("big", bio="x" * 9000)
    login(big_client, issuer)
    first = session_cookies(big_client)
    login(big_client, issuer)
    second = session_cookies(big_client)
    replace_cookies(big_client, {**first, "oidc_session.1": second["oidc_session.1"]})
    assert not authenticated(big_client)


def test_before_session_saved_hook_shapes_the_session(issuer: FakeIssuer, clock: FakeClock) -> None:
    def drop_bio(session: SessionData) -> SessionData:
        user = {k: v for k, v in session.user.items() if k != "bio"}
        return session.model_copy(update={"user": user, "id_token": None})

    guard = web_guard(issuer, clock, before_session_saved=drop_bio)
    with TestClient(web_app(guard), base_url=BASE_URL) as client:
        issuer.login_as("big", bio="x" * 9000)
        callback = login(client, issuer)
        assert len([c for c in callback.headers.get_list("set-cookie") if "_txn_" not in c]) == 1
        assert "bio" not in client.get("/auth/profile").json()


def test_cookie_options(issuer: FakeIssuer, clock: FakeClock) -> None:
    guard = web_guard(issuer, clock, cookie_name="app_sess", cookie_domain="127.0.0.1",
                      cookie_path="/", routes_prefix="/account")  # fmt: skip
    with TestClient(web_app(guard), base_url=BASE_URL) as client:
        callback = login(client, issuer, login_path="/account/login")
        cookie = next(c for c in callback.headers.get_list("set-cookie") if c.startswith("app_"))
        assert "Domain=127.0.0.1" in cookie
        assert authenticated(client)


# -- chunking unit ----------------------------------------------------------------------------


def test_chunk_round_trip() -> None:
    settings = CookieSettings(secure=False)
    value = "v" * 8000
    headers = write_chunked(value, settings, max_age=60, present=["oidc_session"])
    jar = {}
    for header in headers:
        name, _, rest = header.decode().partition("=")
        jar[name] = rest.split(";")[0]
    deleted = {k for k, v in jar.items() if v == ""}
    assert deleted == {"oidc_session"}
    assert read_chunked({k: v for k, v in jar.items() if v}, "oidc_session") == value


# -- the memory backend -----------------------------------------------------------------------


def memory_guard(issuer: FakeIssuer, clock: FakeClock) -> tuple[OIDCGuard, MemorySessionBackend]:
    backend = MemorySessionBackend(clock=clock)
    return web_guard(issuer, clock, session_backend=backend), backend


def test_stores_satisfy_the_protocol_and_the_cookie_is_not_a_store(clock: FakeClock) -> None:
    assert isinstance(MemorySessionBackend(clock=clock), SessionBackend)
    assert not isinstance(CookieSessionBackend(Sealer([SECRET], clock=clock)), SessionBackend)


def test_memory_backend_cookie_holds_only_an_id(issuer: FakeIssuer, clock: FakeClock) -> None:
    guard, backend = memory_guard(issuer, clock)
    with TestClient(web_app(guard), base_url=BASE_URL) as client:
        issuer.login_as("alice", bio="x" * 9000)
        login(client, issuer)
        assert set(session_cookies(client)) == {"oidc_session"}
        assert len(client.cookies["oidc_session"]) < 64  # s1.<key id>.<256-bit secret>
        assert authenticated(client)
        assert len(backend) == 1
        client.post("/auth/logout", follow_redirects=False)
        assert len(backend) == 0
        assert not authenticated(client)


def test_memory_backend_relogin_replaces_the_session(issuer: FakeIssuer, clock: FakeClock) -> None:
    guard, backend = memory_guard(issuer, clock)
    with TestClient(web_app(guard), base_url=BASE_URL) as client:
        login(client, issuer)
        first = client.cookies["oidc_session"]
        login(client, issuer)
        assert client.cookies["oidc_session"] != first
        assert len(backend) == 1


def test_memory_backend_unknown_id_is_401(issuer: FakeIssuer, clock: FakeClock) -> None:
    guard, _ = memory_guard(issuer, clock)
    with TestClient(web_app(guard), base_url=BASE_URL) as client:
        client.cookies.set("oidc_session", "guessed-session-id")
        assert not authenticated(client)
