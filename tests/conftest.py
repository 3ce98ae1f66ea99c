"""Shared fixtures: a fake issuer on a movable clock, and a guard wired to it in-process."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from fastapi_oidc_guard import OIDCGuard, User, optional_user, require_user
from fastapi_oidc_guard.testing import FakeClock, FakeIssuer

from .redis_server import RedisServer

# Redis tests run with SCAN and KEYS disabled: the backend must never need them.
NO_SCAN = ("--rename-command", "SCAN", "", "--rename-command", "KEYS", "")


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on a random 127.0.0.1 port, persistence off."""
    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not on PATH: CI must install the Debian package")
        pytest.skip("redis-server is not on PATH (apt-get install redis-server)")
    with RedisServer(extra_args=NO_SCAN) as server:
        yield server


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)


@pytest.fixture
def issuer(clock: FakeClock) -> FakeIssuer:
    return FakeIssuer(clock=clock)


@pytest.fixture
def guard(issuer: FakeIssuer, clock: FakeClock) -> OIDCGuard:
    return OIDCGuard(
        issuer=issuer.issuer,
        audience=issuer.audience,
        client_id=issuer.client_id,
        transport=issuer.transport,
        clock=clock,
    )


def build_app(guard: OIDCGuard) -> FastAPI:
    """A small real app: one public, one protected and one optional route."""
    app = FastAPI(lifespan=guard.lifespan)
    guard.install(app)

    @app.get("/api/public")
    async def public() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/api/protected")
    async def protected(user: User = Depends(require_user)) -> dict[str, object]:
        return {"userId": user.sub, "scopes": sorted(user.scopes)}

    @app.get("/api/optional")
    async def optional(user: User | None = Depends(optional_user)) -> dict[str, object]:
        return {"userId": user.sub if user else None}

    return app


@pytest.fixture
def app(guard: OIDCGuard) -> FastAPI:
    return build_app(guard)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client
