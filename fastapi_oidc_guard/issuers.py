"""Issuers whose bearer tokens are accepted: the configured one, an explicit allow-list of
others, or a resolver callback for multi-tenant apps.

Each issuer has its own discovery document, JWKS cache and audience, so key ids are never shared
across issuers. The token's ``iss`` is read from its (unverified) payload only to pick the
issuer; a token whose ``iss`` is not allowed is refused before any network request.

Resolver probation: an issuer the resolver approves is a *newcomer* until a token from it has
verified; only then does it join the cache of verified tenants (bounded LRU). A token is checked
for expiry and audience before it may make a newcomer (so expired or foreign junk costs
nothing). Newcomers live in a small separate cache, and every fetch their stacks make
(discovery, JWKS, refetches) is charged to one shared budget (``resolver_fetch_budget`` fetches
per ``resolver_budget_interval`` seconds), so tokens naming thousands of junk tenants can
neither evict a verified tenant nor drive unbounded outbound requests: past the budget a
newcomer's token is ``503 temporarily_unavailable`` until the interval renews.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from ._cache import BoundedCache
from .config import GuardConfig, as_audiences, require_safe_url
from .discovery import DiscoveryCache
from .errors import InvalidIssuer, TemporarilyUnavailable
from .jose import parse_compact
from .jwks import KeySet, RemoteKeySet
from .verify import TokenVerifier, check_audience, check_times

__all__ = [
    "IssuerStack",
    "IssuerVerifiers",
    "TrustedIssuer",
    "build_issuer_stack",
    "build_verifier",
]

_MAX_RESOLVED = 256
_MAX_NEWCOMERS = 16
T = TypeVar("T")


@dataclass(frozen=True)
class TrustedIssuer:
    """An issuer whose bearer tokens are accepted, and the audience they must carry (one
    identifier, or a tuple of them: one of them must be among the token's audiences)."""

    issuer: str
    audience: str | tuple[str, ...]
    #: The app's client id at that issuer, when it has one: its ID tokens (``aud`` = this id)
    #: are then recognised and refused as bearer tokens even without nonce/at_hash.
    client_id: str | None = None

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
    audience: str | tuple[str, ...] | None,
    client: Callable[[], httpx.AsyncClient],
    client_id: str | None = None,
) -> IssuerStack:
    """Discovery, key set and verifier for one issuer, with the guard's settings
    (``client_id``: the app's client at that issuer; the configured one for the primary)."""
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
    verifier = build_verifier(cfg, issuer=issuer, audience=audience, client_id=client_id, keys=keys)
    return IssuerStack(discovery, keys, verifier)


def build_verifier(
    cfg: GuardConfig,
    *,
    issuer: str,
    audience: str | tuple[str, ...] | None,
    client_id: str | None,
    keys: KeySet,
) -> TokenVerifier:
    """The verifier for one issuer with the guard's settings, on any key set (a
    :class:`RemoteKeySet` in the app; a :class:`StaticKeySet` in verification tests)."""
    return TokenVerifier(
        issuer=issuer, keys=keys, algorithms=cfg.algorithms, clock=cfg.clock,
        leeway=cfg.leeway, audience=audience, client_id=client_id,
        max_bytes=cfg.max_token_bytes, max_id_token_bytes=cfg.max_id_token_bytes,
        cache_size=cfg.token_cache_size, strict_typ=cfg.require_at_jwt,
        audience_claim=cfg.audience_claim, legacy_logout=cfg.legacy_logout_tokens,
    )  # fmt: skip


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
                cfg, issuer=item.issuer, audience=item.audience, client=client,
                client_id=item.client_id,
            )  # fmt: skip
        # In-flight fetches of an evicted stack finish on their own.
        self._resolved: BoundedCache[str, IssuerStack] = BoundedCache(_MAX_RESOLVED)  # verified
        self._newcomers: BoundedCache[str, IssuerStack] = BoundedCache(_MAX_NEWCOMERS)  # probation
        self._budget_start, self._budget_used = float("-inf"), 0
        self.single = len(self.stacks) == 1 and resolver is None

    async def principal(self, token: str, build: Callable[[dict[str, Any]], T]) -> T:
        """``build(claims)`` for a valid bearer token of any accepted issuer; a newcomer
        approved by the resolver joins the verified tenants once its token verified."""
        if self.single:
            return await self.primary.verifier.access_principal(token, build)
        iss, stack = await self._stack_for(token)
        result = await stack.verifier.access_principal(token, build)
        if self._newcomers.pop(iss) is not None:
            self._resolved.put(iss, stack)
        return result

    async def for_token(self, token: str) -> TokenVerifier:
        """The verifier for the token's issuer (a newcomer stays on probation)."""
        if self.single:
            return self.primary.verifier
        return (await self._stack_for(token))[1].verifier

    async def _stack_for(self, token: str) -> tuple[str, IssuerStack]:
        claims = parse_compact(token, max_bytes=self._cfg.max_token_bytes).claims
        iss = claims.get("iss")
        if not isinstance(iss, str):
            raise InvalidIssuer("iss", "missing")
        stack = self.stacks.get(iss) or self._resolved.get(iss) or self._newcomers.get(iss)
        if stack is None and self._resolver is not None:
            trusted = await self._resolver(iss)
            if trusted is not None and trusted.issuer == iss:
                # Checks that need no network first: expired or foreign junk costs nothing.
                check_times(claims, now=self._cfg.clock(), leeway=self._cfg.leeway)
                check_audience(claims, as_audiences(trusted.audience),
                               claim=self._cfg.audience_claim)  # fmt: skip
                stack = build_issuer_stack(
                    self._cfg, issuer=iss, audience=trusted.audience, client_id=trusted.client_id,
                    client=lambda: self._budgeted_client(iss),
                )  # fmt: skip
                self._newcomers.put(iss, stack)
        if stack is None:
            raise InvalidIssuer("iss", f"issuer {iss!r} is not trusted")
        return iss, stack

    def _budgeted_client(self, iss: str) -> httpx.AsyncClient:
        """The client, for one fetch by ``iss``'s stack: charged to the newcomers' budget while
        ``iss`` is on probation (every discovery and JWKS fetch, refetches included)."""
        if iss in self._newcomers:
            now = self._cfg.clock()
            if now - self._budget_start >= self._cfg.resolver_budget_interval:
                self._budget_start, self._budget_used = now, 0
            if self._budget_used >= self._cfg.resolver_fetch_budget:
                raise TemporarilyUnavailable(
                    f"new issuer {iss!r}: the fetch budget for issuers not yet verified is spent"
                )
            self._budget_used += 1
        return self._client()

    def all_stacks(self) -> list[IssuerStack]:
        return [*self.stacks.values(), *self._resolved.values(), *self._newcomers.values()]
