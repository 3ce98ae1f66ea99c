"""Background tokens against the real provider (issue #15): a route stores the signed-in
user's grant; a worker (its own guard, as another process would build from the same settings)
later gets an access token for the API from it, the provider rotating the refresh token."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from fastapi_oidc_guard import LoginRequired, OfflineGrant, OIDCGuard

from ._provider import OIDCProviderProcess, drive_login
from ._server import ServedApp, free_socket

pytestmark = pytest.mark.e2e


def settings(provider: OIDCProviderProcess, base: str) -> dict[str, Any]:
    return {
        "issuer": provider.issuer, "audience": provider.api_identifier,
        "client_id": provider.client_id, "client_secret": provider.client_secret,
        "base_url": base, "session_secret": "w" * 40,
    }  # fmt: skip


def test_a_worker_acts_for_the_user_with_the_stored_refresh_token(
    make_oidc_provider: Callable[..., OIDCProviderProcess],
) -> None:
    sock = free_socket()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    provider = make_oidc_provider({"client": {"redirect_uris": [f"{base}/auth/callback"]}})
    web = OIDCGuard(**settings(provider, base))
    app = FastAPI(lifespan=web.lifespan)
    web.install(app)
    stored: list[OfflineGrant] = []

    @app.post("/remember-me")
    async def remember(request: Request) -> dict[str, str]:
        stored.append(await web.offline_grant(request))
        return {"ok": "stored"}

    with ServedApp(app, sock), httpx.Client(timeout=10) as browser:
        callback = drive_login(browser, f"{base}/auth/login?prompt=consent", login="wendy")
        assert browser.get(callback, follow_redirects=False).status_code == 302
        assert browser.post(f"{base}/remember-me", headers={"Origin": base}).status_code == 200
    [grant] = stored

    async def work() -> None:
        worker = OIDCGuard(**settings(provider, base))
        rotated: list[str] = []

        async def on_rotated(new: str) -> None:
            rotated.append(new)

        token = await worker.access_token_from_refresh_token(
            grant.refresh_token, sub=grant.sub, on_rotated=on_rotated, force_refresh=True
        )
        claims = await worker.verifier.verify_access_token(token.token)
        assert claims["sub"] == "wendy" and token.audience == provider.api_identifier
        assert rotated and rotated[0] != grant.refresh_token  # oidc-provider rotates always
        # A second worker that still holds the spent token: the provider refuses it (and
        # revokes the grant), which is a LoginRequired, never a token.
        other = OIDCGuard(**settings(provider, base))
        with pytest.raises(LoginRequired):
            await other.access_token_from_refresh_token(grant.refresh_token, sub=grant.sub)
        await worker.aclose()
        await other.aclose()

    asyncio.run(work())
