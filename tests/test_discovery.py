"""Discovery: issuer equality, endpoint URL rules, caching and stale-if-error."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fastapi_oidc_guard import DiscoveryError
from fastapi_oidc_guard.discovery import DiscoveryCache, discovery_url, parse_metadata
from fastapi_oidc_guard.testing import FakeClock, FakeIssuer

pytestmark = pytest.mark.anyio
ISSUER = "https://idp.example.com"


def doc(**overrides: Any) -> dict[str, Any]:
    base = {"issuer": ISSUER, "jwks_uri": f"{ISSUER}/jwks", "token_endpoint": f"{ISSUER}/token"}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def test_discovery_url() -> None:
    assert (
        discovery_url("https://a.example/") == "https://a.example/.well-known/openid-configuration"
    )
    assert discovery_url("https://a.example/realms/x") == (
        "https://a.example/realms/x/.well-known/openid-configuration"
    )


def test_valid_document() -> None:
    assert parse_metadata(doc(), issuer=ISSUER).jwks_uri == f"{ISSUER}/jwks"


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(doc(issuer="https://evil.example"), id="issuer-mismatch"),
        pytest.param(doc(issuer=ISSUER + "/"), id="issuer-trailing-slash"),
        pytest.param(doc(jwks_uri=None), id="no-jwks-uri"),
        pytest.param(doc(jwks_uri="http://idp.example.com/jwks"), id="jwks-uri-http"),
        pytest.param(doc(token_endpoint="http://10.0.0.1/token"), id="endpoint-http"),
        pytest.param(doc(issuer=5), id="issuer-not-string"),
    ],
)
def test_rejected_documents(document: dict[str, Any]) -> None:
    with pytest.raises(DiscoveryError):
        parse_metadata(document, issuer=ISSUER)


async def test_cached_and_served_stale_on_error(clock: FakeClock) -> None:
    issuer = FakeIssuer(clock=clock)
    async with httpx.AsyncClient(transport=issuer.transport) as client:
        cache = DiscoveryCache(issuer=issuer.issuer, client=lambda: client, clock=clock, max_age=60)
        first = await cache.get()
        await cache.get()
        assert issuer.requests["discovery"] == 1
        clock.advance(61)
        with issuer.outage("error"):
            assert await cache.get() is first
        assert issuer.requests["discovery"] == 2
        with issuer.outage("down"):
            fresh = DiscoveryCache(
                issuer=issuer.issuer, client=lambda: client, clock=clock, max_age=60
            )
            with pytest.raises(DiscoveryError):
                await fresh.get()
