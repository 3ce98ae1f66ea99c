"""Fixtures for the browser-login tests: a guard with login configured, its app and a client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fastapi_oidc_guard import OIDCGuard
from fastapi_oidc_guard.testing import FakeClock, FakeIssuer

from ..web import BASE_URL, web_app, web_guard


@pytest.fixture
def guard(issuer: FakeIssuer, clock: FakeClock) -> OIDCGuard:
    return web_guard(issuer, clock)


@pytest.fixture
def app(guard: OIDCGuard) -> FastAPI:
    return web_app(guard)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url=BASE_URL) as test_client:
        yield test_client
