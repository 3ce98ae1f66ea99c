"""The app run as separate uvicorn processes by test_instances_e2e.py (configured from OIDC_*)."""

from __future__ import annotations

from typing import Any

from fastapi import Depends

from fastapi_oidc_guard import AccessToken, OIDCGuard, access_token

from ..web import web_app

app = web_app(OIDCGuard.from_env())
# The provider's tokens live 3 s in these tests: refresh only when really expired (min_ttl=1),
# not whenever less than the default 60 s remain.
short_lived = access_token(min_ttl=1)


@app.get("/api/short-token")
async def short_token(token: AccessToken = Depends(short_lived)) -> dict[str, Any]:
    return {"token": token.token}
