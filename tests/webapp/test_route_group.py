"""The ``/auth`` routes are one entry of the app's route list (``routes.PrefixedRoutes``):
requests elsewhere skip them with one string comparison; inside, routing behaves as before."""

from __future__ import annotations

from fastapi.testclient import TestClient

from fastapi_oidc_guard.testing import FakeClock, FakeIssuer

from ..web import BASE_URL, web_app, web_guard


def test_routing_inside_and_outside_the_prefix(issuer: FakeIssuer, clock: FakeClock) -> None:
    app = web_app(web_guard(issuer, clock))

    @app.get("/authz")  # shares the prefix's first letters, not the prefix
    async def authz() -> dict[str, str]:
        return {"route": "authz"}

    @app.get("/auth-help")
    async def auth_help() -> dict[str, str]:
        return {"route": "auth-help"}

    with TestClient(app, base_url=BASE_URL) as client:
        assert client.get("/authz").json() == {"route": "authz"}
        assert client.get("/auth-help").json() == {"route": "auth-help"}
        assert client.get("/auth/login", follow_redirects=False).status_code == 302
        assert client.get("/auth/nothing-here").status_code == 404
        assert client.put("/auth/login").status_code == 405  # a partial match, as before
        assert client.get("/auth/profile").status_code == 401
        assert app.url_path_for("login_route") == "/auth/login"
