"""Calling your own API with the user's token, against the real provider: a web app gets a JWT
for the API with ``access_token(audience=...)`` and forwards it to a second app that validates it;
after expiry, 20 concurrent requests cause one refresh and nobody is logged out (the provider's
reuse detection would revoke the grant on a double refresh). Then the trap, reproduced."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from fastapi_oidc_guard import AccessToken, OIDCGuard, User, access_token, require_user

from ._provider import OIDCProviderProcess, drive_login
from ._server import ServedApp, free_socket

pytestmark = pytest.mark.e2e

TTL = 3  # seconds: the provider's access-token lifetime for the API


def api_app(provider: OIDCProviderProcess) -> FastAPI:
    guard = OIDCGuard(issuer=provider.issuer, audience=provider.api_identifier)
    app = FastAPI(lifespan=guard.lifespan)
    guard.install(app)

    @app.get("/data")
    async def data(user: User = Depends(require_user)) -> dict[str, Any]:
        return {"for": user.sub}

    return app


def web_app(provider: OIDCProviderProcess, base: str, api_base: str, **settings: Any) -> FastAPI:
    guard = OIDCGuard(
        issuer=provider.issuer, client_id=provider.client_id,
        client_secret=provider.client_secret, base_url=base, session_secret="e" * 40,
        **{"audience": provider.api_identifier, **settings},
    )  # fmt: skip
    app = FastAPI(lifespan=guard.lifespan)
    guard.install(app)
    api_token = access_token(audience=guard.config.audience, min_ttl=1)

    @app.get("/api/external-data")
    async def external(token: AccessToken = Depends(api_token)) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.get(
                f"{api_base}/data", headers={"Authorization": token.authorization}
            )
        return {"status": answer.status_code, "body": answer.json(), "jwt": token.is_jwt}

    return app


def start(make_provider: Callable[..., OIDCProviderProcess]) -> tuple[Any, ...]:
    web_sock, api_sock = free_socket(), free_socket()
    base = f"http://127.0.0.1:{web_sock.getsockname()[1]}"
    api_base = f"http://127.0.0.1:{api_sock.getsockname()[1]}"
    provider = make_provider({
        "client": {"redirect_uris": [f"{base}/auth/callback"],
                   "post_logout_redirect_uris": [f"{base}/"]},
        "api": {"access_token_ttl": TTL},
    })  # fmt: skip
    return provider, web_sock, api_sock, base, api_base


def test_access_token_for_own_api_refresh_once_under_concurrency(
    make_oidc_provider: Callable[..., OIDCProviderProcess],
) -> None:
    provider, web_sock, api_sock, base, api_base = start(make_oidc_provider)
    with (
        ServedApp(api_app(provider), api_sock),
        ServedApp(web_app(provider, base, api_base), web_sock),
        httpx.Client(timeout=15, base_url=base) as browser,
    ):
        callback = drive_login(browser, f"{base}/auth/login?prompt=consent", login="dave")
        browser.get(callback, follow_redirects=False)
        first = browser.get("/api/external-data").json()
        assert first == {"status": 200, "body": {"for": "dave"}, "jwt": True}

        provider.reset_counters()
        time.sleep(TTL + 1)  # real time: the provider's token has really expired

        async def burst() -> list[httpx.Response]:
            cookies = {c.name: c.value or "" for c in browser.cookies.jar
                       if c.name.startswith("oidc_session") and c.path == "/"}  # fmt: skip
            async with httpx.AsyncClient(timeout=15, base_url=base, cookies=cookies) as tab:
                return await asyncio.gather(*(tab.get("/api/external-data") for _ in range(20)))

        responses = asyncio.run(burst())
        assert [r.status_code for r in responses] == [200] * 20, [r.text for r in responses]
        assert all(r.json()["body"] == {"for": "dave"} for r in responses)
        counters = provider.counters()
        assert counters.get("token_refresh_token") == 1, counters
        assert not counters.get("token_refresh_token_error")
        # Not logged out: with the newest cookie, the session and its grant still work, even
        # after the next expiry (a refresh with the rotated refresh token).
        for name, value in responses[0].cookies.items():
            browser.cookies.set(name, value, path="/")
        time.sleep(TTL + 1)
        assert browser.get("/api/external-data").json()["status"] == 200
        assert provider.counters().get("token_refresh_token") == 2


def test_the_opaque_token_trap_reproduced_and_diagnosed(
    make_oidc_provider: Callable[..., OIDCProviderProcess], caplog: pytest.LogCaptureFixture
) -> None:
    provider, web_sock, api_sock, base, api_base = start(make_oidc_provider)
    with (
        caplog.at_level(logging.WARNING, logger="fastapi_oidc_guard"),
        ServedApp(api_app(provider), api_sock),
        ServedApp(web_app(provider, base, api_base, audience=None), web_sock),
        httpx.Client(timeout=15, base_url=base) as browser,
    ):
        callback = drive_login(browser, f"{base}/auth/login?prompt=consent", login="erin")
        browser.get(callback, follow_redirects=False)
        result = browser.get("/api/external-data").json()
    assert result["jwt"] is False  # the provider issued an opaque token: no audience was asked
    assert result["status"] == 401  # and the API cannot validate it
    assert "OIDC_AUDIENCE" in caplog.text
