"""The example app: a web app with login, pages, API routes, and a call to a second API.

With ``OIDC_ISSUER`` set, it is configured from the ``OIDC_*`` variables against a real provider.
With no ``OIDC_*`` variable at all, it serves the library's *development issuer* at
``/_dev-issuer`` (a login page where anyone can sign in as anyone) and configures itself against
it: zero configuration, never for production. Any other ``OIDC_*`` variable, even an empty one,
without ``OIDC_ISSUER`` means a half-configured deployment: the app refuses to start.

``app`` (this module's attribute) is built on first access, as servers ask for it:
``uvicorn example_app.app:app`` or ``fastapi dev example_app/app.py``; importing
:func:`create_app` alone builds nothing.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Mapping
from typing import Any

import httpx
from fastapi import Depends, FastAPI, HTTPException, WebSocket
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from fastapi_oidc_guard import (
    AccessToken,
    OIDCGuard,
    User,
    access_token,
    optional_user,
    require_page_user,
    require_user,
)
from fastapi_oidc_guard.testing import FakeIssuer

from . import pages

DEV_AUDIENCE = "https://example-api.invalid"
DEV_ISSUER_PATH = "/_dev-issuer"
ROUTES_PREFIX = "/auth"  # the library's default, where its callback lives
SWAGGER_CLIENT_ID = "swagger-ui"  # the development issuer's public client for /docs


def configured(environ: Mapping[str, str]) -> bool:
    """``True`` to configure from the environment, ``False`` for the development issuer.

    Raises ``RuntimeError`` when any ``OIDC_*`` variable (even an empty one) is present but
    ``OIDC_ISSUER`` is not: a deployment that forgot its issuer must not let anyone sign in.
    """
    if environ.get("OIDC_ISSUER", "").strip():
        return True
    present = sorted(name for name in environ if name.upper().startswith("OIDC_"))
    if present:
        raise RuntimeError(
            f"{', '.join(present)} present but OIDC_ISSUER is not set: refusing to start the "
            "development issuer (anyone can sign in as anyone). Set OIDC_ISSUER to your "
            "provider's issuer URL, or remove every OIDC_* variable for development mode."
        )
    return False


def development_issuer(base_url: str) -> FakeIssuer:
    """The development issuer, redirecting only to this app's callback and home page."""
    return FakeIssuer(
        base_url + DEV_ISSUER_PATH, audience=DEV_AUDIENCE, client_id="example-app",
        client_secret=secrets.token_urlsafe(24), interactive=True,
        redirect_uris=[f"{base_url}{ROUTES_PREFIX}/callback"],
        post_logout_redirect_uris=[f"{base_url}/"],
        public_clients={SWAGGER_CLIENT_ID: [f"{base_url}/docs/oauth2-redirect"]},
    )  # fmt: skip


class NewItem(BaseModel):
    text: str


def bundled_api(settings: dict[str, Any]) -> FastAPI:
    """The second API, protected by ``require_user`` with the audience the web app asks for."""
    guard = OIDCGuard(**settings)
    api = FastAPI(title="bundled API")
    guard.install(api)

    @api.get("/data")
    async def data(user: User = Depends(require_user)) -> dict[str, Any]:
        return {"message": f"Secret data for {user.sub}", "audience": guard.config.audience}

    return api


