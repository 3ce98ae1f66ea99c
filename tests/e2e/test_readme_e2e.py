"""The README's API quickstart, executed exactly as written against the real provider."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from ._provider import OIDCProviderProcess, drive_login
from ._server import ServedApp, free_socket

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_block(marker: str) -> str:
    pattern = rf"<!-- {marker} -->\n```python\n(.*?)```"
    match = re.search(pattern, README.read_text(), re.S)
    assert match, f"README lost its {marker} block"
    return match.group(1)


def test_readme_api_quickstart_works_as_written(
    oidc_provider: OIDCProviderProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OIDC_ISSUER", oidc_provider.issuer)
    monkeypatch.setenv("OIDC_AUDIENCE", oidc_provider.api_identifier)
    namespace: dict[str, Any] = {}
    exec(compile(readme_block("quickstart-api"), str(README), "exec"), namespace)  # noqa: S102

    def token(scope: str) -> str:
        response = httpx.post(
            oidc_provider.url("/token"),
            data={"grant_type": "client_credentials", "resource": oidc_provider.api_identifier,
                  "scope": scope},
            auth=(oidc_provider.client_id, oidc_provider.client_secret),
            timeout=10,
        )  # fmt: skip
        response.raise_for_status()
        access_token: str = response.json()["access_token"]
        return access_token

    call: Callable[..., httpx.Response]
    with TestClient(namespace["app"]) as client:
        call = client.get
        assert call("/api/protected").status_code == 401
        ok = call("/api/protected", headers={"Authorization": f"Bearer {token('api:read')}"})
        assert ok.json() == {"userId": oidc_provider.client_id}
        # The provider's API only knows api:read/api:write, so read:messages is missing: 403.
        denied = call("/api/messages", headers={"Authorization": f"Bearer {token('api:read')}"})
        assert denied.status_code == 403


def test_readme_web_quickstart_works_as_written(
    make_oidc_provider: Callable[..., OIDCProviderProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock = free_socket()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    provider = make_oidc_provider(
        {"client": {"redirect_uris": [f"{base}/auth/callback"],
                    "post_logout_redirect_uris": [f"{base}/"]}}
    )  # fmt: skip
    for name, value in {
        "OIDC_ISSUER": provider.issuer, "OIDC_AUDIENCE": provider.api_identifier,
        "OIDC_CLIENT_ID": provider.client_id, "OIDC_CLIENT_SECRET": provider.client_secret,
        "OIDC_BASE_URL": base, "OIDC_SESSION_SECRET": "r" * 48,
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    namespace: dict[str, Any] = {}
    exec(compile(readme_block("quickstart-web"), str(README), "exec"), namespace)  # noqa: S102

    with ServedApp(namespace["app"], sock), httpx.Client(timeout=10, base_url=base) as browser:
        assert "Log in" in browser.get("/").text
        assert browser.get("/api/protected").status_code == 401
        page = browser.get("/dashboard", follow_redirects=False)
        assert page.headers["location"] == "/auth/login?returnTo=%2Fdashboard"
        callback = drive_login(browser, f"{base}{page.headers['location']}", login="carol")
        assert browser.get(callback, follow_redirects=False).headers["location"] == "/dashboard"
        assert browser.get("/dashboard").text == "Dashboard of carol"
        assert browser.get("/api/protected").json() == {"userId": "carol"}
        assert "Log out" in browser.get("/").text
