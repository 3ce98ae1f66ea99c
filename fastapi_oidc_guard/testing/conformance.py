"""A conformance kit for session backends: the tests every store must pass, ours and yours.

Subclass :class:`SessionBackendConformance` in a test module and give it a ``backend`` fixture
(built on the kit's ``clock``); add ``backend_twin`` (another client of the same store, as a
second process would have) when your store is shared::

    import pytest
    from fastapi_oidc_guard.testing.conformance import SessionBackendConformance

    class TestMyStore(SessionBackendConformance):
        @pytest.fixture
        def backend(self, clock):
            return MyStore(clock=clock)

The store-level tests check the contract of :class:`~fastapi_oidc_guard.SessionBackend` (only
login creates; an update of an ended session writes nothing; tombstones; indexes). The app-level
tests perform the attacks on a real app wired to your store: a logout while a request that
loaded the session is held (touch, refresh), a back-channel logout on another instance while a
request is held there, and a copied cookie replayed after logout. Requests are held with
``asyncio.Event``\\s at the point where they have loaded the session, never with sleeps.
:class:`SessionLayerConformance` holds the app-level part alone (the library runs it for the
stateless cookie sessions too). Tests use anyio's pytest plugin (installed with FastAPI).
"""

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
from ..models import AccessToken, SessionData, User
from ..sessions.base import SessionBackend
from .clock import FakeClock
from .issuer import FakeIssuer
from .login import alogin

__all__ = ["SessionBackendConformance", "SessionLayerConformance"]

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


def _session(clock: FakeClock, *, sub: str = "u1", sid: str | None = "sid-1") -> SessionData:
    now = clock()
    return SessionData(id=secrets.token_urlsafe(16), sub=sub, sid=sid, user={"sub": sub},
                       created_at=now, last_active=now)  # fmt: skip


def _key() -> str:
    return secrets.token_hex(32)  # what the manager passes: a keyed hash, hex


class SessionBackendConformance(SessionLayerConformance):
    """The store contract plus the app-level attacks; give it a ``backend`` fixture."""

    @pytest.fixture
    def backend(self, clock: FakeClock) -> SessionBackend:
        raise NotImplementedError("override the backend fixture with your store")

    @pytest.fixture
    def backend_twin(self, backend: SessionBackend) -> SessionBackend:
        """Another process's view of the same store (by default: the same object)."""
        return backend

    @pytest.fixture
    def instance_options(
        self, backend: SessionBackend, backend_twin: SessionBackend
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        return {"session_backend": backend}, {"session_backend": backend_twin}

    async def test_is_a_session_backend(self, backend: SessionBackend) -> None:
        assert isinstance(backend, SessionBackend) and backend.stateful

    async def test_create_load_update(self, backend: SessionBackend, clock: FakeClock) -> None:
        key, session = _key(), _session(clock)
        await backend.create(key, session, expires_at=clock() + 600)
        assert await backend.load(key) == session
        touched = session.model_copy(update={"last_active": clock() + 1})
        assert await backend.update(key, touched, expires_at=clock() + 600) is True
        assert await backend.load(key) == touched

    async def test_unknown_keys_are_nothing(self, backend: SessionBackend) -> None:
        for key in (_key(), "", "x" * 64, "../" * 30):
            assert await backend.load(key) is None

    async def test_update_never_creates(self, backend: SessionBackend, clock: FakeClock) -> None:
        key = _key()
        assert await backend.update(key, _session(clock), expires_at=clock() + 600) is False
        assert await backend.load(key) is None

    async def test_update_after_delete_writes_nothing_until_the_tombstone_ends(
        self, backend: SessionBackend, clock: FakeClock
    ) -> None:
        key, session = _key(), _session(clock)
        await backend.create(key, session, expires_at=clock() + 600)
        await backend.delete(key, until=clock() + 3600)
        for advance in (0, 599, 1000):
            clock.advance(advance)
            assert await backend.update(key, session, expires_at=clock() + 600) is False
            assert await backend.load(key) is None

    @pytest.mark.parametrize("by", ["sid", "sub", "both"])
    async def test_update_after_delete_by_writes_nothing(
        self, backend: SessionBackend, clock: FakeClock, by: str
    ) -> None:
        key, session = _key(), _session(clock, sub="carol", sid="sid-carol")
        await backend.create(key, session, expires_at=clock() + 600)
        sid = "sid-carol" if by in ("sid", "both") else None
        sub = "carol" if by in ("sub", "both") else None
        assert await backend.delete_by(sid=sid, sub=sub, until=clock() + 3600) == 1
        assert await backend.update(key, session, expires_at=clock() + 600) is False
        assert await backend.load(key) is None

    async def test_delete_by_sid_sub_and_both(
        self, backend: SessionBackend, clock: FakeClock
    ) -> None:
        keys = {}
        for sid, sub in [("s1", "dave"), ("s2", "dave"), ("s3", "erin"), ("s4", "erin")]:
            keys[sid] = _key()
            await backend.create(keys[sid], _session(clock, sub=sub, sid=sid),
                                 expires_at=clock() + 600)  # fmt: skip
        until = clock() + 3600
        assert await backend.delete_by(sid="s1", sub="erin", until=until) == 0  # intersect
        assert await backend.delete_by(sid="s1", until=until) == 1
        assert await backend.load(keys["s2"]) is not None
        assert await backend.delete_by(sub="dave", until=until) == 1
        assert await backend.delete_by(sid="s3", sub="erin", until=until) == 1
        assert await backend.load(keys["s4"]) is not None
        assert await backend.delete_by(sid="nope", until=until) == 0

    async def test_indexes_follow_updates(self, backend: SessionBackend, clock: FakeClock) -> None:
        key, session = _key(), _session(clock, sub="frank", sid="sid-f")
        await backend.create(key, session, expires_at=clock() + 600)
        touched = session.model_copy(update={"last_active": clock()})
        assert await backend.update(key, touched, expires_at=clock() + 900)
        assert await backend.delete_by(sid="sid-f", until=clock() + 3600) == 1

    async def test_sessions_expire(self, backend: SessionBackend, clock: FakeClock) -> None:
        key, session = _key(), _session(clock)
        await backend.create(key, session, expires_at=clock() + 60)
        clock.advance(61)
        assert await backend.load(key) is None
        assert await backend.update(key, session, expires_at=clock() + 600) is False

    async def test_interleaved_updates_and_a_delete_end_deleted(
        self, backend: SessionBackend, clock: FakeClock
    ) -> None:
        for _ in range(20):
            key, session = _key(), _session(clock)
            await backend.create(key, session, expires_at=clock() + 600)
            writes = [backend.update(key, session, expires_at=clock() + 600) for _ in range(5)]
            await asyncio.gather(*writes[:2], backend.delete(key, until=clock() + 600), *writes[2:])
            assert await backend.load(key) is None

    async def test_twin_sees_the_same_store(
        self, backend: SessionBackend, backend_twin: SessionBackend, clock: FakeClock
    ) -> None:
        key, session = _key(), _session(clock)
        await backend.create(key, session, expires_at=clock() + 600)
        assert await backend_twin.load(key) == session
        await backend_twin.delete(key, until=clock() + 600)
        assert await backend.update(key, session, expires_at=clock() + 600) is False
