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
from typing import Any

import pytest

from ..models import SessionData
from ..sessions.base import SessionBackend
from ._layer_kit import SessionLayerConformance
from .clock import FakeClock

__all__ = ["SessionBackendConformance", "SessionLayerConformance"]


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