def create_app(
    environ: Mapping[str, str] | None = None, *, base_url: str | None = None
) -> tuple[FastAPI, FakeIssuer | None]:
    """Build the app; the second item is the development issuer, or ``None`` when configured."""
    env = os.environ if environ is None else environ
    base = (base_url or f"http://127.0.0.1:{env.get('PORT', '8000')}").rstrip("/")
    dev: FakeIssuer | None = None
    # The front end allowed by CORS below may write with the session cookie (trusted origin).
    cors_origin = env.get("EXAMPLE_CORS_ORIGIN", "http://localhost:3000")
    if configured(env):
        guard = OIDCGuard.from_env(env)
        api_settings: dict[str, Any] = {"issuer": guard.config.issuer,
                                        "audience": guard.config.audience}  # fmt: skip
    else:
        dev = development_issuer(base)
        guard = OIDCGuard(
            issuer=dev.issuer, audience=dev.audience, client_id=dev.client_id,
            client_secret=dev.client_secret, base_url=base, routes_prefix=ROUTES_PREFIX,
            session_secret=secrets.token_urlsafe(48), transport=dev.transport,
            trusted_origins=(cors_origin,), swagger_client_id=SWAGGER_CLIENT_ID,
        )  # fmt: skip
        api_settings = {"issuer": dev.issuer, "audience": dev.audience, "transport": dev.transport}

    app = FastAPI(title="fastapi_oidc_guard example", lifespan=guard.lifespan)
    guard.install(app)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=[cors_origin],
        allow_credentials=True,
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["Authorization", "Content-Type"],
    )
    if dev is not None:
        app.mount(DEV_ISSUER_PATH, dev.asgi)
    api = bundled_api(api_settings)
    app.mount("/bundled-api", api)
    items: dict[str, list[str]] = {}

    @app.get("/", response_class=HTMLResponse)
    async def home(user: User | None = Depends(optional_user)) -> str:
        return pages.home(user, development=dev is not None)

    @app.get("/profile", response_class=HTMLResponse)
    async def profile_page(user: User = Depends(require_page_user)) -> str:
        return pages.profile(user)

    @app.get("/fetch-demo", response_class=HTMLResponse)
    async def fetch_demo(user: User = Depends(require_page_user)) -> str:
        return pages.fetch_demo(user)

    @app.get("/live", response_class=HTMLResponse)
    async def live_page(user: User = Depends(require_page_user)) -> str:
        return pages.live(user)

    @app.websocket("/ws/live")
    async def live(websocket: WebSocket, user: User = Depends(require_user)) -> None:
        await websocket.accept()
        async with guard.while_authenticated(websocket, every=1.0):
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                await websocket.send_text(f"{user.sub}: {message.get('text', '')[:200]}")

    @app.get("/api/protected")
    async def protected(user: User = Depends(require_user)) -> dict[str, Any]:
        return {"message": "This is protected data", "userId": user.sub, "email": user.email}

    @app.get("/api/data")
    async def list_data(user: User = Depends(require_user)) -> dict[str, Any]:
        return {"items": items.get(user.sub, [])}

    @app.post("/api/data", status_code=201)
    async def add_data(item: NewItem, user: User = Depends(require_user)) -> dict[str, Any]:
        items.setdefault(user.sub, []).append(item.text[:200])
        return {"items": items[user.sub]}

    @app.delete("/api/data")
    async def clear_data(user: User = Depends(require_user)) -> dict[str, Any]:
        items.pop(user.sub, None)
        return {"items": []}

    @app.get("/api/posts/{post_id}")
    async def post(post_id: int, user: User = Depends(require_user)) -> dict[str, Any]:
        if not 1 <= post_id <= 100:
            raise HTTPException(status_code=404, detail="no such post")
        return {"id": post_id, "title": f"Post {post_id}", "reader": user.sub}

    api_token = access_token(audience=guard.config.audience)

    @app.get("/api/external-data")
    async def external_data(token: AccessToken = Depends(api_token)) -> dict[str, Any]:
        # The bundled API is called in-process here; a real deployment would call its URL.
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url=base) as http:
            answer = await http.get("/data", headers={"Authorization": token.authorization})
        return {"status": answer.status_code, "api": answer.json(), "tokenIsJwt": token.is_jwt}

    return app, dev


def development_banner(dev: FakeIssuer, port: str) -> str:
    """What to print when the development issuer serves the logins."""
    token = dev.mint(sub="dev-user", email="dev@example.invalid", scope="openid")
    line = "=" * 78
    return (
        f"{line}\n  DEVELOPMENT ISSUER at http://127.0.0.1:{port}/_dev-issuer: not for "
        f"production.\n  Set OIDC_ISSUER (and the other OIDC_* variables) to use a real "
        f"provider.\n{line}\n"
        f"  Open http://127.0.0.1:{port}/ and log in as any user name.\n"
        f"  Or call the API with a bearer token:\n"
        f"    curl -s -H 'Authorization: Bearer {token}' "
        f"http://127.0.0.1:{port}/api/protected\n{line}"
    )


def __getattr__(name: str) -> Any:
    """``app``: built from the environment on first access (what ``uvicorn example_app.app:app``
    and ``fastapi dev`` ask for), with the development banner on stderr in development mode."""
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    built, dev = create_app()
    if dev is not None:
        print(development_banner(dev, os.environ.get("PORT", "8000")), file=sys.stderr, flush=True)
    globals()["app"] = built
    return built


def __dir__() -> list[str]:
    """``app`` is listed before it is built: ``fastapi dev`` finds an app through ``dir()``."""
    return sorted({*globals(), "app"})
