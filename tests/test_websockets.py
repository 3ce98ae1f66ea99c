"""WebSocket routes with the library's dependencies (issue #12, part 1): bearer header, the
``bearer.<token>`` subprotocol, the opt-in query token, and the session cookie are accepted;
no or bad credentials, missing scopes, other origins and pages are refused with 1008 before
``accept``, never with an exception; overrides work as on HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import Depends, FastAPI, Request, WebSocket
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.websockets import WebSocketDisconnect

from fastapi_oidc_guard import (
    AccessToken,
    AuthState,
    OIDCGuard,
    User,
    access_token,
    auth_state,
    optional_user,
    require_page_user,
    require_scopes,
    require_step_up,
    require_user,
)
from fastapi_oidc_guard.testing import FakeClock, FakeIssuer, login
from fastapi_oidc_guard.websocket_auth import app_subprotocol

from .web import BASE_URL, web_guard

WS = "ws://127.0.0.1:8000"


def socket_app(guard: OIDCGuard) -> FastAPI:
    app = FastAPI()
    guard.install(app)
    token_for_api = access_token()

    @app.websocket("/ws/me")
    async def me(websocket: WebSocket, user: User = Depends(require_user)) -> None:
        await websocket.accept(subprotocol=app_subprotocol(websocket.headers))
        await websocket.send_json({"sub": user.sub})
        await websocket.close()

    @app.websocket("/ws/optional")
    async def optional(websocket: WebSocket, user: User | None = Depends(optional_user)) -> None:
        await websocket.accept()
        await websocket.send_json({"sub": user.sub if user else None})
        await websocket.close()

    @app.websocket("/ws/admin")
    async def admin(websocket: WebSocket, user: User = Depends(require_scopes("admin"))) -> None:
        await websocket.accept()
        await websocket.close()

    @app.websocket("/ws/page")
    async def page(websocket: WebSocket, user: User = Depends(require_page_user)) -> None:
        await websocket.accept()
        await websocket.close()

    @app.websocket("/ws/step-up")
    async def step_up(
        websocket: WebSocket, user: User = Depends(require_step_up(max_age=60))
    ) -> None:
        await websocket.accept()
        await websocket.close()

    @app.websocket("/ws/state")
    async def state(websocket: WebSocket, who: AuthState = Depends(auth_state)) -> None:
        await websocket.accept()
        await websocket.send_json({"authenticated": who.authenticated, "method": who.method})
        await websocket.close()

    @app.websocket("/ws/token")
    async def token(websocket: WebSocket, tok: AccessToken = Depends(token_for_api)) -> None:
        await websocket.accept()
        await websocket.send_json({"jwt": tok.is_jwt})
        await websocket.close()

    return app


@pytest.fixture
def guard(issuer: FakeIssuer, clock: FakeClock) -> OIDCGuard:
    return web_guard(issuer, clock)


@pytest.fixture
def client(guard: OIDCGuard) -> Iterator[TestClient]:
    with TestClient(socket_app(guard), base_url=BASE_URL) as test_client:
        yield test_client


def refused(client: TestClient, path: str, **kwargs: Any) -> tuple[int, str]:
    """The close code and reason of a socket refused before accept."""
    with (
        pytest.raises(WebSocketDisconnect) as caught,
        client.websocket_connect(WS + path, **kwargs),
    ):
        pass
    return caught.value.code, caught.value.reason


def test_bearer_header(client: TestClient, issuer: FakeIssuer) -> None:
    headers = {"Authorization": f"Bearer {issuer.mint(sub='api-client')}"}
    with client.websocket_connect(WS + "/ws/me", headers=headers) as socket:
        assert socket.receive_json() == {"sub": "api-client"}


def test_bearer_subprotocol_for_browsers(client: TestClient, issuer: FakeIssuer) -> None:
    token = issuer.mint(sub="browser-app")
    with client.websocket_connect(
        WS + "/ws/me", subprotocols=["chat", f"bearer.{token}"]
    ) as socket:
        assert socket.accepted_subprotocol == "chat"  # never the token
        assert socket.receive_json() == {"sub": "browser-app"}


def test_query_token_only_when_opted_in(issuer: FakeIssuer, clock: FakeClock) -> None:
    token = issuer.mint(sub="q")
    with TestClient(socket_app(web_guard(issuer, clock)), base_url=BASE_URL) as plain:
        assert refused(plain, f"/ws/me?access_token={token}") == (1008, "not_authenticated")
    opted = web_guard(issuer, clock, websocket_query_token=True)
    with (
        TestClient(socket_app(opted), base_url=BASE_URL) as client,
        client.websocket_connect(f"{WS}/ws/me?access_token={token}") as socket,
    ):
        assert socket.receive_json() == {"sub": "q"}


def test_session_cookie(client: TestClient, issuer: FakeIssuer) -> None:
    login(client, issuer)
    with client.websocket_connect(WS + "/ws/me", headers={"Origin": BASE_URL}) as socket:
        assert socket.receive_json() == {"sub": "user-1"}
    with client.websocket_connect(WS + "/ws/state") as socket:
        assert socket.receive_json() == {"authenticated": True, "method": "session"}


@pytest.mark.parametrize(
    ("path", "kwargs", "reason"),
    [
        ("/ws/me", {}, "not_authenticated"),
        ("/ws/me", {"headers": {"Authorization": "Bearer not-a-jwt"}}, "invalid_token"),
        ("/ws/me", {"subprotocols": ["bearer.x.y.z"]}, "invalid_token"),
        ("/ws/me", {"headers": {"Authorization": "Basic dTpw"}}, "invalid_token"),
        ("/ws/page", {}, "not_authenticated"),
        ("/ws/step-up", {}, "not_authenticated"),
    ],
    ids=["none", "bad-bearer", "bad-subprotocol", "basic", "page", "step-up"],
)
def test_refused_sockets_close_with_1008_before_accept(
    client: TestClient, path: str, kwargs: dict[str, Any], reason: str
) -> None:
    assert refused(client, path, **kwargs) == (1008, reason)


def test_missing_scope_and_old_login_refuse_the_socket(
    client: TestClient, issuer: FakeIssuer
) -> None:
    headers = {"Authorization": f"Bearer {issuer.mint(scope='read')}"}
    assert refused(client, "/ws/admin", headers=headers) == (1008, "insufficient_scope")
    assert refused(client, "/ws/step-up", headers=headers) == (
        1008, "insufficient_user_authentication",
    )  # fmt: skip


@pytest.mark.parametrize("origin", ["https://evil.example.test", "http://blog.127.0.0.1:8000"])
def test_cross_site_websocket_hijacking_is_refused(
    client: TestClient, issuer: FakeIssuer, origin: str
) -> None:
    """Attack: a page on another origin (a sibling subdomain: Lax cookies go along) opens a
    socket with the victim's session cookie."""
    login(client, issuer)
    assert refused(client, "/ws/me", headers={"Origin": origin}) == (1008, "cross_origin_request")


