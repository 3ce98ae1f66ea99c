"""The Redis session backend against a real ``redis-server`` (no fakes).

The test server runs with SCAN and KEYS disabled (``rename-command``), so every test also proves
that the backend never scans the keyspace.
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis
import redis.asyncio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.testclient import TestClient

from fastapi_oidc_guard import SessionBackend, SessionData
from fastapi_oidc_guard.errors import ConfigurationError, TemporarilyUnavailable
from fastapi_oidc_guard.models import TokenSet
from fastapi_oidc_guard.pkce import random_token
from fastapi_oidc_guard.sessions.redis import RedisSessionBackend
from fastapi_oidc_guard.sessions.sealing import Sealer
from fastapi_oidc_guard.testing import FakeClock, FakeIssuer, login

from .redis_server import RedisServer
from .web import BASE_URL, SECRET, web_app, web_guard

pytestmark = pytest.mark.anyio

NO_SCAN = ("--rename-command", "SCAN", "", "--rename-command", "KEYS", "")
TIMEOUT = 0.5  # the backend's timeout in these tests
PREFIX = "oidc:"


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain synchronous client to look at what the backend stored."""
    client = redis.Redis.from_url(redis_server.url, decode_responses=True, socket_timeout=2)
    yield client
    client.close()


def make_backend(server: RedisServer, clock: FakeClock, **kwargs: Any) -> RedisSessionBackend:
    options: dict[str, Any] = {"sealer": Sealer([SECRET], clock=clock), "url": server.url,
                               "clock": clock, "timeout": TIMEOUT}  # fmt: skip
    options.update(kwargs)
    return RedisSessionBackend(**options)


@pytest.fixture
async def backend(
    redis_server: RedisServer, clock: FakeClock
) -> AsyncIterator[RedisSessionBackend]:
    store = make_backend(redis_server, clock)
    yield store
    await store.aclose()


def make_session(clock: FakeClock, *, sub: str = "u1", sid: str | None = "sid-1") -> SessionData:
    token = TokenSet(access_token="access-SECRET-" + sub, expires_at=clock() + 3600)
    return SessionData(
        id=random_token(), sub=sub, sid=sid,
        user={"sub": sub, "email": f"{sub}@mail.example.test", "name": "Ada"},
        id_token="id-token-SECRET", refresh_token="refresh-SECRET", tokens={"|": token},
        created_at=clock(), last_active=clock(),
    )  # fmt: skip


def index(kind: str, value: str, *, binding: str = "") -> str:
    """The app-bound name of a sid/sub index set (not the raw value)."""
    return (
        PREFIX + f"{kind}:" + Sealer([SECRET], clock=time.time, binding=binding).name(kind, value)
    )


def state(raw: redis.Redis, key: str) -> dict[str, Any]:
    """What Redis holds around one cookie key (checked without KEYS/SCAN)."""
    return {
        "session": raw.exists(PREFIX + "s:" + key),
        "sid_sets": {n: sorted(raw.smembers(index("sid", n))) for n in ("sid-1", "sid-2")},
        "sub_sets": {n: sorted(raw.smembers(index("sub", n))) for n in ("u1", "u2")},
    }


# -- the protocol -----------------------------------------------------------------------------


async def test_is_a_stateful_session_backend(backend: RedisSessionBackend) -> None:
    assert isinstance(backend, SessionBackend)
    assert backend.stateful is True


def test_exactly_one_of_client_or_url(redis_server: RedisServer, clock: FakeClock) -> None:
    sealer = Sealer([SECRET], clock=clock)
    with pytest.raises(ConfigurationError):
        RedisSessionBackend(sealer=sealer)
    with pytest.raises(ConfigurationError):
        RedisSessionBackend(sealer=sealer, url=redis_server.url, client=redis.asyncio.Redis())


def test_missing_redis_py_gives_the_install_hint() -> None:
    code = "import sys; sys.modules['redis'] = None; import fastapi_oidc_guard.sessions.redis"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert "pip install oidc-guard-fastapi[redis]" in result.stderr


