"""The app as a client of its provider: discovery, the app's client authentication at the token
endpoint, and the shared HTTP client, in one collaborator. Every grant (code exchange, refresh,
client credentials) goes through :meth:`Provider.token`; the verbs themselves are ``flows``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from . import flows
from .client_auth import ClientCredentials
from .discovery import DiscoveryCache
from .errors import InvalidRequest, TemporarilyUnavailable, TokenRequestFailed
from .models import ProviderMetadata
from .token_sets import provider_refusal

__all__ = ["Provider"]


@dataclass(frozen=True, slots=True)
class Provider:
    discovery: DiscoveryCache
    credentials: ClientCredentials
    client: Callable[[], httpx.AsyncClient]

    async def metadata(self) -> ProviderMetadata:
        return await self.discovery.get()

    async def authorization_url(self, params: dict[str, str], *, push: bool | None) -> str:
        """Where to send the browser to log in: the parameters in the URL, or pushed first
        (RFC 9126) when ``push`` is true, or when it is ``None`` and the provider requires it
        (``require_pushed_authorization_requests``)."""
        metadata = await self.discovery.get()
        if push is None:
            push = metadata.require_pushed_authorization_requests
        if not push:
            if not metadata.authorization_endpoint:
                raise TemporarilyUnavailable("provider metadata has no authorization_endpoint")
            return flows.with_query(metadata.authorization_endpoint, params)
        try:
            return await flows.pushed_authorization_url(
                self.client(), metadata, self.credentials, params
            )
        except TokenRequestFailed as err:
            if err.error == "invalid_request":
                # The login asked something the provider refuses (a parameter the browser
                # passed, say): the browser's 400, as without PAR, not an outage.
                raise InvalidRequest(f"pushed authorization request refused: {err.error}") from err
            raise provider_refusal(err, what="pushed authorization request") from err

    async def token(self, data: dict[str, str]) -> dict[str, Any]:
        """POST ``data`` to the token endpoint with the app's client authentication; raises
        ``TokenRequestFailed`` (the provider's refusal) or ``TemporarilyUnavailable``."""
        metadata = await self.discovery.get()
        return await flows.token_request(self.client(), metadata, self.credentials, data)
