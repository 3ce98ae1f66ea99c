"""Access tokens for other APIs: per-audience token sets in the session, refresh, and
client-credentials tokens for machine-to-machine calls.

Refresh is single flight per session in this process: concurrent requests of one user share one
call to the token endpoint. Because refresh tokens rotate (and providers revoke the whole grant
when a rotated one is used again), the outcome of a refresh is also remembered for a short while
under the refresh token it spent: a request that still carries the old cookie (sent before the
browser received the new one) gets the new tokens instead of spending the old token again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import httpx

from . import flows
from ._http import loads_strict
from .config import GuardConfig
from .discovery import DiscoveryCache
from .errors import (
    InvalidToken,
    LoginRequired,
    NoRefreshToken,
    SessionTooLarge,
    TemporarilyUnavailable,
    TokenRequestFailed,
)
from .models import AccessToken, SessionData, TokenSet
from .sessions.manager import SessionManager
from .verify import TokenVerifier


class TokenHost(Protocol):
    """What :class:`TokenService` uses of the guard that builds it (no import of ``guard``)."""

    config: GuardConfig
    sessions: SessionManager | None
    discovery: DiscoveryCache
    credentials: flows.ClientCredentials
    verifier: TokenVerifier

    def http_client(self) -> httpx.AsyncClient: ...


__all__ = ["Persist", "SeenIds", "TokenHost", "TokenService", "provider_refusal", "token_key"]

logger = logging.getLogger("fastapi_oidc_guard.tokens")

_REMEMBER_REFRESH = 60.0
_USERINFO_TTL = 60.0
Persist = Callable[[SessionData], Awaitable[None]]
# Token-endpoint errors that mean our own client registration or settings are wrong.
_OUR_CONFIGURATION = {
    "invalid_client": "OIDC_CLIENT_ID / OIDC_CLIENT_SECRET and token_endpoint_auth",
    "unauthorized_client": "the grant types allowed for OIDC_CLIENT_ID at the provider",
    "unsupported_grant_type": "the grant types allowed for OIDC_CLIENT_ID at the provider",
    "invalid_scope": "OIDC_SCOPE and the scopes asked by access_token(scope=...)",
    "invalid_target": "OIDC_AUDIENCE and the audiences asked by access_token(audience=...)",
}


def provider_refusal(err: TokenRequestFailed, *, what: str) -> TemporarilyUnavailable:
    """A token-endpoint refusal that is not the user's doing, as a 503 (never a 4xx to a
    caller who did nothing wrong); refusals that mean our configuration is wrong are logged at
    ERROR with the settings to check."""
    setting = _OUR_CONFIGURATION.get(err.error)
    if setting is not None:
        logger.error(
            "%s refused with %s: the provider says this app is misconfigured; check %s",
            what, err.error, setting,
        )  # fmt: skip
    else:
        logger.warning("%s refused with %s", what, err.error)
    return TemporarilyUnavailable(f"{what} refused: {err.error}")


def token_key(audience: str | None, scope: str | None) -> str:
    return f"{audience or ''}|{scope or ''}"


def _fingerprint(refresh_token: str) -> str:
    return hashlib.sha256(refresh_token.encode()).hexdigest()


class TokenService:
    """Gets fresh access tokens for a session or for the app itself (client credentials)."""

    def __init__(self, guard: TokenHost) -> None:
        self._guard = guard
        self._clock = guard.config.clock
        self._flights: dict[str, asyncio.Task[tuple[SessionData, bool]]] = {}
        self._recent: OrderedDict[str, tuple[float, SessionData]] = OrderedDict()
        self._machine: dict[str, TokenSet] = {}
        self._machine_flights: dict[str, asyncio.Task[TokenSet]] = {}
        self._userinfo: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._warned_opaque = False
        self._warned_short = False

    def key(self, audience: str | None, scope: str | None) -> str:
        """Where a session keeps the tokens for ``audience``/``scope`` (default: login scope)."""
        return token_key(audience, scope or self._guard.config.scope)

    # -- user tokens --------------------------------------------------------------------------

    async def for_session(
        self,
        session: SessionData,
        *,
        audience: str | None,
        scope: str | None,
        min_ttl: float,
        persist: Persist,
        force_refresh: bool = False,
        can_refresh: bool = True,
    ) -> AccessToken:
        """A token for ``audience``/``scope`` valid for more than ``min_ttl`` seconds.

        Whatever the provider does with refresh tokens (rotating them, keeping them, returning
        none), a token that expires within ``min_ttl`` is never handed out from the session or
        from the memory of recent refreshes: it is refreshed. Only a token the provider has just
        issued may live less than ``min_ttl`` (its lifetime is shorter: logged once), and an
        already expired one is never handed out. ``force_refresh`` refreshes in any case.

        ``persist`` writes the updated session when a refresh happened; it raises
        ``SessionEnded`` when the session ended while the refresh was in flight (a logout is
        never undone by a refresh), and then no token is handed out.
        """
        key = self.key(audience, scope)
        tokens = None if force_refresh else self._fresh(session.tokens.get(key), min_ttl)
        if tokens is None and not can_refresh:
            raise LoginRequired("the access token needs a refresh that cannot be saved here")
        if tokens is None:
            session = await self._refresh(
                session, audience=audience, scope=scope, min_ttl=min_ttl, force=force_refresh
            )
            try:
                await persist(session)
            except SessionTooLarge:
                # The provider may already have rotated the refresh token: losing it would
                # end the session later. Keep it, and this audience's tokens only.
                logger.warning("session too large with every audience's tokens: kept %r only", key)
                session = session.model_copy(update={"tokens": {key: session.tokens[key]}})
                await persist(session)
            tokens = session.tokens.get(key)
            if tokens is None:
                raise LoginRequired("refresh did not produce a token for this audience")
            if self._fresh(tokens, 0.0) is None:
                raise TemporarilyUnavailable("the provider issued an access token already expired")
            if self._fresh(tokens, min_ttl) is None and not self._warned_short:
                self._warned_short = True
                logger.warning(
                    "the provider's access tokens live less than min_ttl=%s s: a just-issued "
                    "token is handed out anyway; lower min_ttl", min_ttl,
                )  # fmt: skip
        return self._hand_out(tokens, expected_audience=audience)

    def _fresh(self, tokens: TokenSet | None, min_ttl: float) -> TokenSet | None:
        """``tokens`` if they stay valid for more than ``min_ttl`` seconds, else ``None``."""
        if tokens is None:
            return None
        if tokens.expires_at is not None and tokens.expires_at - self._clock() <= min_ttl:
            return None
        return tokens

    def _hand_out(self, tokens: TokenSet, *, expected_audience: str | None) -> AccessToken:
        self.diagnose(tokens.access_token, expected_audience=expected_audience)
        return AccessToken(
            token=tokens.access_token, token_type=tokens.token_type,
            expires_at=tokens.expires_at, scope=tokens.scope, audience=tokens.audience,
        )  # fmt: skip

    async def _refresh(
        self,
        session: SessionData,
        *,
        audience: str | None,
        scope: str | None,
        min_ttl: float,
        force: bool = False,
        depth: int = 0,
    ) -> SessionData:
        """The session with a token for ``audience``/``scope``, refreshed at most once per
        refresh token, never spending a refresh token that is known to have rotated: a
        concurrent request's (or another process's) outcome is reused when fresh enough, and
        continued from (its newer refresh token) when not, or when a refresh is forced."""
        if not session.refresh_token:
            raise NoRefreshToken("expired access token and no refresh token in the session")
        key = self.key(audience, scope)
        fingerprint = _fingerprint(session.refresh_token)
        recent = self._recent.get(fingerprint)
        if recent is not None and self._clock() - recent[0] < _REMEMBER_REFRESH:
            refreshed = recent[1]
            if not force and self._fresh(refreshed.tokens.get(key), min_ttl) is not None:
                return refreshed  # a concurrent request's outcome, still fresh enough
            if refreshed.refresh_token != session.refresh_token:
                session = refreshed  # it rotated: continue from the newest refresh token
                fingerprint = _fingerprint(session.refresh_token or "")
        flight = self._flights.get(fingerprint)
        if flight is None or flight.done():
            flight = asyncio.ensure_future(
                self._do_refresh(session, audience, scope, min_ttl, force=force)
            )
            self._flights[fingerprint] = flight
            flight.add_done_callback(lambda _: self._flights.pop(fingerprint, None))
        refreshed, ours = await asyncio.shield(flight)
        usable = key in refreshed.tokens and (
            ours or (not force and self._fresh(refreshed.tokens[key], min_ttl) is not None)
        )
        if not usable and depth < 3:  # another audience's, or another process's outcome
            return await self._refresh(
                refreshed, audience=audience, scope=scope, min_ttl=min_ttl, force=force,
                depth=depth + 1,
            )  # fmt: skip
        return refreshed

    async def _do_refresh(
        self,
        session: SessionData,
        audience: str | None,
        scope: str | None,
        min_ttl: float,
        *,
        force: bool = False,
    ) -> tuple[SessionData, bool]:
        """Refresh at the provider (the flag is True) or, with a shared backend, under a
        cross-process lock, reuse what another process published for this refresh token (the
        flag is False): its outcome when fresh enough, and always when the refresh token
        rotated there, since spending it again would make the provider revoke the grant."""
        backend = self._guard.sessions.shared if self._guard.sessions else None
        if backend is None:
            return await self._refresh_at_provider(session, audience, scope), True
        assert session.refresh_token is not None
        name = "refresh:" + _fingerprint(session.refresh_token)
        wait = 2 * self._guard.config.http_timeout + 1
        async with backend.lock(name, ttl=wait + 5, wait=wait):
            done = await backend.shared(name)
            if done is not None and done.sub == session.sub:
                self._remember(_fingerprint(session.refresh_token), done, self._clock())
                fresh = self._fresh(done.tokens.get(self.key(audience, scope)), min_ttl)
                if done.refresh_token != session.refresh_token or (not force and fresh):
                    return done, False
            refreshed = await self._refresh_at_provider(session, audience, scope)
            await backend.share(name, refreshed, ttl=_REMEMBER_REFRESH)
            return refreshed, True

    async def _refresh_at_provider(
        self, session: SessionData, audience: str | None, scope: str | None
    ) -> SessionData:
        guard, cfg = self._guard, self._guard.config
        assert session.refresh_token is not None
        metadata = await guard.discovery.get()
        data = {"grant_type": "refresh_token", "refresh_token": session.refresh_token,
                **flows.audience_params(audience, cfg.audience_param)}  # fmt: skip
        if scope:
            data["scope"] = scope
        try:
            document = await flows.token_request(
                guard.http_client(), metadata, guard.credentials, data
            )
        except TokenRequestFailed as err:
            if err.error == "invalid_grant":
                raise LoginRequired(
                    f"refresh refused ({err.error}): the session ended", end_session=True
                ) from err
            raise provider_refusal(err, what="refresh") from err
        now = self._clock()
        key = self.key(audience, scope)
        previous = session.tokens.get(key)
        # Without a scope in the answer, the grant's scope is unchanged (RFC 6749 section 6):
        # what this key held before, else what the app asked, else the configured scope.
        unchanged = (previous.scope if previous else None) or scope or cfg.scope
        tokens = flows.token_set(document, now=now, audience=audience, scope=unchanged)
        updates: dict[str, object] = {"tokens": {**session.tokens, key: tokens}}
        rotated = document.get("refresh_token")
        if isinstance(rotated, str) and rotated:
            updates["refresh_token"] = rotated
        id_token = document.get("id_token")
        if isinstance(id_token, str):
            try:
                claims = await guard.verifier.verify_id_token(id_token, nonce=None)
            except InvalidToken as err:
                raise LoginRequired(
                    f"refreshed ID token rejected: {err}", end_session=True
                ) from err
            if claims.get("sub") != session.sub:
                raise LoginRequired("refreshed ID token is for another user", end_session=True)
            updates["id_token"] = id_token
        refreshed = session.model_copy(update=updates)
        self._remember(_fingerprint(session.refresh_token), refreshed, now)
        return refreshed

    def _remember(self, fingerprint: str, session: SessionData, now: float) -> None:
        self._recent[fingerprint] = (now, session)
        while self._recent and (
            len(self._recent) > 10_000 or now - next(iter(self._recent.values()))[0] > 60
        ):
            self._recent.popitem(last=False)

    def diagnose(self, access_token: str, *, expected_audience: str | None) -> None:
        """Warn once per process when an access token is opaque (the audience trap)."""
        if access_token.count(".") == 2 or self._warned_opaque:
            return
        self._warned_opaque = True
        if expected_audience:
            logger.warning(
                "access token for audience %r is opaque, not a JWT: the provider does not know "
                "that API. Register it at the provider and use its identifier as the audience.",
                expected_audience,
            )
        else:
            logger.warning(
                "the access token is opaque because no audience was asked: your API cannot "
                "validate it. Set OIDC_AUDIENCE (or access_token(audience=...)) to your API's "
                "identifier as registered at the provider."
            )

    # -- userinfo -----------------------------------------------------------------------------

    async def userinfo(
        self, session: SessionData, *, persist: Persist, can_refresh: bool = True
    ) -> dict[str, Any]:
        """The userinfo endpoint's claims for ``session``, cached per session for 60 s."""
        now = self._clock()
        cached = self._userinfo.get(session.id)
        if cached is not None and now - cached[0] < _USERINFO_TTL:
            return cached[1]
        guard = self._guard
        token = await self.for_session(
            session, audience=guard.config.audience, scope=None, min_ttl=10, persist=persist,
            can_refresh=can_refresh,
        )  # fmt: skip
        metadata = await guard.discovery.get()
        if not metadata.userinfo_endpoint:
            raise TemporarilyUnavailable("the provider has no userinfo_endpoint")
        try:
            response = await guard.http_client().get(
                metadata.userinfo_endpoint, headers={"Authorization": token.authorization}
            )
        except httpx.HTTPError as err:
            raise TemporarilyUnavailable(f"userinfo failed: {type(err).__name__}") from err
        if response.status_code in (401, 403):
            raise LoginRequired(f"userinfo refused the access token ({response.status_code})")
        try:
            claims = loads_strict(response.content) if response.status_code == 200 else None
        except ValueError:
            claims = None
        if not isinstance(claims, dict):
            raise TemporarilyUnavailable(f"userinfo answered {response.status_code}")
        self._userinfo[session.id] = (now, claims)
        while len(self._userinfo) > 10_000:
            self._userinfo.popitem(last=False)
        return claims

    # -- machine-to-machine -------------------------------------------------------------------

    async def client_credentials(
        self, *, audience: str | None, scope: str | None, min_ttl: float
    ) -> AccessToken:
        """A client-credentials token for the app itself, cached until ``min_ttl`` before expiry."""
        key = token_key(audience, scope)
        tokens = self._fresh(self._machine.get(key), min_ttl)
        if tokens is None:
            flight = self._machine_flights.get(key)
            if flight is None or flight.done():
                flight = asyncio.ensure_future(self._fetch_machine(audience, scope))
                self._machine_flights[key] = flight
            tokens = await asyncio.shield(flight)
            if self._fresh(tokens, 0.0) is None:
                raise TemporarilyUnavailable("the provider issued an access token already expired")
        return self._hand_out(tokens, expected_audience=audience)

    async def _fetch_machine(self, audience: str | None, scope: str | None) -> TokenSet:
        guard = self._guard
        metadata = await guard.discovery.get()
        data = {"grant_type": "client_credentials",
                **flows.audience_params(audience, guard.config.audience_param)}  # fmt: skip
        if scope:
            data["scope"] = scope
        try:
            document = await flows.token_request(
                guard.http_client(), metadata, guard.credentials, data
            )
        except TokenRequestFailed as err:
            raise provider_refusal(err, what="client credentials grant") from err
        tokens = flows.token_set(document, now=self._clock(), audience=audience, scope=scope)
        self._machine[token_key(audience, scope)] = tokens
        return tokens


class SeenIds:
    """Ids seen before their expiry (replay detection for logout-token ``jti``), bounded."""

    def __init__(self, *, clock: Callable[[], float], size: int = 100_000) -> None:
        self._clock = clock
        self._size = size
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first_use(self, value: str, *, until: float) -> bool:
        """True the first time ``value`` is seen (it is then remembered until ``until``)."""
        now = self._clock()
        while self._seen and next(iter(self._seen.values())) < now:
            self._seen.popitem(last=False)
        expires = self._seen.get(value)
        if expires is not None and expires >= now:
            return False
        self._seen[value] = max(until, now + 60)
        while len(self._seen) > self._size:
            self._seen.popitem(last=False)
        return True
