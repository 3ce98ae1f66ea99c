"""The app run as separate uvicorn processes by test_instances_e2e.py (configured from OIDC_*).

``/ws/live`` is a WebSocket kept only while its credentials hold (``while_authenticated``,
checked every 0.2 s). ``E2E_TOUCH_INTERVAL`` sets how often a session's use is recorded (0: on
every request), and
``/held`` holds a signed-in request at the point where it has loaded the session until
``POST /held/release``: a test interleaves a logout with it without sleeping.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from fastapi import Depends, WebSocket

from fastapi_oidc_guard import AccessToken, OIDCGuard, User, access_token, require_user

from ..web import web_app

guard = OIDCGuard.from_env(session_touch_interval=float(os.environ.get("E2E_TOUCH_INTERVAL", "60")))
app = web_app(guard)
# The provider's tokens live 3 s in these tests: refresh only when really expired (min_ttl=1),
# not whenever less than the default 60 s remain.
short_lived = access_token(min_ttl=1)
loaded, release = asyncio.Event(), asyncio.Event()


@app.get("/api/short-token")
async def short_token(token: AccessToken = Depends(short_lived)) -> dict[str, Any]:
    return {"token": token.token}


@app.get("/held")
async def held(user: User = Depends(require_user)) -> dict[str, Any]:
    loaded.set()
    await asyncio.wait_for(release.wait(), timeout=30)
    return {"userId": user.sub}


@app.get("/held/loaded")
async def held_loaded() -> dict[str, bool]:
    await asyncio.wait_for(loaded.wait(), timeout=10)
    return {"loaded": True}


@app.post("/held/release")
async def held_release() -> dict[str, bool]:
    release.set()
    return {"released": True}


@app.websocket("/ws/live")
async def live(websocket: WebSocket, user: User = Depends(require_user)) -> None:
    await websocket.accept()
    await websocket.send_text(f"hello {user.sub}")
    async with guard.while_authenticated(websocket, every=0.2):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            await websocket.send_text(str(message.get("text", ""))[:100])
