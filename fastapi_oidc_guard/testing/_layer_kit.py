"""The app-level half of the conformance kit: the attacks on a whole app wired to a session
backend (see :mod:`fastapi_oidc_guard.testing.conformance`, which re-exports it)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, NamedTuple

import httpx
import pytest
from fastapi import Depends, FastAPI

from ..dependencies import access_token, require_user
from ..guard import OIDCGuard
from ..models import AccessToken, User
from .clock import FakeClock
from .issuer import FakeIssuer
from .login import alogin

__all__ = ["SessionLayerConformance"]

BASE_URL = "http://127.0.0.1:8000"
_SECRET = "conformance-kit-session-secret-0123456789"
_EVENT = "http://schemas.openid.net/event/backchannel-logout"


class _Gate:
    """Holds the ``/held`` route after it has loaded the session, until released."""

    def __init__(self) -> None:
        self.loaded, self.release = asyncio.Event(), asyncio.Event()


class _HeldRefresh(httpx.AsyncBaseTransport):
    """The issuer's transport, holding token requests of one grant type (refresh by default)
    until ``release`` is set."""

    def __init__(self, inner: httpx.AsyncBaseTransport, grant: str = "refresh_token") -> None:
        self.inner, self.arrived, self.release = inner, asyncio.Event(), asyncio.Event()
        self.holding, self._marker = False, f"grant_type={grant}".encode()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.holding and self._marker in request.content:
            self.arrived.set()
            await self.release.wait()
        return await self.inner.handle_async_request(request)


def _app(guard: OIDCGuard, gate: _Gate) -> FastAPI:
    app = FastAPI()
    session_token = access_token()
    guard.install(app)

    @app.get("/api/protected")
    async def protected(user: User = Depends(require_user)) -> dict[str, str]:
        return {"userId": user.sub}

    @app.get("/held")
    async def held(user: User = Depends(require_user)) -> dict[str, str]:
        gate.loaded.set()
        await gate.release.wait()
        return {"userId": user.sub}

    @app.get("/api/token")
    async def token(tok: AccessToken = Depends(session_token)) -> dict[str, str]:
        return {"token": tok.token}

    return app


def _session_cookies(client: httpx.AsyncClient) -> dict[str, str]:
    return {k: v for k, v in client.cookies.items() if "_txn_" not in k}


class _Instance(NamedTuple):
    client: httpx.AsyncClient
    gate: _Gate
    app: FastAPI


async def _replay(app: FastAPI, path: str, cookies: dict[str, str]) -> int:
    """The status of ``GET path`` sent with exactly ``cookies`` (a copied cookie jar)."""
    header = "; ".join(f"{name}={value}" for name, value in cookies.items())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as other:
        return (await other.get(path, headers={"Cookie": header})).status_code


def _sets_a_session(response: httpx.Response) -> bool:
    """True when the response gives the browser a (non-empty) session cookie."""
    for header in response.headers.get_list("set-cookie"):
        name_value = header.split(";", 1)[0]
        name, _, value = name_value.partition("=")
        if "_txn_" not in name and value and "Max-Age=0" not in header:
            return True
    return False


class SessionLayerConformance:
    """The attacks on a whole app; subclasses say which sessions instances ``a`` and ``b`` use
    by overriding :meth:`instance_options` (the keyword arguments of ``OIDCGuard``)."""

    pytestmark = pytest.mark.anyio
    #: False for sessions whose revocations stay in one process (cookie sessions without
    #: Redis): the cross-instance test is skipped, as docs/sessions.md says.
    shared_across_instances = True

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock(1_800_000_000.0)

    @pytest.fixture
    def issuer(self, clock: FakeClock) -> FakeIssuer:
        return FakeIssuer(clock=clock)

    @pytest.fixture
    def instance_options(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """``OIDCGuard`` settings of instance a and instance b."""
        return {}, {}

    @asynccontextmanager
    async def _instance(
        self, issuer: FakeIssuer, clock: FakeClock, options: dict[str, Any], **extra: Any
    ) -> AsyncIterator[_Instance]:
        settings: dict[str, Any] = {
            "issuer": issuer.issuer, "audience": issuer.audience, "client_id": issuer.client_id,
            "client_secret": issuer.client_secret, "base_url": BASE_URL,
            "session_secret": _SECRET, "transport": issuer.transport, "clock": clock,
        }  # fmt: skip
        settings.update(options)
        settings.update(extra)
        guard, gate = OIDCGuard(**settings), _Gate()
        app = _app(guard, gate)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            try:
                yield _Instance(client, gate, app)
            finally:
                await guard.aclose()

    async def test_logout_while_a_touch_is_in_flight_stays_logged_out(
        self, issuer: FakeIssuer, clock: FakeClock, instance_options: Any
    ) -> None:
        async with self._instance(issuer, clock, instance_options[0]) as (client, gate, app):
            await alogin(client, issuer)
            copied = _session_cookies(client)
            clock.advance(3600)  # the held request is due a rolling touch
            held = asyncio.ensure_future(client.get("/held"))
            await gate.loaded.wait()
            assert (await client.post("/auth/logout")).status_code == 302
            gate.release.set()
            late = await held
            assert late.status_code == 200  # it was signed in when it started
            assert not _sets_a_session(late), "a request in flight brought the session back"
            assert await _replay(app, "/api/protected", copied) == 401

    async def test_logout_while_a_refresh_is_in_flight_stays_logged_out(
        self, issuer: FakeIssuer, clock: FakeClock, instance_options: Any
    ) -> None:
        held = _HeldRefresh(issuer.transport)
        options = {**instance_options[0], "transport": held}
        async with self._instance(issuer, clock, options) as (client, _, app):
            await alogin(client, issuer)
            copied = _session_cookies(client)
            clock.advance(3600)  # the access token expired: /api/token refreshes
            held.holding = True
            request = asyncio.ensure_future(client.get("/api/token"))
            await held.arrived.wait()
            assert (await client.post("/auth/logout")).status_code == 302
            held.release.set()
            late = await request
            assert late.status_code == 401, "a token was handed out for an ended session"
            assert not _sets_a_session(late)
            assert await _replay(app, "/api/protected", copied) == 401

    @pytest.mark.parametrize("by", ["sid", "sub"])
    async def test_backchannel_logout_during_a_login_s_code_exchange_wins(
        self, issuer: FakeIssuer, clock: FakeClock, instance_options: Any, by: str
    ) -> None:
        """The provider logs the user out (back-channel) while this app is still exchanging
        the login's code, and time passes meanwhile: the login must not leave a session."""
        held = _HeldRefresh(issuer.transport, grant="authorization_code")
        options = {**instance_options[0], "transport": held}
        async with self._instance(issuer, clock, options) as (client, _, app):
            start = await client.get("/auth/login", follow_redirects=False)
            callback = issuer.authorize(start.headers["location"])
            grant = next(iter(issuer.oauth.codes.values()))
            held.holding = True
            finishing = asyncio.ensure_future(client.get(callback, follow_redirects=False))
            await held.arrived.wait()
            clock.advance(5)
            now = int(clock())
            claims: dict[str, Any] = {
                "iss": issuer.issuer, "aud": issuer.client_id, "iat": now, "exp": now + 120,
                "jti": secrets.token_hex(8), "events": {_EVENT: {}},
            }  # fmt: skip
            claims.update({"sid": grant.sid} if by == "sid" else {"sub": grant.user["sub"]})
            token = issuer.sign(claims, header={"typ": "logout+jwt"})
            answer = await client.post("/auth/backchannel-logout", data={"logout_token": token})
            assert answer.status_code == 200
            held.release.set()
            await finishing
            assert (await client.get("/api/protected")).status_code == 401
            assert await _replay(app, "/api/protected", _session_cookies(client)) == 401

    async def test_backchannel_logout_on_a_while_b_holds_a_request(
        self, issuer: FakeIssuer, clock: FakeClock, instance_options: Any
    ) -> None:
        if not self.shared_across_instances:
            pytest.skip("revocations of these sessions stay in one process (documented)")
        options_a, options_b = instance_options
        async with (
            self._instance(issuer, clock, options_a) as (a, _, app_a),
            self._instance(issuer, clock, options_b) as (b, gate_b, app_b),
        ):
            await alogin(a, issuer)
            copied = _session_cookies(a)
            clock.advance(3600)  # B's held request is due a touch
            for name, value in copied.items():
                b.cookies.set(name, value)
            held = asyncio.ensure_future(b.get("/held"))
            await gate_b.loaded.wait()
            sid = next(iter(issuer.oauth.refresh.values())).sid
            now = int(clock())
            token = issuer.sign(
                {"iss": issuer.issuer, "aud": issuer.client_id, "iat": now, "exp": now + 120,
                 "jti": secrets.token_hex(8), "events": {_EVENT: {}}, "sid": sid},
                header={"typ": "logout+jwt"},
            )  # fmt: skip
            answer = await a.post("/auth/backchannel-logout", data={"logout_token": token})
            assert answer.status_code == 200
            gate_b.release.set()
            late = await held
            assert not _sets_a_session(late), "instance b brought the session back"
            for app in (app_a, app_b):
                assert await _replay(app, "/api/protected", copied) == 401

    async def test_a_request_in_flight_during_a_new_login_keeps_the_new_session(
        self, issuer: FakeIssuer, clock: FakeClock, instance_options: Any
    ) -> None:
        """A request that loaded the old session ends after the user logged in again in
        another tab: its failed update must not delete the new cookie (same name)."""
        async with self._instance(issuer, clock, instance_options[0]) as (client, gate, app):
            await alogin(client, issuer)
            clock.advance(3600)  # the held request is due a touch
            held = asyncio.ensure_future(client.get("/held"))
            await gate.loaded.wait()
            await alogin(client, issuer)  # replaces (and ends) the held request's session
            fresh = _session_cookies(client)
            gate.release.set()
            late = await held
            assert not late.headers.get_list("set-cookie"), "a stale request touched the jar"
            assert await _replay(app, "/api/protected", fresh) == 200

    async def test_copied_cookie_is_refused_after_logout(
        self, issuer: FakeIssuer, clock: FakeClock, instance_options: Any
    ) -> None:
        async with self._instance(issuer, clock, instance_options[0]) as (client, _, app):
            await alogin(client, issuer)
            copied = _session_cookies(client)
            assert (await client.get("/api/protected")).status_code == 200
            assert (await client.post("/auth/logout")).status_code == 302
            assert await _replay(app, "/api/protected", copied) == 401
            clock.advance(3600)
            assert await _replay(app, "/api/protected", copied) == 401