def test_overrides_work_on_sockets(guard: OIDCGuard) -> None:
    app = socket_app(guard)
    app.dependency_overrides[require_user] = lambda: User(sub="overridden")
    with (
        TestClient(app, base_url=BASE_URL) as client,
        client.websocket_connect(WS + "/ws/me") as socket,
    ):
        assert socket.receive_json() == {"sub": "overridden"}


def test_optional_user_without_credentials_is_anonymous(client: TestClient) -> None:
    with client.websocket_connect(WS + "/ws/optional") as socket:
        assert socket.receive_json() == {"sub": None}


def test_a_cookie_session_never_refreshes_on_a_socket(
    client: TestClient, issuer: FakeIssuer, clock: FakeClock
) -> None:
    """The rotated refresh token could not reach the browser (no response to set a cookie):
    refreshing there would lose it. The login's token is still handed out while fresh."""
    login(client, issuer)
    with client.websocket_connect(WS + "/ws/token") as socket:
        assert socket.receive_json() == {"jwt": True}
    clock.advance(3600)
    assert refused(client, "/ws/token") == (1008, "login_required")
    assert not any(g.revoked for g in issuer.oauth.used_refresh.values())


def test_a_store_backed_session_refreshes_on_a_socket(issuer: FakeIssuer, clock: FakeClock) -> None:
    guard = web_guard(issuer, clock, session_backend="memory")
    with TestClient(socket_app(guard), base_url=BASE_URL) as client:
        login(client, issuer)
        clock.advance(3600)
        with client.websocket_connect(WS + "/ws/token") as socket:
            assert socket.receive_json() == {"jwt": True}


HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    headers=st.dictionaries(
        st.sampled_from(["authorization", "sec-websocket-protocol", "origin", "cookie"]),
        HEADER_TEXT, max_size=4,
    ),
    path=st.sampled_from(["/ws/me", "/ws/optional", "/ws/admin", "/ws/state", "/ws/token"]),
)  # fmt: skip
def test_handshake_fuzz_never_crashes(
    client: TestClient, headers: dict[str, str], path: str
) -> None:
    offered = [p.strip() for p in headers.pop("sec-websocket-protocol", "").split(",")]
    codes = []
    try:
        with client.websocket_connect(
            WS + path, headers=headers, subprotocols=[p for p in offered if p]
        ) as socket:
            socket.receive_json()
    except WebSocketDisconnect as closed:
        codes.append(closed.code)
    assert set(codes) <= {1000, 1008}


# -- sockets that end when their credentials do ------------------------------------------------


def held_socket_app(guard: OIDCGuard) -> FastAPI:
    app = socket_app(guard)

    @app.websocket("/ws/live")
    async def live(websocket: WebSocket, user: User = Depends(require_user)) -> None:
        await websocket.accept(subprotocol=app_subprotocol(websocket.headers))
        async with guard.while_authenticated(websocket, every=0.01):
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                await websocket.send_json({"echo": message.get("text"), "sub": user.sub})

    return app


def closed_reason(socket: Any) -> tuple[int, str]:
    """Wait (bounded) for the server to close the socket; its code and reason."""
    for _ in range(500):
        try:
            socket.send_text("ping")
            socket.receive_json()
        except WebSocketDisconnect as closed:
            return closed.code, closed.reason
    raise AssertionError("the socket stayed open")


def test_a_socket_closes_when_its_bearer_token_expires(
    guard: OIDCGuard, issuer: FakeIssuer, clock: FakeClock
) -> None:
    token = issuer.mint(sub="live", exp=int(clock()) + 120)
    with (
        TestClient(held_socket_app(guard), base_url=BASE_URL) as client,
        client.websocket_connect(WS + "/ws/live", subprotocols=["chat", f"bearer.{token}"]) as ws,
    ):
        ws.send_text("hi")
        assert ws.receive_json() == {"echo": "hi", "sub": "live"}
        clock.advance(120 + guard.config.leeway)
        assert closed_reason(ws) == (1008, "token_expired")


@pytest.mark.parametrize("backend", ["cookie", "memory"])
def test_a_socket_closes_when_its_session_logs_out_in_another_tab(
    issuer: FakeIssuer, clock: FakeClock, backend: str
) -> None:
    guard = web_guard(issuer, clock, session_backend=backend)
    with TestClient(held_socket_app(guard), base_url=BASE_URL) as client:
        login(client, issuer)
        with client.websocket_connect(WS + "/ws/live") as ws:
            ws.send_text("hi")
            assert ws.receive_json()["sub"] == "user-1"
            assert client.post("/auth/logout", follow_redirects=False).status_code == 302
            assert closed_reason(ws) == (1008, "session_ended")


