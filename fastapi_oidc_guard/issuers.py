"""Issuers whose bearer tokens are accepted: the configured one, an explicit allow-list of
others, or a resolver callback for multi-tenant apps.

Each issuer has its own discovery document, JWKS cache and audience, so key ids are never shared
across issuers. The token's ``iss`` is read from its (unverified) payload only to pick the
issuer; a token whose ``iss`` is not allowed is refused before any network request.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import httpx

from .config import GuardConfig, require_safe_url
from .discovery import DiscoveryCache
from .errors import ClaimError
from .jose import parse_compact
from .jwks import RemoteKeySet
from .verify import TokenVerifier

__all__ = ["IssuerStack", "IssuerVerifiers", "TrustedIssuer", "build_issuer_stack"]

_MAX_RESOLVED = 256


@dataclass(frozen=True)
class TrustedIssuer:
    """An issuer whose bearer tokens are accepted, and the audience they must carry."""

    issuer: str
    audience: str

    def __post_init__(self) -> None:
        require_safe_url(self.issuer, what="trusted issuer")


IssuerResolver = Callable[[str], Awaitable[TrustedIssuer | None]]


@dataclass(frozen=True)
class IssuerStack:
    discovery: DiscoveryCache
    keys: RemoteKeySet
    verifier: TokenVerifier


def build_issuer_stack(
    cfg: GuardConfig,
    *,
    issuer: str,
    audience: str | None,
    client: Callable[[], httpx.AsyncClient],
) -> IssuerStack:
    """Discovery, key set and verifier for one issuer, with the guard's settings."""
    discovery = DiscoveryCache(
        issuer=issuer, client=client, clock=cfg.clock, max_age=cfg.discovery_max_age
    )

    async def jwks_uri() -> str:
        return (await discovery.get()).jwks_uri

    keys = RemoteKeySet(
        jwks_uri=jwks_uri, client=client, clock=cfg.clock, algorithms=cfg.algorithms,
        max_age=cfg.jwks_max_age, min_max_age=cfg.jwks_min_max_age,
        max_max_age=cfg.jwks_max_max_age, cooldown=cfg.jwks_cooldown,
        stale_limit=cfg.jwks_stale_limit,
    )  # fmt: skip
    verifier = TokenVerifier(
        issuer=issuer, keys=keys, algorithms=cfg.algorithms, clock=cfg.clock,
        leeway=cfg.leeway, audience=audience, client_id=cfg.client_id,
        max_bytes=cfg.max_token_bytes, max_id_token_bytes=cfg.max_id_token_bytes,
        cache_size=cfg.token_cache_size, strict_typ=cfg.require_at_jwt,
    )  # fmt: skip
    return IssuerStack(discovery, keys, verifier)


class IssuerVerifiers:
    """Picks the verifier for a bearer token by its ``iss``; unknown issuers are refused."""

    def __init__(
        self,
        cfg: GuardConfig,
        primary: IssuerStack,
        *,
        client: Callable[[], httpx.AsyncClient],
        trusted: Iterable[TrustedIssuer] = (),
        resolver: IssuerResolver | None = None,
    ) -> None:
        self._cfg = cfg
        self._client = client
        self.primary = primary
        self._resolver = resolver
        self.stacks: dict[str, IssuerStack] = {cfg.issuer: primary}
        for item in trusted:
            self.stacks[item.issuer] = build_issuer_stack(
                cfg, issuer=item.issuer, audience=item.audience, client=client
            )
        self._resolved: OrderedDict[str, IssuerStack] = OrderedDict()
        self.single = len(self.stacks) == 1 and resolver is None

    async def for_token(self, token: str) -> TokenVerifier:
        if self.single:
            return self.primary.verifier
        claims = parse_compact(token, max_bytes=self._cfg.max_token_bytes).claims
        iss = claims.get("iss")
        if not isinstance(iss, str):
            raise ClaimError("iss", "missing")
        stack = self.stacks.get(iss) or self._resolved.get(iss)
        if stack is None and self._resolver is not None:
            trusted = await self._resolver(iss)
            if trusted is not None and trusted.issuer == iss:
                stack = build_issuer_stack(
                    self._cfg, issuer=iss, audience=trusted.audience, client=self._client
                )
                self._resolved[iss] = stack
                while len(self._resolved) > _MAX_RESOLVED:
                    self._resolved.popitem(last=False)
        if stack is None:
            raise ClaimError("iss", f"issuer {iss!r} is not trusted")
        return stack.verifier

    def all_stacks(self) -> list[IssuerStack]:
        return [*self.stacks.values(), *self._resolved.values()]
