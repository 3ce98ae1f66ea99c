"""OAuth 2.0 Token Introspection (RFC 7662) for bearer tokens the API cannot verify itself
(opaque tokens), or all of them when deactivation must take effect at once.

``OIDC_TOKEN_VALIDATION`` chooses: ``local`` (JWTs only, the default), ``introspect_opaque``
(tokens that are not compact JWS: the provider is asked), ``introspect_all``.

For a token, in this order:

1. cheap checks (size, characters) before any I/O;
2. the cache (keyed by the SHA-256 of the token, never the token): an answer is reused until
   the token's ``exp`` or ``introspection_cache_ttl``, whichever comes first, an inactive one
   for ``introspection_inactive_ttl``; the clock checks run on every hit. With Redis the
   provider's raw answers are shared by every instance, each sealed (AES-GCM, bound to the
   token's hash: an entry written by someone else, or copied to another token's key, is no
   entry) and judged by each reader's own rules (two APIs on one Redis never share a verdict);
3. one introspection call per token however many requests wait for it (single flight), with
   the app's client authentication, to the discovery document's ``introspection_endpoint``;
4. the answer: ``active`` must be ``true``; ``iss``, when present, the configured issuer;
   ``aud`` one of the API's audiences (the JWT rules); ``exp``, ``nbf``, ``iat`` as for a JWT;
   ``token_type`` (or Keycloak's ``typ``) ``Bearer`` or ``DPoP``: an answer that does not
   say it is an access token is refused (oidc-provider omits it for refresh tokens);
   a ``sub`` (or, for client-credentials tokens, ``client_id`` as the subject).

The provider down, slow, answering garbage or refusing the app's credentials is 503, never
401 and never "accept".
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
from collections.abc import Callable
from typing import Any, Protocol, TypeGuard, TypeVar

import httpx

from ._cache import BoundedCache
from ._flight import KeyedSingleFlight
from ._json import loads_strict
from .config import GuardConfig
from .errors import (
    ClaimError,
    InvalidIssuer,
    InvalidToken,
    MalformedToken,
    TemporarilyUnavailable,
    TokenBindingMismatch,
    WrongTokenType,
)
from .provider import Provider
from .sessions.sealing import Sealer
from .verify import TokenTimes, check_audience, check_times, check_times_at, token_times
from .websocket_auth import B64TOKEN

__all__ = ["Introspector", "ValueStore"]

logger = logging.getLogger("fastapi_oidc_guard")
T = TypeVar("T")
PURPOSE = "introspection"
# A cache entry: the checked claims and their times (parsed once), or the inactive marker.
Entry = tuple[dict[str, Any], TokenTimes]
_INACTIVE: Entry = ({}, TokenTimes(0.0, None, None))


class ValueStore(Protocol):
    """A shared key-value store with expiry (the Redis client)."""

    async def get_value(self, name: str) -> bytes | None: ...

    async def put_value(self, name: str, value: str, *, ttl: float) -> None: ...


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


class Introspector:
    """Asks the provider about tokens (see the module docstring); a ``TokenSource`` of the
    authenticator."""

    def __init__(
        self,
        *,
        config: GuardConfig,
        provider: Provider,
        shared: ValueStore | None = None,
        sealer: Sealer | None = None,
        size: int = 10_000,
    ) -> None:
        self._cfg = config
        self._provider = provider
        self._shared = shared if sealer is not None else None
        self._sealer = sealer
        self._clock = config.clock
        self._cache: BoundedCache[str, Entry] = BoundedCache(size, clock=config.clock)
        self._flights: KeyedSingleFlight[str, Entry] = KeyedSingleFlight()
        self.calls = 0  # introspection requests made (tests, metrics)

    def handles(self, token: str) -> bool:
        mode = self._cfg.token_validation
        return mode == "introspect_all" or (mode == "introspect_opaque" and token.count(".") != 2)

    async def principal(self, token: str, build: Callable[[dict[str, Any]], T]) -> T:
        return build(await self.claims(token))

    async def claims(self, token: str) -> dict[str, Any]:
        """The verified claims of an active token; ``InvalidToken`` otherwise."""
        if len(token) > self._cfg.max_token_bytes or not set(token) <= B64TOKEN:
            raise MalformedToken("token too long or outside the b64token characters")
        digest = _digest(token)
        entry = self._cache.get(digest)
        if entry is None:
            entry = await self._flights.run(digest, lambda: self._lookup(token, digest))
        if entry is _INACTIVE:
            raise InvalidToken("the provider says the token is not active")
        claims, times = entry
        check_times_at(times, now=self._clock(), leeway=self._cfg.leeway)  # on every hit
        return claims

    def _ttl(self, answer: dict[str, Any]) -> float:
        """How long this app reuses ``answer``: the cache TTL when active, else the short one."""
        active = answer.get("active") is True
        return self._cfg.introspection_cache_ttl if active else self._cfg.introspection_inactive_ttl

    async def _lookup(self, token: str, digest: str) -> Entry:
        """The provider's answer (from the shared cache, or asked), checked here by this app's
        rules: only the provider's raw answer is shared, never a verdict that depends on one
        app's audience or issuer (two APIs on one Redis each judge it themselves)."""
        now = self._clock()
        shared = await self._shared_entry(digest)
        shared_until: float | None = None
        if shared is not None:
            answer, writer_until, fetched = shared
            # Never past what the writer promised, and never older than this app's own TTL
            # allows: a reader with a shorter TTL sees a revocation as soon as it would have.
            shared_until = min(writer_until, fetched + self._ttl(answer))
        if shared is None or shared_until is None or shared_until <= now:
            answer, shared_until = await self._introspect(token), None
        entry = _INACTIVE
        try:
            claims = self._checked(answer)
            entry = (claims, token_times(claims))
        except InvalidToken as err:
            logger.info("introspection: token refused: %s", err)
        until = now + self._cfg.introspection_inactive_ttl
        if entry is not _INACTIVE:
            until = min(entry[1].exp, now + self._cfg.introspection_cache_ttl)
        if shared_until is not None:
            until = min(until, shared_until)
        else:  # asked the provider just now: publish its answer for the other instances
            share_until = now + self._ttl(answer)
            exp = answer.get("exp")
            if isinstance(exp, int | float) and not isinstance(exp, bool) and exp < share_until:
                share_until = float(exp)
            if share_until > now:
                await self._share(digest, answer, share_until)
        if until > now:
            self._cache.put(digest, entry, expires_at=until)
        return entry

    async def _introspect(self, token: str) -> dict[str, Any]:
        metadata = await self._provider.metadata()
        endpoint = metadata.introspection_endpoint
        if not endpoint:
            logger.error("OIDC_TOKEN_VALIDATION asks for introspection, and the provider's "
                         "discovery document has no introspection_endpoint")  # fmt: skip
            raise TemporarilyUnavailable("the provider has no introspection endpoint")
        body = {"token": token, "token_type_hint": "access_token"}
        headers = {"Accept": "application/json"}
        self._provider.credentials.apply(body, headers, metadata=metadata)
        self.calls += 1
        try:
            response = await self._provider.client().post(endpoint, data=body, headers=headers)
        except httpx.HTTPError as err:
            raise TemporarilyUnavailable(f"introspection: {type(err).__name__}") from err
        if response.status_code in (401, 403):
            logger.error("introspection endpoint refused the app's credentials (%s): check "
                         "OIDC_CLIENT_ID and its secret or key", response.status_code)  # fmt: skip
        try:
            document = loads_strict(response.content)
        except (ValueError, RecursionError):
            document = None
        if response.status_code != 200 or not isinstance(document, dict):
            raise TemporarilyUnavailable(f"introspection answered status {response.status_code}")
        return document

    def _checked(self, answer: dict[str, Any]) -> dict[str, Any]:
        """The answer's claims, every rule of the module docstring applied."""
        if answer.get("active") is not True:
            raise InvalidToken("the provider says the token is not active")
        claims = {k: v for k, v in answer.items() if k != "active"}
        iss = claims.get("iss")
        if iss is not None and iss != self._cfg.issuer:
            raise InvalidIssuer("iss", f"introspected token of issuer {str(iss)[:128]!r}")
        check_audience(claims, self._cfg.audiences, claim=self._cfg.audience_claim)
        token_type = claims.get("token_type", claims.get("typ"))  # typ: Keycloak's answers
        if not isinstance(token_type, str) or token_type.lower() not in ("bearer", "dpop"):
            # oidc-provider answers for a refresh token without token_type: an answer that
            # does not say "access token" is never taken for one.
            raise WrongTokenType(f"token_type {str(token_type)[:32]!r} is not an access token")
        cnf = claims.get("cnf")
        if token_type.lower() == "dpop" and not (
            isinstance(cnf, dict) and isinstance(cnf.get("jkt"), str)
        ):
            raise TokenBindingMismatch("token_type DPoP without the key it is bound to (cnf.jkt)")
        if "exp" not in claims:
            claims["exp"] = math.floor(self._clock()) + self._cfg.introspection_cache_ttl
        check_times(claims, now=self._clock(), leeway=self._cfg.leeway)  # a huge exp refuses
        if "sub" not in claims and isinstance(claims.get("client_id"), str):
            claims["sub"] = claims["client_id"]  # a client-credentials token: the client
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise ClaimError("sub", "missing from the introspection answer")
        return claims

    # -- the shared cache ---------------------------------------------------------------------

    async def _shared_entry(self, digest: str) -> tuple[dict[str, Any], float, float] | None:
        if self._shared is None or self._sealer is None:
            return None
        raw = await self._shared.get_value("introspect:" + digest)
        if raw is None:
            return None
        try:
            value = raw.decode("ascii")
        except UnicodeDecodeError:
            return None
        payload = self._sealer.open(value, purpose=PURPOSE)
        if not isinstance(payload, dict) or not hmac.compare_digest(
            str(payload.get("t", "")), digest
        ):
            return None  # not ours, or another token's entry copied here
        answer, until, fetched = payload.get("a"), payload.get("u"), payload.get("f")
        if not isinstance(answer, dict) or not (_number(until) and _number(fetched)):
            return None
        return answer, float(until), float(fetched)

    async def _share(self, digest: str, answer: dict[str, Any], until: float) -> None:
        """Publish the provider's raw answer (each reader applies its own rules)."""
        if self._shared is None or self._sealer is None:
            return
        ttl = until - self._clock()
        payload = {"t": digest, "a": answer, "u": until, "f": self._clock()}
        sealed = self._sealer.seal(payload, purpose=PURPOSE, expires_at=until)
        await self._shared.put_value("introspect:" + digest, sealed, ttl=ttl)


def _number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)
