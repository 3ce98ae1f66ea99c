"""The app run as a uvicorn process by test_glewlwyd_e2e.py, configured from ``OIDC_*`` only.

It is ``tests/web.py``'s app (``/api/protected``, ``/api/userinfo``, ``/api/m2m``, ``/auth/*``)
plus:

- ``/api/short-token``: the session's access token, refreshed only when really expired
  (``min_ttl=1``: Glewlwyd's tokens live a few seconds in these tests);
- ``/api/m2m-scoped``: a client-credentials token asking ``E2E_M2M_SCOPE`` (Glewlwyd refuses a
  client-credentials request without a scope);
- ``/_test/session``: what the caller's session holds (``sid``, tokens), to assert on;
- ``/_test/backchannel``: every POST to ``/auth/backchannel-logout`` seen, with the
  ``logout_token`` sent and the status the library answered.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qs

from fastapi import Depends, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastapi_oidc_guard import AccessToken, OIDCGuard, access_token, client_credentials_token

from ..web import web_app

guard = OIDCGuard.from_env()
app = web_app(guard)
short_lived = access_token(min_ttl=1)
scoped_m2m = client_credentials_token(scope=os.environ.get("E2E_M2M_SCOPE") or None)
backchannel_seen: list[dict[str, Any]] = []


class BackchannelRecorder:
    """Records each back-channel logout POST (its ``logout_token`` and the answer's status),
    passing the request and the response through unchanged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/auth/backchannel-logout"):
            await self.app(scope, receive, send)
            return
        body = bytearray()
        record: dict[str, Any] = {"status": None, "logout_token": None}

        async def receive_and_keep() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                body.extend(message.get("body", b""))
            return message

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                record["status"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive_and_keep, send_and_note)
        finally:
            form = parse_qs(body.decode("latin-1"))
            record["logout_token"] = form.get("logout_token", [None])[0]
            backchannel_seen.append(record)


app.add_middleware(BackchannelRecorder)


@app.get("/api/short-token")
async def short_token(token: AccessToken = Depends(short_lived)) -> dict[str, Any]:
    return {"token": token.token, "token_type": token.token_type, "expires_at": token.expires_at}


@app.get("/api/m2m-scoped")
async def m2m_scoped(token: AccessToken = Depends(scoped_m2m)) -> dict[str, Any]:
    return {"token": token.token, "token_type": token.token_type}


@app.get("/_test/session")
async def test_session(request: Request) -> dict[str, Any]:
    session = await guard.session(request)
    if session is None:
        return {"session": None}
    return {
        "session": {
            "sub": session.sub,
            "sid": session.sid,
            "id_token": session.id_token,
            "refresh_token": session.refresh_token,
            "auth_time": session.auth_time,
            "tokens": {key: tokens.access_token for key, tokens in session.tokens.items()},
        }
    }


@app.get("/_test/backchannel")
async def test_backchannel() -> list[dict[str, Any]]:
    return backchannel_seen