async def create(backend: RedisSessionBackend, session: SessionData, expires_at: float) -> str:
    """A login's write: a fresh key (what the manager derives from a new cookie secret)."""
    key = secrets.token_hex(32)
    await backend.create(key, session, expires_at=expires_at)
    return key


async def test_create_load_delete_leaves_a_tombstone(
    backend: RedisSessionBackend, raw: redis.Redis, clock: FakeClock
) -> None:
    session = make_session(clock)
    key = await create(backend, session, clock() + 600)
    assert await backend.load(key) == session
    assert set(raw.hgetall(PREFIX + "s:" + key)) == {"d", "e", "sid", "sub"}
    await backend.delete(key, until=clock() + 3000)
    assert await backend.load(key) is None
    assert raw.hgetall(PREFIX + "s:" + key) == {"ended": "1"}  # the tombstone
    assert 2_990_000 < raw.pttl(PREFIX + "s:" + key) <= 3_000_000
    assert not raw.exists(index("sid", "sid-1"), index("sub", "u1"))  # index entries gone
    assert await backend.update(key, session, expires_at=clock() + 600) is False
    with pytest.raises(ValueError, match="already used"):
        await backend.create(key, session, expires_at=clock() + 600)  # never over a tombstone
    await backend.delete(key, until=clock() + 60)  # deleting twice is a no-op


async def test_with_a_client_the_caller_owns(
    redis_server: RedisServer, raw: redis.Redis, clock: FakeClock
) -> None:
    client = redis.asyncio.Redis.from_url(redis_server.url, decode_responses=True)
    store = RedisSessionBackend(sealer=Sealer([SECRET], clock=clock), client=client, clock=clock,
                                prefix="app1:")  # fmt: skip
    session = make_session(clock)
    key = await create(store, session, clock() + 60)
    assert await store.load(key) == session
    assert raw.exists("app1:s:" + key)
    await store.aclose()  # does not close a client it was given
    assert await client.ping()
    await client.aclose()


async def test_ttl_follows_expires_at(
    backend: RedisSessionBackend, raw: redis.Redis, clock: FakeClock
) -> None:
    session = make_session(clock)
    key = await create(backend, session, clock() + 99.2)  # rounded up to 100 s
    for name in (PREFIX + "s:" + key, index("sid", "sid-1"), index("sub", "u1")):
        assert 99_000 < raw.pttl(name) <= 100_000
    assert await backend.update(key, session, expires_at=clock() + 500)
    assert 499_000 < raw.pttl(PREFIX + "s:" + key) <= 500_000


async def test_index_ttl_is_never_lowered_below_a_members(
    backend: RedisSessionBackend, raw: redis.Redis, clock: FakeClock
) -> None:
    await create(backend, make_session(clock), clock() + 1000)
    await create(backend, make_session(clock), clock() + 100)  # same sub and sid
    assert raw.pttl(index("sub", "u1")) > 900_000
    assert raw.pttl(index("sid", "sid-1")) > 900_000
    await create(backend, make_session(clock), clock() + 5000)
    assert raw.pttl(index("sub", "u1")) > 4_900_000


async def test_data_at_rest_is_sealed(
    backend: RedisSessionBackend, raw: redis.Redis, clock: FakeClock
) -> None:
    key = await create(backend, make_session(clock), clock() + 600)
    stored = raw.hget(PREFIX + "s:" + key, "d")
    assert stored is not None
    assert stored.startswith("v1.")
    for secret in ("mail.example.test", "SECRET", "Ada"):
        assert secret not in stored


async def test_concurrent_updates_and_a_logout_never_resurrect(
    backend: RedisSessionBackend, raw: redis.Redis, clock: FakeClock
) -> None:
    """A page firing 20 requests when a touch is due, while another tab logs out."""
    session = make_session(clock)
    key = await create(backend, session, clock() + 600)
    touched = session.model_copy(update={"last_active": clock() + 60})
    writes = [backend.update(key, touched, expires_at=clock() + 900) for _ in range(20)]
    await asyncio.gather(*writes[:10], backend.delete(key, until=clock() + 600), *writes[10:])
    assert await backend.load(key) is None
    assert raw.hgetall(PREFIX + "s:" + key) == {"ended": "1"}
    assert raw.smembers(index("sub", "u1")) == set()