def test_a_socket_closes_at_the_session_s_absolute_lifetime(
    guard: OIDCGuard, issuer: FakeIssuer, clock: FakeClock
) -> None:
    with TestClient(held_socket_app(guard), base_url=BASE_URL) as client:
        login(client, issuer)
        with client.websocket_connect(WS + "/ws/live") as ws:
            ws.send_text("hi")
            ws.receive_json()
            clock.advance(guard.config.session_absolute)
            assert closed_reason(ws) == (1008, "session_expired")


def test_a_socket_on_b_closes_when_a_receives_the_back_channel_logout(
    issuer: FakeIssuer, clock: FakeClock, redis_server: Any
) -> None:
    """Two instances on one real Redis: the provider's back-channel logout reaches A; the
    socket held open on B closes."""
    from .test_backchannel import logout_token

    guard_a = web_guard(issuer, clock, session_backend="redis", redis_url=redis_server.url)
    guard_b = web_guard(issuer, clock, session_backend="redis", redis_url=redis_server.url)
    with (
        TestClient(held_socket_app(guard_a), base_url=BASE_URL) as a,
        TestClient(held_socket_app(guard_b), base_url=BASE_URL) as b,
    ):
        login(a, issuer)
        for name, value in a.cookies.items():
            b.cookies.set(name, value)
        with b.websocket_connect(WS + "/ws/live") as ws:
            ws.send_text("hi")
            assert ws.receive_json()["sub"] == "user-1"
            sid = next(iter(issuer.oauth.refresh.values())).sid
            answer = a.post("/auth/backchannel-logout",
                            data={"logout_token": logout_token(issuer, sid=sid)})  # fmt: skip
            assert answer.status_code == 200
            assert closed_reason(ws) == (1008, "session_ended")


# -- found by the adversarial review of issue #12 ------------------------------------------------


def test_step_up_on_a_socket_checks_the_credential_that_authenticated_it(
    guard: OIDCGuard, issuer: FakeIssuer, clock: FakeClock
) -> None:
    """Attack: a stolen token of a login two hours old, passed as a ``bearer.<token>``
    subprotocol together with the attacker's own fresh session cookie, must not pass
    ``require_step_up(max_age=60)`` on the strength of the cookie's ``auth_time``."""
    stolen = issuer.mint(sub="victim", auth_time=int(clock()) - 7200)
    with TestClient(socket_app(guard), base_url=BASE_URL) as client:
        login(client, issuer, user={"sub": "attacker"})
        code, reason = refused(
            client, "/ws/step-up", headers={"Origin": BASE_URL},
            subprotocols=["chat", f"bearer.{stolen}"],
        )  # fmt: skip
        assert (code, reason) == (1008, "insufficient_user_authentication")
        with client.websocket_connect(WS + "/ws/state", headers={"Origin": BASE_URL},
                                      subprotocols=["chat", f"bearer.{stolen}"]) as ws:  # fmt: skip
            assert ws.receive_json()["method"] == "bearer"


def test_step_up_accepts_a_fresh_token_passed_as_a_subprotocol(
    client: TestClient, issuer: FakeIssuer, clock: FakeClock
) -> None:
    fresh = issuer.mint(sub="u", auth_time=int(clock()))
    with client.websocket_connect(WS + "/ws/step-up", subprotocols=["chat", f"bearer.{fresh}"]):
        pass  # accepted (the token's auth_time, not an absent session's)


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_a_refused_refresh_on_a_socket_ends_the_stored_session(
    issuer: FakeIssuer, clock: FakeClock, backend: str, request: pytest.FixtureRequest
) -> None:
    """The provider revoked the grant; ``access_token()`` on a socket is refused with
    ``login_required``: the session ends in the store at once (a socket has no response to
    carry the end), so the same cookie is signed out on HTTP too."""
    extra: dict[str, Any] = {"session_backend": backend}
    if backend == "redis":
        extra["redis_url"] = request.getfixturevalue("redis_server").url
    guard = web_guard(issuer, clock, **extra)
    app = socket_app(guard)

    @app.get("/api/protected")
    async def protected(user: User = Depends(require_user)) -> dict[str, str]:
        return {"sub": user.sub}

    with TestClient(app, base_url=BASE_URL) as client:
        login(client, issuer)
        for grant in issuer.oauth.refresh.values():
            grant.revoked = True
        clock.advance(3600)
        assert refused(client, "/ws/token") == (1008, "login_required")
        assert client.get("/api/protected").status_code == 401


