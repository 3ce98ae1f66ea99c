"""The example app: zero-configuration development mode, and its refusal in production."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from example_app.app import create_app


def test_development_mode_serves_protected_route() -> None:
    app, dev = create_app({})
    assert dev is not None
    with TestClient(app) as client:
        assert client.get("/api/protected").status_code == 401
        token = dev.mint(sub="dev-user", scope="openid admin")
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/protected", headers=headers).json()["userId"] == "dev-user"
        assert client.get("/api/admin", headers=headers).status_code == 200
        no_admin = {"Authorization": f"Bearer {dev.mint(scope='openid')}"}
        assert client.get("/api/admin", headers=no_admin).status_code == 403


@pytest.mark.parametrize("marker", ["OIDC_CLIENT_SECRET", "OIDC_SESSION_SECRET", "OIDC_AUDIENCE"])
def test_development_issuer_refused_when_production_settings_present(marker: str) -> None:
    with pytest.raises(RuntimeError, match="OIDC_ISSUER"):
        create_app({marker: "x" * 40})


def test_configured_mode_uses_the_environment() -> None:
    app, dev = create_app({"OIDC_ISSUER": "https://idp.example.com", "OIDC_AUDIENCE": "a"})
    assert dev is None
    assert app.state.oidc_guard.config.audience == "a"
