"""Step-up and always-fresh tokens against the real provider (issue #11): a ``max_age`` login
(the provider answers with ``auth_time``), ``require_step_up`` sending a page back through the
provider and coming back, and a provider that does not rotate refresh tokens with
``access_token(...)`` called after expiry (a new token each time, never an expired one)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from fastapi_oidc_guard import AccessToken, OIDCGuard, User, access_token, require_step_up

from ._provider import OIDCProviderProcess, drive_login
from ._server import ServedApp, free_socket

pytestmark = pytest.mark.e2e

TTL = 3
# auth_time is whole seconds (floored), so a max_age of M leaves the re-login M-1 s at worst:
# 3 keeps the second round through the provider clear of a loaded CI machine (1 did not).
STEP_UP_MAX_AGE = 3


def claims_of(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    result: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return result


def app_for(provider: OIDCProviderProcess, base: str) -> FastAPI:
    guard = OIDCGuard(
        issuer=provider.issuer, audience=provider.api_identifier, client_id=provider.client_id,
        client_secret=provider.client_secret, base_url=base, session_secret="u" * 40, leeway=0,
    )  # fmt: skip
    app = FastAPI(lifespan=guard.lifespan)
    guard.install(app)
    token = access_token(min_ttl=1)

    @app.get("/secure")
    async def secure(
        user: User = Depends(require_step_up(max_age=STEP_UP_MAX_AGE)),
    ) -> dict[str, str]:
        return {"hello": user.sub}

    @app.get("/token")
    async def current(tok: AccessToken = Depends(token)) -> dict[str, Any]:
        return {"token": tok.token}

    return app


def test_step_up_through_the_provider_and_back(
    make_oidc_provider: Callable[..., OIDCProviderProcess],
) -> None:
    sock = free_socket()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    provider = make_oidc_provider(
        {
            "client": {
                "redirect_uris": [f"{base}/auth/callback"],
                "post_logout_redirect_uris": [f"{base}/"],
            }
        }
    )
    page = {"Accept": "text/html"}
    with ServedApp(app_for(provider, base), sock), httpx.Client(timeout=10) as browser:
        callback = drive_login(browser, f"{base}/auth/login?max_age=30&prompt=consent",
                               login="hana")  # fmt: skip
        assert browser.get(callback, follow_redirects=False).status_code == 302  # auth_time ok
        time.sleep(STEP_UP_MAX_AGE + 1.1)  # the login is now older than the route's max_age
        assert browser.get(f"{base}/secure").status_code == 401  # an API call: the challenge
        again = browser.get(f"{base}/secure", headers=page, follow_redirects=False)
        assert again.status_code == 302
        assert (
            again.headers["location"] == f"/auth/login?returnTo=%2Fsecure&max_age={STEP_UP_MAX_AGE}"
        )
        callback = drive_login(browser, f"{base}{again.headers['location']}", login="hana")
        back = browser.get(callback, follow_redirects=False)
        assert back.headers["location"] == "/secure"
        assert browser.get(f"{base}/secure", headers=page).json() == {"hello": "hana"}


def test_a_non_rotating_provider_never_gets_an_expired_token_handed_out(
    make_oidc_provider: Callable[..., OIDCProviderProcess],
) -> None:
    sock = free_socket()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    provider = make_oidc_provider({
        "client": {"redirect_uris": [f"{base}/auth/callback"]},
        "api": {"access_token_ttl": TTL}, "rotate_refresh_token": "never",
    })  # fmt: skip
    with ServedApp(app_for(provider, base), sock), httpx.Client(timeout=10) as browser:
        callback = drive_login(browser, f"{base}/auth/login?prompt=consent", login="ivan")
        browser.get(callback, follow_redirects=False)
        tokens = []
        for _ in range(3):
            tokens.append(browser.get(f"{base}/token").json()["token"])
            assert claims_of(tokens[-1])["exp"] > time.time() + 1  # more than min_ttl left
            time.sleep(TTL + 0.5)
        assert len(set(tokens)) == 3
        assert provider.counters().get("token_refresh_token") == 2
