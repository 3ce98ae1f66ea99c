"""The README's API quickstart, executed exactly as written against the real provider."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from ._provider import OIDCProviderProcess

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"


def quickstart_code() -> str:
    match = re.search(r"<!-- quickstart-api -->\n```python\n(.*?)```", README.read_text(), re.S)
    assert match, "README lost its quickstart-api block"
    return match.group(1)


def test_readme_api_quickstart_works_as_written(
    oidc_provider: OIDCProviderProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OIDC_ISSUER", oidc_provider.issuer)
    monkeypatch.setenv("OIDC_AUDIENCE", oidc_provider.api_identifier)
    namespace: dict[str, Any] = {}
    exec(compile(quickstart_code(), str(README), "exec"), namespace)  # noqa: S102

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
