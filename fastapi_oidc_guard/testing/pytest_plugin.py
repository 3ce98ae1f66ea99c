"""pytest plugin (registered as ``fastapi_oidc_guard``): fixtures for apps using the guard.

Override ``oidc_app`` in your ``conftest.py`` to return *your* app built with ``oidc_guard``::

    @pytest.fixture
    def oidc_app(oidc_guard):
        return create_app(guard=oidc_guard)

    def test_me(oidc_signed_in_client):
        assert oidc_signed_in_client.get("/api/me").status_code == 200

Fixtures: ``oidc_issuer`` (a :class:`FakeIssuer`), ``oidc_settings`` (the guard's keyword
arguments, login included), ``oidc_guard``, ``oidc_app``, ``oidc_user`` (the claims of the user
who signs in), ``oidc_client`` (a started ``TestClient``) and ``oidc_signed_in_client``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from fastapi import Depends, FastAPI

from ..dependencies import require_user
from ..guard import OIDCGuard
from ..models import User
from .issuer import FakeIssuer
from .login import login

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

BASE_URL = "http://127.0.0.1:8000"


@pytest.fixture
def oidc_issuer() -> FakeIssuer:
    return FakeIssuer()


@pytest.fixture
def oidc_settings(oidc_issuer: FakeIssuer) -> dict[str, Any]:
    return {
        "issuer": oidc_issuer.issuer,
        "audience": oidc_issuer.audience,
        "client_id": oidc_issuer.client_id,
        "client_secret": oidc_issuer.client_secret,
        "base_url": BASE_URL,
        "session_secret": secrets.token_urlsafe(48),
        "transport": oidc_issuer.transport,
    }


@pytest.fixture
def oidc_guard(oidc_settings: dict[str, Any]) -> OIDCGuard:
    return OIDCGuard(**oidc_settings)


@pytest.fixture
def oidc_app(oidc_guard: OIDCGuard) -> FastAPI:
    """A minimal app (``GET /api/me``); override this fixture to test your own app."""
    app = FastAPI(lifespan=oidc_guard.lifespan)
    oidc_guard.install(app)

    @app.get("/api/me")
    async def me(user: User = Depends(require_user)) -> dict[str, Any]:
        return user.claims

    return app


@pytest.fixture
def oidc_user() -> dict[str, Any]:
    return {"sub": "test-user", "name": "Test User", "email": "test-user@example.test"}


@pytest.fixture
def oidc_client(oidc_app: FastAPI) -> Iterator[TestClient]:
    from fastapi.testclient import TestClient

    with TestClient(oidc_app, base_url=BASE_URL) as client:
        yield client


@pytest.fixture
def oidc_signed_in_client(
    oidc_client: TestClient, oidc_issuer: FakeIssuer, oidc_user: dict[str, Any]
) -> TestClient:
    response = login(oidc_client, oidc_issuer, user=oidc_user)
    assert response.status_code == 302, response.text
    return oidc_client