def test_a_check_that_fails_unexpectedly_closes_the_socket() -> None:
    """Fail closed: a check raising anything but an outage (a custom store's driver error, a
    resolver bug) closes the socket with 1011 instead of leaving it open and unchecked."""
    import asyncio

    from starlette.websockets import WebSocketState

    from fastapi_oidc_guard.socket_lifetime import close_when_ended

    class Socket:
        application_state = WebSocketState.CONNECTED
        url = type("url", (), {"path": "/ws/x"})
        closed: tuple[int, str] | None = None

        async def close(self, code: int = 1000, reason: str = "") -> None:
            self.closed = (code, reason)
            self.application_state = WebSocketState.DISCONNECTED

    async def check() -> str | None:
        raise ConnectionError("db connection reset")

    async def main() -> Socket:
        socket = Socket()
        async with close_when_ended(socket, check, every=0.01):  # type: ignore[arg-type]
            await asyncio.sleep(5)  # the route's receive loop: cancelled by the close
        return socket

    assert asyncio.run(main()).closed == (1011, "internal_error")


def test_an_active_socket_keeps_a_stored_session_alive(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    """A socket's use counts as activity for a store-backed session (written to the store,
    at most every touch interval): it is not closed by inactivity while the user is on it."""
    import threading

    from fastapi_oidc_guard.sessions.memory import MemorySessionBackend

    touched = threading.Event()

    class Recording(MemorySessionBackend):
        async def update(self, key: str, session: Any, *, expires_at: float) -> bool:
            live = await super().update(key, session, expires_at=expires_at)
            if live and session.last_active == clock():
                touched.set()
            return live

    guard = web_guard(issuer, clock, session_backend=Recording(clock=clock))
    inactivity = guard.config.session_inactivity
    with TestClient(held_socket_app(guard), base_url=BASE_URL) as client:
        login(client, issuer)
        with client.websocket_connect(WS + "/ws/live") as ws:
            for _ in range(6):  # 1.5 times the inactivity window, in quarter steps
                touched.clear()
                clock.advance(inactivity / 4)
                assert touched.wait(timeout=5), "the socket's use was not recorded"
                ws.send_text("x")
                assert ws.receive_json()["echo"] == "x"
        assert client.get("/auth/profile").status_code == 200


def test_a_cookie_socket_lives_no_longer_than_the_cookie_it_presented(
    guard: OIDCGuard, issuer: FakeIssuer, clock: FakeClock
) -> None:
    """Nothing can renew a cookie from a socket: the socket closes when the cookie it presented
    would expire by inactivity (``session_expired``), as an HTTP request with it would fail."""
    with TestClient(held_socket_app(guard), base_url=BASE_URL) as client:
        login(client, issuer)
        with client.websocket_connect(WS + "/ws/live") as ws:
            ws.send_text("hi")
            ws.receive_json()
            clock.advance(guard.config.session_inactivity)
            assert closed_reason(ws) == (1008, "session_expired")


def test_get_guard_gives_the_guard_s_public_verbs(guard: OIDCGuard, issuer: FakeIssuer) -> None:
    """``Depends(get_guard)`` keeps giving the installed guard (public API unchanged)."""
    from fastapi_oidc_guard import get_guard

    app = FastAPI()
    guard.install(app)

    @app.get("/whoami")
    async def whoami(request: Request, g: Any = Depends(get_guard)) -> dict[str, Any]:
        user = await g.authenticate(request)
        return {"sub": user.sub, "same": g is guard}

    with TestClient(app, base_url=BASE_URL) as client:
        answer = client.get("/whoami", headers={"Authorization": f"Bearer {issuer.mint()}"})
        assert answer.json() == {"sub": "user-1", "same": True}
