"""The app run as a uvicorn process by test_lemonldap_e2e.py, configured from ``OIDC_*`` as a
user would configure it for LemonLDAP::NG.

Besides ``tests.web``'s routes (``/api/protected``, ``/api/optional``, ``/api/userinfo``...):
``/api/short-token`` hands out the session's access token, refreshed only when it has really
expired (``min_ttl=1``: the provider's tokens live a few seconds in these tests), and
``/api/session-tokens`` shows what the session holds (the ID token and the refresh token), so
that the test can check their shapes and that the refresh token is not rotated. A test app
only: never expose a session's tokens like this.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request

from fastapi_oidc_guard import AccessToken, OIDCGuard, User, access_token, require_user

from ..web import web_app

guard = OIDCGuard.from_env()
app = web_app(guard)
short_lived = access_token(min_ttl=1)


@app.get("/api/short-token")
async def short_token(token: AccessToken = Depends(short_lived)) -> dict[str, Any]:
    return {"token": token.token, "expires_at": token.expires_at, "audience": token.audience}


@app.get("/api/session-tokens")
async def session_tokens(request: Request, user: User = Depends(require_user)) -> dict[str, Any]:
    session = await guard.session(request)
    assert session is not None
    return {"sub": user.sub, "id_token": session.id_token, "refresh_token": session.refresh_token}