async def test_delete_by_cleans_the_other_index_too(
    backend: RedisSessionBackend, raw: redis.Redis, clock: FakeClock
) -> None:
    c = await create(backend, make_session(clock, sub="u2", sid="sid-1"), clock() + 600)
    d = await create(backend, make_session(clock, sub="u2", sid=None), clock() + 600)
    assert await backend.delete_by(sid="sid-1", until=clock() + 600) == 1
    assert state(raw, c)["sub_sets"]["u2"] == [d]
    assert await backend.delete_by(until=clock() + 600) == 0
    assert await backend.delete_by(sid="nope", sub="u2", until=clock() + 600) == 0


async def test_expired_session_is_gone(
    backend: RedisSessionBackend, raw: redis.Redis, clock: FakeClock
) -> None:
    session = make_session(clock)
    key = await create(backend, session, clock() + 1)
    assert await backend.load(key) == session
    clock.advance(1)  # expiry inside the sealed value: gone even before Redis drops the key
    assert await backend.load(key) is None
    assert await backend.update(key, session, expires_at=clock() + 600) is False
    names = [PREFIX + "s:" + key, index("sid", "sid-1"), index("sub", "u1")]
    deadline = time.monotonic() + 5
    while raw.exists(*names) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # Redis drops the keys itself after their 1 s TTL
    assert raw.exists(*names) == 0


@pytest.mark.parametrize(
    "value", ["", "x", "../../etc", "a" * 63, "a" * 65, "A" * 64, "v1.abc", "ä" * 64, "a" * 10_000]
)
async def test_foreign_keys_are_none_without_a_round_trip(
    backend: RedisSessionBackend, value: str
) -> None:
    assert await backend.load(value) is None
    assert (
        await backend.update(
            value,
            SessionData(id="i", sub="s", user={}, created_at=0, last_active=0),
            expires_at=1e10,
        )
        is False
    )


async def test_unsealable_data_is_none(
    backend: RedisSessionBackend, raw: redis.Redis, clock: FakeClock, redis_server: RedisServer
) -> None:
    key = secrets.token_hex(32)
    for garbage in ("garbage", "v1.AAAA", "\xff"):
        raw.hset(PREFIX + "s:" + key, "d", garbage)
        assert await backend.load(key) is None
    foreign = make_backend(redis_server, clock, sealer=Sealer(["x" * 40], clock=clock))
    other_key = await create(foreign, make_session(clock), clock() + 60)
    await foreign.aclose()
    assert await backend.load(other_key) is None


async def test_stale_index_members_are_pruned(
    backend: RedisSessionBackend, raw: redis.Redis, clock: FakeClock
) -> None:
    for _ in range(70):
        raw.sadd(index("sub", "u1"), secrets.token_hex(32))  # sessions that expired long ago
    key = await create(backend, make_session(clock), clock() + 60)
    assert raw.smembers(index("sub", "u1")) == {key}


# -- outages ----------------------------------------------------------------------------------


async def test_stopped_redis_is_temporarily_unavailable_not_a_logout(
    backend: RedisSessionBackend, redis_server: RedisServer, clock: FakeClock
) -> None:
    session = make_session(clock)
    key = await create(backend, session, clock() + 600)
    redis_server.stop()
    started = time.monotonic()
    with pytest.raises(TemporarilyUnavailable) as caught:
        await backend.load(key)
    assert caught.value.__cause__ is not None
    with pytest.raises(TemporarilyUnavailable):
        await backend.update(key, session, expires_at=clock() + 600)
    with pytest.raises(TemporarilyUnavailable):
        await backend.delete(key, until=clock() + 600)
    with pytest.raises(TemporarilyUnavailable):
        await backend.delete_by(sub="u1", until=clock() + 600)
    with pytest.raises(TemporarilyUnavailable):
        async with backend.lock("refresh"):
            pass
    assert time.monotonic() - started < 5 * TIMEOUT + 2
    redis_server.start()  # no persistence: the store is empty, but it works again
    assert await backend.load(key) is None
    key = await create(backend, session, clock() + 600)
    assert await backend.load(key) == session


