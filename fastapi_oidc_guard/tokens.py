"""Access tokens of a user's session for other APIs: per-audience token sets in the session,
refresh, and the userinfo endpoint (the app's own tokens are ``machine_tokens``).

Refresh is single flight per session in this process: concurrent requests of one user share one
call to the token endpoint. Because refresh tokens rotate (and providers revoke the whole grant
when a rotated one is used again), the outcome of a refresh is also remembered for a short while
under the refresh token it spent: a request that still carries the old cookie (sent before the
browser received the new one) gets the new tokens instead of spending the old token again.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi.requests import HTTPConnection

from . import flows
from ._cache import BoundedCache
from ._flight import KeyedSingleFlight
from ._json import loads_strict
from .config import GuardConfig
from .errors import (
    InvalidToken,
    LoginRequired,
    NoRefreshToken,
    NotAuthenticated,
    SessionTooLarge,
    TemporarilyUnavailable,
    TokenRequestFailed,
)
from .models import AccessToken, SessionData, TokenSet
from .provider import Provider
from .sessions.manager import SessionManager
from .token_sets import Handout, fresh, provider_refusal, token_key
from .verify import TokenVerifier

__all__ = ["Persist", "SessionOf", "TokenService"]

logger = logging.getLogger("fastapi_oidc_guard.tokens")

_REMEMBER_REFRESH = 60.0
_USERINFO_TTL = 60.0
_CACHE_SIZE = 10_000
Persist = Callable[[SessionData], Awaitable[None]]
SessionOf = Callable[[HTTPConnection], Awaitable[SessionData | None]]


def _fingerprint(refresh_token: str) -> str:
    return hashlib.sha256(refresh_token.encode()).hexdigest()


class TokenService:
    """Gets fresh access tokens for a session or for the app itself (client credentials).

    Its collaborators are explicit: the ``provider`` (discovery, the app's client
    authentication, HTTP), the ``verifier`` (refreshed ID tokens), the session layer
    (``sessions``: saving, ending, and the shared store of a refresh's outcome) and
    ``session_of``, which finds a connection's session (the authenticator's, with its origin
    check). It owns the rule "a refresh the provider refused
    ends the session", for every caller (:meth:`access_token_for`, :meth:`userinfo_for`).
    """

    def __init__(
        self,
        *,
        config: GuardConfig,
        provider: Provider,
        handout: Handout,
        verifier: TokenVerifier,
        sessions: SessionManager | None,
        session_of: SessionOf | None = None,
    ) -> None:
        self._config = config
        self._provider = provider
        self._verifier = verifier
        self._sessions = sessions
        self._session_of = session_of
        self._clock = config.clock
        self._flights: KeyedSingleFlight[str, tuple[SessionData, bool]] = KeyedSingleFlight()
        self._recent: BoundedCache[str, SessionData] = BoundedCache(
            _CACHE_SIZE, ttl=_REMEMBER_REFRESH, clock=config.clock
        )
        self._userinfo: BoundedCache[str, dict[str, Any]] = BoundedCache(
            _CACHE_SIZE, ttl=_USERINFO_TTL, clock=config.clock
        )
        self._background: BoundedCache[str, SessionData] = BoundedCache(_CACHE_SIZE)
        self._handout = handout
        self._warned_short = False

    def key(self, audience: str | None, scope: str | None) -> str:
        """Where a session keeps the tokens for ``audience``/``scope`` (default: login scope)."""
        return token_key(audience, scope or self._config.scope)

    # -- for a connection ---------------------------------------------------------------------

    async def access_token_for(
        self,
        conn: HTTPConnection,
        *,
        audience: str | None,
        scope: str | None,
        min_ttl: float = 60.0,
        force_refresh: bool = False,
    ) -> AccessToken:
        """A fresh access token of the connection's session for ``audience`` (refreshed if it
        expires within ``min_ttl`` seconds). No session: 401; refresh impossible: 401
        ``login_required`` (the session ends when the provider refused the refresh token)."""
        session = await self._session(conn, why="access token asked without a session")
        async with self._ending_on_refusal(conn):
            return await self.for_session(
                session, audience=audience, scope=scope, min_ttl=min_ttl,
                persist=self._persister(conn), force_refresh=force_refresh,
                can_refresh=self._can_save(conn),
            )  # fmt: skip

    async def userinfo_for(self, conn: HTTPConnection) -> dict[str, Any]:
        """The userinfo claims of the connection's session (its ``sub`` checked by the
        caller); refreshes the access token first when needed, with the same rules as
        :meth:`access_token_for`."""
        session = await self._session(conn, why="userinfo needs a session")
        async with self._ending_on_refusal(conn):
            return await self.userinfo(
                session, persist=self._persister(conn), can_refresh=self._can_save(conn)
            )

    async def _session(self, conn: HTTPConnection, *, why: str) -> SessionData:
        session = await self._session_of(conn) if self._session_of is not None else None
        if session is None:
            raise NotAuthenticated(why)
        return session

    def _can_save(self, conn: HTTPConnection) -> bool:
        """A WebSocket has no response to carry a new cookie: a cookie session cannot save a
        refresh there (the rotated refresh token would be lost), a store-backed one can."""
        return conn.scope["type"] != "websocket" or bool(self._sessions and self._sessions.stateful)

    def _persister(self, conn: HTTPConnection) -> Persist:
        sessions = self._sessions
        assert sessions is not None

        async def persist(updated: SessionData) -> None:
            await sessions.save(conn.scope, updated)

        return persist

    @asynccontextmanager
    async def _ending_on_refusal(self, conn: HTTPConnection) -> AsyncIterator[None]:
        """The one path for "the provider refused the refresh token": the session ends."""
        try:
            yield
        except LoginRequired as err:
            if err.end_session and self._sessions is not None:
                if conn.scope["type"] == "websocket":  # no response will carry the end
                    await self._sessions.end_now(conn.scope)
                else:
                    self._sessions.end(conn.scope)
            raise

    # -- outside requests (background jobs) ----------------------------------------------------

    async def for_refresh_token(
        self,
        refresh_token: str,
        *,
        sub: str,
        audience: str | None,
        scope: str | None,
        min_ttl: float = 60.0,
        force_refresh: bool = False,
        on_rotated: Callable[[str], Awaitable[None]] | None = None,
    ) -> AccessToken:
        """A fresh access token for the user ``sub`` from a refresh token the app stored, with
        the rules of a request: refreshed once however many callers ask at the same time (and,
        with Redis, across processes), a rotated refresh token never spent again (callers
        still holding the old one get the outcome), a refreshed ID token for another ``sub``
        refused. When the provider rotates the refresh token, ``on_rotated(new)`` is awaited
        before the token is handed out: store the new one, the old one is spent. Tokens are
        remembered in the process (keyed by a hash of the refresh token) until ``min_ttl``
        before they expire."""
        if not refresh_token or not sub:
            raise NoRefreshToken("a background token needs the stored refresh token and sub")
        fingerprint = _fingerprint(refresh_token)
        session = self._background.get(fingerprint)
        if session is not None and session.sub != sub:
            # Another user's refresh token handed over as this user's: never their token.
            raise LoginRequired(
                "the stored refresh token belongs to another user", end_session=False
            )
        if session is None:
            now = self._clock()
            session = SessionData(
                id="background:" + fingerprint[:16], sub=sub, user={"sub": sub},
                refresh_token=refresh_token, created_at=now, last_active=now,
            )  # fmt: skip
        held = session.refresh_token  # the newest refresh token this process knows of

        async def persist(updated: SessionData) -> None:
            new = updated.refresh_token
            # Remembered first, under every token of the chain (the caller's, the one just
            # spent, the new one): a failing on_rotated, or a caller holding an intermediate
            # token, never spends a rotated token again.
            for spent in {refresh_token, held or refresh_token, new or refresh_token}:
                self._background.put(_fingerprint(spent), updated)
            if new and new != refresh_token and on_rotated is not None:
                await on_rotated(new)

        return await self.for_session(
            session, audience=audience, scope=scope, min_ttl=min_ttl, persist=persist,
            force_refresh=force_refresh,
        )  # fmt: skip

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
            self._handout.just_issued(tokens)
            if self._fresh(tokens, min_ttl) is None and not self._warned_short:
                self._warned_short = True
                logger.warning(
                    "the provider's access tokens live less than min_ttl=%s s: a just-issued "
                    "token is handed out anyway; lower min_ttl", min_ttl,
                )  # fmt: skip
        return self._handout(tokens, expected_audience=audience)

    def _fresh(self, tokens: TokenSet | None, min_ttl: float) -> TokenSet | None:
        return fresh(tokens, min_ttl, now=self._clock())

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
        refreshed = self._recent.get(fingerprint)
        if refreshed is not None and refreshed.sub != session.sub:
            refreshed = None  # never another user's outcome (a refresh token handed over)
        if refreshed is not None:
            if not force and self._fresh(refreshed.tokens.get(key), min_ttl) is not None:
                return refreshed  # a concurrent request's outcome, still fresh enough
            if refreshed.refresh_token != session.refresh_token:
                session = refreshed  # it rotated: continue from the newest refresh token
                fingerprint = _fingerprint(session.refresh_token or "")
        start = session
        refreshed, ours = await self._flights.run(
            fingerprint, lambda: self._do_refresh(start, audience, scope, min_ttl, force=force)
        )
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
        backend = self._sessions.shared if self._sessions else None
        if backend is None:
            return await self._refresh_at_provider(session, audience, scope), True
        assert session.refresh_token is not None
        name = "refresh:" + _fingerprint(session.refresh_token)
        wait = 2 * self._config.http_timeout + 1
        async with backend.lock(name, ttl=wait + 5, wait=wait):
            done = await backend.shared(name)
            if done is not None and done.sub == session.sub:
                self._recent.put(_fingerprint(session.refresh_token), done)
                fresh = self._fresh(done.tokens.get(self.key(audience, scope)), min_ttl)
                if done.refresh_token != session.refresh_token or (not force and fresh):
                    return done, False
            refreshed = await self._refresh_at_provider(session, audience, scope)
            await backend.share(name, refreshed, ttl=_REMEMBER_REFRESH)
            return refreshed, True

    async def _refresh_at_provider(
        self, session: SessionData, audience: str | None, scope: str | None
    ) -> SessionData:
        cfg = self._config
        assert session.refresh_token is not None
        data = flows.refresh_grant(
            session.refresh_token, audience=audience, scope=scope, style=cfg.audience_param
        )
        try:
            document = await self._provider.token(data)
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
                claims = await self._verifier.verify_id_token(id_token, nonce=None)
            except InvalidToken as err:
                raise LoginRequired(
                    f"refreshed ID token rejected: {err}", end_session=True
                ) from err
            if claims.get("sub") != session.sub:
                raise LoginRequired("refreshed ID token is for another user", end_session=True)
            updates["id_token"] = id_token
        refreshed = session.model_copy(update=updates)
        self._recent.put(_fingerprint(session.refresh_token), refreshed)
        return refreshed

    # -- userinfo -----------------------------------------------------------------------------

    async def userinfo(
        self, session: SessionData, *, persist: Persist, can_refresh: bool = True
    ) -> dict[str, Any]:
        """The userinfo endpoint's claims for ``session``, cached per session for 60 s."""
        cached = self._userinfo.get(session.id)
        if cached is not None:
            return cached
        token = await self.for_session(
            session, audience=self._config.audience, scope=None, min_ttl=10, persist=persist,
            can_refresh=can_refresh,
        )  # fmt: skip
        metadata = await self._provider.metadata()
        if not metadata.userinfo_endpoint:
            raise TemporarilyUnavailable("the provider has no userinfo_endpoint")
        try:
            response = await self._provider.client().get(
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
        self._userinfo.put(session.id, claims)
        return claims
