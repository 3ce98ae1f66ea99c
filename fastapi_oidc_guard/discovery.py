"""OpenID Provider metadata: fetch ``/.well-known/openid-configuration``, check it, cache it."""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
from pydantic import ValidationError

from ._flight import SingleFlight
from ._http import fetch_json
from .config import require_safe_url
from .errors import ConfigurationError, DiscoveryError
from .models import ProviderMetadata

__all__ = ["DiscoveryCache", "discovery_url", "parse_metadata"]

logger = logging.getLogger("fastapi_oidc_guard.discovery")

_ENDPOINTS = (
    "jwks_uri",
    "authorization_endpoint",
    "token_endpoint",
    "userinfo_endpoint",
    "end_session_endpoint",
    "revocation_endpoint",
    "introspection_endpoint",
)


def discovery_url(issuer: str) -> str:
    """The discovery URL of ``issuer`` (OpenID Connect Discovery 1.0, section 4)."""
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def parse_metadata(document: dict[str, object], *, issuer: str) -> ProviderMetadata:
    """Validate a discovery document; its ``issuer`` must equal the configured one exactly."""
    try:
        metadata = ProviderMetadata.model_validate(document)
    except ValidationError as err:
        raise DiscoveryError("discovery document lacks issuer or jwks_uri") from err
    if metadata.issuer != issuer:
        raise DiscoveryError(
            f"discovery issuer mismatch: expected {issuer!r}, got {metadata.issuer!r}"
        )
    for name in _ENDPOINTS:
        url = getattr(metadata, name)
        if url is None:
            continue
        try:
            require_safe_url(url, what=f"discovery {name}")
        except ConfigurationError as err:
            raise DiscoveryError(str(err)) from err
    return metadata


class DiscoveryCache:
    """Caches the provider metadata for ``max_age`` seconds; on a failed refresh keeps the old."""

    def __init__(
        self,
        *,
        issuer: str,
        client: Callable[[], httpx.AsyncClient],
        clock: Callable[[], float],
        max_age: float,
    ) -> None:
        self.issuer = issuer
        self._client = client
        self._clock = clock
        self._max_age = max_age
        self._metadata: ProviderMetadata | None = None
        self._expires_at = 0.0
        self._flight: SingleFlight[ProviderMetadata] = SingleFlight(self._fetch)

    @property
    def cached(self) -> ProviderMetadata | None:
        return self._metadata

    async def get(self) -> ProviderMetadata:
        """The metadata; fetched on first use, refreshed after ``max_age`` (single flight)."""
        metadata = self._metadata
        if metadata is not None and self._clock() < self._expires_at:
            return metadata
        try:
            return await self._flight.run()
        except DiscoveryError:
            if metadata is None:
                raise
            logger.warning("discovery refresh failed; serving the cached document")
            return metadata

    async def _fetch(self) -> ProviderMetadata:
        document, _ = await fetch_json(
            self._client(), discovery_url(self.issuer), error=DiscoveryError
        )
        metadata = parse_metadata(document, issuer=self.issuer)
        self._metadata = metadata
        self._expires_at = self._clock() + self._max_age
        return metadata

    def close(self) -> None:
        self._flight.cancel()