async def test_paused_redis_times_out_then_sessions_come_back(
    backend: RedisSessionBackend, redis_server: RedisServer, clock: FakeClock
) -> None:
    session = make_session(clock)
    key = await create(backend, session, clock() + 600)
    redis_server.pause()
    try:
        for operation in (
            backend.load(key),
            backend.update(key, session, expires_at=clock() + 600),
            backend.delete_by(sid="sid-1", until=clock() + 600),
        ):
            started = time.monotonic()
            with pytest.raises(TemporarilyUnavailable):
                await operation
            assert time.monotonic() - started < TIMEOUT + 1
    finally:
        redis_server.resume()
    assert await backend.load(key) == session  # the existing session is valid again


async def test_timeout_bounds_calls_even_with_a_client_without_socket_timeouts(
    redis_server: RedisServer, clock: FakeClock
) -> None:
    client = redis.asyncio.Redis.from_url(redis_server.url, socket_timeout=None)
    store = RedisSessionBackend(sealer=Sealer([SECRET], clock=clock), client=client, clock=clock,
                                timeout=0.3)  # fmt: skip
    first, second = make_session(clock), make_session(clock, sub="u2")
    first_key = await create(store, first, clock() + 600)
    redis_server.pause()
    try:
        for operation in (create(store, second, clock() + 600), store.load(first_key)):
            started = time.monotonic()
            with pytest.raises(TemporarilyUnavailable):
                await operation  # cancelled mid-transaction / mid-read by the deadline
            assert time.monotonic() - started < 1.5
    finally:
        redis_server.resume()
    # Connections interrupted mid-command were not reused half-read: answers still line up.
    second_key = await create(store, second, clock() + 600)
    for _ in range(5):
        assert await store.load(first_key) == first
        assert await store.load(second_key) == second
    await client.aclose()


# -- the lock ---------------------------------------------------------------------------------


async def test_lock_is_mutually_exclusive_and_released(
    backend: RedisSessionBackend, raw: redis.Redis
) -> None:
    inside: list[int] = []
    order: list[str] = []

    async def holder(name: str) -> None:
        async with backend.lock("refresh:s1", ttl=5, wait=5):
            inside.append(1)
            assert len(inside) == 1, "two holders at once"
            order.append(name + ">")
            await asyncio.sleep(0.2)
            order.append("<" + name)
            inside.pop()

    await asyncio.gather(holder("a"), holder("b"), holder("c"))
    assert len(order) == 6
    assert all(order[i][:-1] == order[i + 1][1:] for i in range(0, 6, 2))  # never interleaved
    assert not raw.exists(PREFIX + "lock:refresh:s1")  # released
    async with backend.lock("refresh:s1", wait=0):  # and free again at once
        assert raw.pttl(PREFIX + "lock:refresh:s1") > 9_000


async def test_lock_wait_times_out(backend: RedisSessionBackend) -> None:
    async with backend.lock("x", ttl=10):
        started = time.monotonic()
        with pytest.raises(TemporarilyUnavailable):
            async with backend.lock("x", wait=0.3):
                pass
        assert 0.3 <= time.monotonic() - started < 1.5


async def test_lock_expires_and_release_never_frees_another_holders_lock(
    backend: RedisSessionBackend, raw: redis.Redis
) -> None:
    async with backend.lock("y", ttl=0.3):
        async with backend.lock("y", ttl=10, wait=3):  # acquired once the first expired
            token = raw.get(PREFIX + "lock:y")
        assert not raw.exists(PREFIX + "lock:y")
        raw.set(PREFIX + "lock:y", "someone-else", px=10_000)
    assert token is not None
    assert raw.get(PREFIX + "lock:y") == "someone-else"  # the first holder's release left it


async def test_lock_release_on_error_in_the_body(
    backend: RedisSessionBackend, raw: redis.Redis
) -> None:
    with pytest.raises(ZeroDivisionError):
        async with backend.lock("z"):
            _ = 1 / 0
    assert not raw.exists(PREFIX + "lock:z")


# -- in an app --------------------------------------------------------------------------------


