"""The app's own access tokens (OAuth 2.0 client credentials grant), for machine-to-machine
calls: cached per audience and scope until ``min_ttl`` before expiry, one grant in flight per
audience and scope however many requests need it."""

from __future__ import annotations

from collections.abc import Callable

from . import flows
from ._cache import BoundedCache
from ._flight import KeyedSingleFlight
from .config import AudienceParam
from .errors import TokenRequestFailed
from .models import AccessToken, TokenSet
from .provider import Provider
from .token_sets import Handout, fresh, provider_refusal, token_key

__all__ = ["MachineTokens"]


class MachineTokens:
    def __init__(
        self,
        *,
        provider: Provider,
        handout: Handout,
        audience_param: AudienceParam,
        clock: Callable[[], float],
    ) -> None:
        self._provider = provider
        self._handout = handout
        self._audience_param = audience_param
        self._clock = clock
        self._tokens: BoundedCache[str, TokenSet] = BoundedCache(1024)
        self._flights: KeyedSingleFlight[str, TokenSet] = KeyedSingleFlight()

    async def client_credentials(
        self, *, audience: str | None, scope: str | None, min_ttl: float
    ) -> AccessToken:
        """A client-credentials token for the app itself, cached until ``min_ttl`` before expiry."""
        key = token_key(audience, scope)
        tokens = fresh(self._tokens.get(key), min_ttl, now=self._clock())
        if tokens is None:
            tokens = await self._flights.run(key, lambda: self._grant(audience, scope))
            self._handout.just_issued(tokens)
        return self._handout(tokens, expected_audience=audience)

    async def _grant(self, audience: str | None, scope: str | None) -> TokenSet:
        data = flows.client_credentials_grant(
            audience=audience, scope=scope, style=self._audience_param
        )
        try:
            document = await self._provider.token(data)
        except TokenRequestFailed as err:
            raise provider_refusal(err, what="client credentials grant") from err
        tokens = flows.token_set(document, now=self._clock(), audience=audience, scope=scope)
        self._tokens.put(token_key(audience, scope), tokens)
        return tokens
