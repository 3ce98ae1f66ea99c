"""Helpers for browser-login tests: a guard with login configured and a small web app."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from fastapi_oidc_guard import (
    AccessToken,
    OIDCGuard,
    User,
    access_token,
    client_credentials_token,
    optional_user,
    require_page_user,
    require_user,
    userinfo,
)
from fastapi_oidc_guard.testing import FakeClock, FakeIssuer

BASE_URL = "http://127.0.0.1:8000"
SECRET = "s" * 40
OTHER_API = "https://other-api.example.test"


def web_guard(issuer: FakeIssuer, clock: FakeClock, **settings: Any) -> OIDCGuard:
    options: dict[str, Any] = {
        "issuer": issuer.issuer,
        "audience": issuer.audience,
        "client_id": issuer.client_id,
        "client_secret": issuer.client_secret,
        "base_url": BASE_URL,
        "session_secret": SECRET,
        "transport": issuer.transport,
        "clock": clock,
    }
    options.update(settings)
    return OIDCGuard(**options)


def web_app(guard: OIDCGuard) -> FastAPI:
    app = FastAPI(lifespan=guard.lifespan)
    guard.install(app)

    @app.get("/api/protected")
    async def protected(user: User = Depends(require_user)) -> dict[str, Any]:
        return {"userId": user.sub, "email": user.email}

    @app.get("/api/optional")
    async def optional(user: User | None = Depends(optional_user)) -> dict[str, Any]:
        return {"userId": user.sub if user else None}

    @app.get("/page")
    async def page(user: User = Depends(require_page_user)) -> dict[str, str]:
        return {"page": f"hello {user.sub}"}

    @app.get("/api/own-response")
    async def own_response(request: Request) -> Response:
        """Changes the session and returns its own Response object."""
        guard = request.app.state.oidc_guard
        session = await guard.session(request)
        assert session is not None
        guard.sessions.set(
            request.scope,
            session.model_copy(update={"user": {"sub": session.sub, "marker": "set"}}),
        )
        return JSONResponse({"changed": True})

    @app.get("/api/token")
    async def token(tok: AccessToken = Depends(access_token())) -> dict[str, Any]:
        return {"token": tok.token, "audience": tok.audience, "expires_at": tok.expires_at}

    @app.get("/api/token-other")
    async def token_other(
        tok: AccessToken = Depends(access_token(audience=OTHER_API)),
    ) -> dict[str, Any]:
        return {"token": tok.token, "audience": tok.audience}

    @app.get("/api/token-own-response")
    async def token_own_response(tok: AccessToken = Depends(access_token())) -> Response:
        return JSONResponse({"token": tok.token})

    @app.get("/api/m2m")
    async def m2m(tok: AccessToken = Depends(client_credentials_token())) -> dict[str, Any]:
        return {"token": tok.token}

    @app.get("/api/userinfo")
    async def profile(user: User = Depends(userinfo)) -> dict[str, Any]:
        return user.claims

    return app
