"""The one shared ``httpx.AsyncClient`` and strict JSON fetching from the provider."""

from __future__ import annotations

from typing import Any

import httpx

from ._json import loads_strict
from .errors import TemporarilyUnavailable

__all__ = ["build_client", "fetch_json"]

_MAX_DOCUMENT_BYTES = 512 * 1024


def build_client(
    *, timeout: float, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """A client with a timeout on every phase, no redirects followed and no env proxies read."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        transport=transport,
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": "fastapi-oidc-guard"},
    )


async def fetch_json(
    client: httpx.AsyncClient,
    url: str,
    *,
    error: type[TemporarilyUnavailable],
) -> tuple[dict[str, Any], httpx.Headers]:
    """GET ``url`` and return its JSON object and headers.

    Every failure (network, timeout, status, size, not a JSON object) raises ``error``, a
    503-mapped error, so callers can keep serving what they had.
    """
    try:
        response = await client.get(url, headers={"Accept": "application/json"})
    except httpx.HTTPError as err:
        raise error(f"GET {url} failed: {type(err).__name__}") from err
    if response.status_code != 200:
        raise error(f"GET {url}: expected status 200, got {response.status_code}")
    if len(response.content) > _MAX_DOCUMENT_BYTES:
        raise error(f"GET {url}: document larger than {_MAX_DOCUMENT_BYTES} bytes")
    try:
        document = loads_strict(response.content)
    except (ValueError, RecursionError) as err:
        raise error(f"GET {url}: body is not valid JSON") from err
    if not isinstance(document, dict):
        raise error(f"GET {url}: expected a JSON object, got {type(document).__name__}")
    return document, response.headers