def redis_app(
    server: RedisServer, issuer: FakeIssuer, clock: FakeClock
) -> tuple[FastAPI, RedisSessionBackend]:
    backend = make_backend(server, clock)
    app = web_app(web_guard(issuer, clock, session_backend=backend))
    guard_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with guard_lifespan(app):
            yield
        await backend.aclose()  # in the loop that used it

    app.router.lifespan_context = lifespan

    @app.get("/api/change-during-outage")
    async def change_during_outage(request: Request) -> Response:
        """Loads the session, then Redis becomes unreachable before the change is saved."""
        guard = request.app.state.oidc_guard
        session = await guard.session(request)
        assert session is not None
        server.pause()
        guard.sessions.set(request.scope, session.model_copy(update={"last_active": clock()}))
        return JSONResponse({"changed": True})

    return app, backend


@pytest.fixture
def app_client(
    redis_server: RedisServer, issuer: FakeIssuer, clock: FakeClock
) -> Iterator[TestClient]:
    app, _ = redis_app(redis_server, issuer, clock)
    with TestClient(app, base_url=BASE_URL, raise_server_exceptions=False) as client:
        yield client


def session_cookie(client: TestClient) -> str:
    return client.cookies["oidc_session"]


def assert_503(response: Any) -> None:
    assert response.status_code == 503, (response.status_code, response.text)
    assert response.json()["error"] == "temporarily_unavailable"
    assert int(response.headers["retry-after"]) > 0
    assert not any("Max-Age=0" in c for c in response.headers.get_list("set-cookie"))


def test_app_login_protected_logout(
    app_client: TestClient, issuer: FakeIssuer, raw: redis.Redis
) -> None:
    issuer.login_as("alice", email="alice@mail.example.test")
    login(app_client, issuer)
    response = app_client.get("/api/protected")
    assert response.status_code == 200
    assert response.json() == {"userId": "alice", "email": "alice@mail.example.test"}
    cookie = session_cookie(app_client)
    assert len(cookie) == 53  # s1.<key id>.<256-bit secret>: the cookie holds no data
    (key,) = raw.smembers(index("sub", "alice"))
    assert key not in cookie and cookie.rsplit(".", 1)[1] not in key  # a keyed hash of it
    assert "mail.example.test" not in (raw.hget(PREFIX + "s:" + key, "d") or "")
    app_client.post("/auth/logout", follow_redirects=False)
    assert raw.hgetall(PREFIX + "s:" + key) == {"ended": "1"}  # a tombstone, nothing else
    assert raw.dbsize() == 1
    app_client.cookies.set("oidc_session", cookie)
    assert app_client.get("/api/protected").status_code == 401


def test_app_outage_is_503_then_the_session_is_back(
    app_client: TestClient, issuer: FakeIssuer, redis_server: RedisServer
) -> None:
    login(app_client, issuer)
    assert app_client.get("/api/protected").status_code == 200
    redis_server.pause()
    try:
        for path in ("/api/protected", "/api/optional", "/auth/profile"):
            assert_503(app_client.get(path, follow_redirects=False))
        assert_503(app_client.post("/auth/logout", follow_redirects=False))
    finally:
        redis_server.resume()
    assert app_client.get("/api/protected").status_code == 200
    redis_server.stop()
    assert_503(app_client.get("/api/protected"))
    redis_server.start()
    assert app_client.get("/api/protected").status_code == 401  # no persistence: data gone


@pytest.mark.parametrize("when", ["login-callback", "session-change"])
def test_app_outage_while_persisting_is_503(
    app_client: TestClient, issuer: FakeIssuer, redis_server: RedisServer, when: str
) -> None:
    if when == "login-callback":  # no previous session: nothing is loaded before the save
        start = app_client.get("/auth/login", follow_redirects=False)
        callback = issuer.authorize(start.headers["location"])
        redis_server.stop()
        response = app_client.get(callback, follow_redirects=False)
    else:  # loaded fine, then Redis went away before the changed session was saved
        login(app_client, issuer)
        try:
            response = app_client.get("/api/change-during-outage")
        finally:
            redis_server.resume()
    assert_503(response)
