"""The app as a client of its provider: discovery, the app's client authentication at the token
endpoint, and the shared HTTP client, in one collaborator. Every grant (code exchange, refresh,
client credentials) goes through :meth:`Provider.token`; the verbs themselves are ``flows``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from . import flows
from .discovery import DiscoveryCache
from .models import ProviderMetadata

__all__ = ["Provider"]


@dataclass(frozen=True, slots=True)
class Provider:
    discovery: DiscoveryCache
    credentials: flows.ClientCredentials
    client: Callable[[], httpx.AsyncClient]

    async def metadata(self) -> ProviderMetadata:
        return await self.discovery.get()

    async def token(self, data: dict[str, str]) -> dict[str, Any]:
        """POST ``data`` to the token endpoint with the app's client authentication; raises
        ``TokenRequestFailed`` (the provider's refusal) or ``TemporarilyUnavailable``."""
        metadata = await self.discovery.get()
        return await flows.token_request(self.client(), metadata, self.credentials, data)
