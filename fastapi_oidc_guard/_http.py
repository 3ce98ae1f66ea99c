"""The one shared ``httpx.AsyncClient`` and strict JSON fetching from the provider."""

from __future__ import annotations

import json
from typing import Any

import httpx

from .errors import TemporarilyUnavailable

__all__ = ["build_client", "fetch_json", "loads_strict"]

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


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key in JSON object")
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


# One decoder for the process: json.loads(..., hooks) would build a new one on every call.
_STRICT_DECODER = json.JSONDecoder(
    object_pairs_hook=_reject_duplicates, parse_constant=_no_constants
)


def loads_strict(data: bytes | str) -> Any:
    """``json.loads`` that rejects duplicate keys and NaN/Infinity; raises ``ValueError``."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    return _STRICT_DECODER.decode(text)


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
