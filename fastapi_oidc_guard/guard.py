"""``OIDCGuard``: wires configuration, discovery, keys and the verifier into a FastAPI app."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, WebSocket
from fastapi.requests import HTTPConnection
from pydantic import ValidationError

from ._http import build_client
from .config import GuardConfig, SessionBackendName
from .csrf import is_unsafe, write_allowed
from .errors import (
    ConfigurationError,
    CrossOriginRequest,
    InvalidUserClaims,
    LoginRequired,
    NotAuthenticated,
)
from .flows import ClientCredentials
from .http_errors import error_response, install_error_handlers
from .issuers import IssuerResolver, IssuerVerifiers, TrustedIssuer, build_issuer_stack
from .models import AccessToken, SessionData, User
from .sessions.base import SessionBackend
from .sessions.cookie import CookieSessionBackend
from .sessions.cookies import CookieSettings
from .sessions.manager import BeforeSave, SessionManager
from .sessions.memory import MemorySessionBackend
from .sessions.middleware import SessionMiddleware
from .sessions.revocation import MemoryRevocations, RevocationStore
from .sessions.sealing import Sealer
from .socket_lifetime import close_when_ended, credential_check
from .tokens import SeenIds, TokenService
from .transactions import TransactionStore
from .websocket_auth import parse_authorization, socket_token

__all__ = ["OIDCGuard", "parse_authorization"]

logger = logging.getLogger("fastapi_oidc_guard")
AnyBackend = SessionBackend | CookieSessionBackend


def _named_backend(cfg: GuardConfig, sealer: Sealer) -> AnyBackend:
    if cfg.session_backend == "memory":
        return MemorySessionBackend(clock=cfg.clock)
    if cfg.session_backend == "redis":
        from .sessions.redis import RedisSessionBackend

        return RedisSessionBackend(sealer=sealer, url=cfg.redis_url, clock=cfg.clock)
    return CookieSessionBackend(sealer)


class OIDCGuard:
    """The library's entry point: build one per app, start it in ``lifespan``, ``install`` it.

    Example::

        guard = OIDCGuard.from_env()                 # or OIDCGuard(issuer=..., audience=...)
        app = FastAPI(lifespan=guard.lifespan)
        guard.install(app)

    Settings are the keyword arguments of :class:`GuardConfig` (or a ready ``config``).
    ``user_model`` is the Pydantic model (a :class:`User` subclass) that ``require_user`` returns.
    ``transport`` or ``http_client`` replace the HTTP layer towards the provider (an in-process
    fake issuer in tests, a proxy-aware client in production). ``session_backend`` is a backend
    name (``"cookie"``, ``"memory"``, ``"redis"``: the ``OIDC_SESSION_BACKEND`` setting) or a
    ready :class:`SessionBackend` instance; ``before_session_saved`` shapes what a session
    stores (e.g. drops large claims) each time it is saved. ``trusted_issuers`` accepts bearer
    tokens of more issuers (each with its own audience and keys); ``issuer_resolver`` decides
    for unknown issuers at run time (multi-tenant apps).
    """

    def __init__(
        self,
        *,
        config: GuardConfig | None = None,
        user_model: type[User] = User,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
        session_backend: AnyBackend | SessionBackendName | None = None,
        before_session_saved: BeforeSave | None = None,
        trusted_issuers: Iterable[TrustedIssuer] = (),
        issuer_resolver: IssuerResolver | None = None,
        **settings: Any,
    ) -> None:
        if isinstance(session_backend, str):  # a name: it is the configuration setting
            settings["session_backend"] = session_backend
            session_backend = None
        if config is not None and settings:
            raise TypeError("pass either config=... or settings, not both")
        self.config = config if config is not None else GuardConfig(**settings)
        self.user_model = user_model
        self._transport = transport
        self._client: httpx.AsyncClient | None = http_client
        self._owns_client = http_client is None
        cfg = self.config
        primary = build_issuer_stack(
            cfg, issuer=cfg.issuer, audience=cfg.audience, client=self.http_client,
            client_id=cfg.client_id,
        )  # fmt: skip
        self.discovery, self.keys, self.verifier = primary.discovery, primary.keys, primary.verifier
        self.issuers = IssuerVerifiers(
            cfg, primary, client=self.http_client, trusted=trusted_issuers,
            resolver=issuer_resolver,
        )  # fmt: skip
        self.credentials = ClientCredentials(
            cfg.client_id or "", cfg.client_secret, auth=cfg.token_endpoint_auth
        )
        self.sessions: SessionManager | None = None
        self.transactions: TransactionStore | None = None
        if cfg.login_enabled:
            self._build_sessions(session_backend, before_session_saved)
        elif session_backend is not None:
            raise ConfigurationError("session_backend given but login is not configured")
        self.tokens = TokenService(self)
        self.logout_jtis = SeenIds(clock=cfg.clock)
        if cfg.audience is None:
            logger.warning(
                "OIDC_AUDIENCE is not set: bearer tokens will be refused, and access tokens "
                "obtained at login may be opaque. Set it to your API's identifier."
            )

    def _build_sessions(self, backend: AnyBackend | None, before_save: BeforeSave | None) -> None:
        cfg = self.config
        cookie = CookieSettings(
            name=cfg.session_cookie_name, domain=cfg.cookie_domain, path=cfg.cookie_path,
            secure=cfg.secure_cookies, same_site=cfg.cookie_same_site,
        )  # fmt: skip
        # Sealing and store keys are bound to this app: a cookie of another app that shares the
        # secret (staging and production, say) is no session here.
        binding = "\x1f".join((cfg.issuer, cfg.client_id or "", cookie.name))
        sealer = Sealer(cfg.session_secret, clock=cfg.clock, binding=binding)
        if backend is None:
            backend = _named_backend(cfg, sealer)
        revocations: RevocationStore = MemoryRevocations(clock=cfg.clock)
        if isinstance(backend, RevocationStore):  # a shared store is its own revocation list
            revocations = backend
        elif isinstance(backend, CookieSessionBackend) and cfg.redis_url:
            from .sessions.redis_revocations import RedisRevocations

            revocations = RedisRevocations(sealer=sealer, url=cfg.redis_url, clock=cfg.clock)
        self.sessions = SessionManager(
            backend, cookie, sealer=sealer, revocations=revocations, clock=cfg.clock,
            inactivity=cfg.session_inactivity, absolute=cfg.session_absolute,
            touch_interval=cfg.session_touch_interval, before_save=before_save,
            max_cookie_bytes=cfg.max_cookie_bytes,
        )  # fmt: skip
        # A __Host- cookie must have Path=/; its name already carries the login's state.
        txn_path = "/" if cookie.name.startswith("__Host-") else cfg.routes_prefix
        self.transactions = TransactionStore(
            sealer, cookie, path=txn_path, max_pending=cfg.max_pending_logins
        )
        if cfg.cookie_same_site == "none" and not cfg.trusted_origins:
            logger.warning(
                "cookie_same_site='none' sends the session cookie with requests from every "
                "site; cookie-authenticated writes from other origins are refused, so list the "
                "origins of your front ends in OIDC_TRUSTED_ORIGINS (trusted_origins=...)"
            )
        self._write_origins = frozenset({cfg.origin or "", *cfg.trusted_origins}) - {""}

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        user_model: type[User] = User,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
        session_backend: AnyBackend | SessionBackendName | None = None,
        before_session_saved: BeforeSave | None = None,
        trusted_issuers: Iterable[TrustedIssuer] = (),
        issuer_resolver: IssuerResolver | None = None,
        **overrides: Any,
    ) -> OIDCGuard:
        """Build from the ``OIDC_*`` environment variables; keyword arguments win."""
        if isinstance(session_backend, str):
            overrides["session_backend"] = session_backend
            session_backend = None
        config = GuardConfig.from_env(environ, **overrides)
        return cls(
            config=config, user_model=user_model, transport=transport, http_client=http_client,
            session_backend=session_backend, before_session_saved=before_session_saved,
            trusted_issuers=trusted_issuers, issuer_resolver=issuer_resolver,
        )  # fmt: skip

    # -- HTTP client and lifecycle -----------------------------------------------------------

    def http_client(self) -> httpx.AsyncClient:
        """The shared client; created on first use if the lifespan has not started it."""
        if self._client is None or self._client.is_closed:
            self._client = build_client(timeout=self.config.http_timeout, transport=self._transport)
            self._owns_client = True
        return self._client

    async def start(self) -> None:
        """Open the HTTP client and warm discovery and keys (failures are logged, not raised)."""
        self.http_client()
        for stack in self.issuers.stacks.values():
            await stack.keys.warm()

    async def aclose(self) -> None:
        """Stop background refreshes and close the client if the guard created it."""
        for stack in self.issuers.all_stacks():
            stack.keys.close()
            stack.discovery.close()
        sessions = self.sessions
        parts = {id(p): p for p in (sessions.backend, sessions.revocations)} if sessions else {}
        for part in parts.values():
            close = getattr(part, "aclose", None)
            if close is not None:
                await close()
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        """Pass as ``FastAPI(lifespan=guard.lifespan)``, or enter it from your own lifespan."""
        await self.start()
        try:
            yield
        finally:
            await self.aclose()

    def install(self, app: FastAPI) -> None:
        """Attach the guard to ``app``: dependencies find it there; error handlers; and, when
        login is configured, the ``/auth`` routes and the session middleware."""
        from .openapi import install_openapi
        from .routes import build_router

        app.state.oidc_guard = self
        install_error_handlers(app)
        cfg = self.config
        install_openapi(app, issuer=cfg.issuer, client_id=cfg.client_id, scope=cfg.scope)
        if self.sessions is not None:
            app.include_router(build_router(self))
            app.add_middleware(
                SessionMiddleware, manager=self.sessions, render_error=error_response
            )

    # -- authentication ----------------------------------------------------------------------

    async def authenticate(self, request: HTTPConnection) -> User:
        """The user of ``request``; raises ``NotAuthenticated`` or ``InvalidToken``.

        An ``Authorization`` header, when present, is the only credential looked at; without
        one, the session cookie is. On a WebSocket handshake, a ``bearer.<token>`` subprotocol
        (or, with ``websocket_query_token``, ``?access_token=``) counts as a bearer token: see
        ``fastapi_oidc_guard.websocket_auth``.
        """
        authorization = request.headers.get("authorization")
        if authorization is not None:
            return await self.user_from_token(parse_authorization(authorization))
        if request.scope["type"] == "websocket":
            token = socket_token(request.headers, request.query_params,
                                 allow_query=self.config.websocket_query_token)  # fmt: skip
            if token is not None:
                return await self.user_from_token(token)
        user = await self.session_user(request)
        if user is None:
            raise NotAuthenticated("no Authorization header and no session")
        return user

    async def session(self, request: HTTPConnection) -> SessionData | None:
        """The request's browser session, or ``None``.

        A cookie-authenticated unsafe request (any method but GET, HEAD, OPTIONS, TRACE), or a
        WebSocket handshake, from another origin raises :class:`CrossOriginRequest` (403; a
        refused socket) instead: see ``fastapi_oidc_guard.csrf``.
        """
        if self.sessions is None:
            return None
        session = await self.sessions.get(request.scope)
        method = str(request.scope.get("method", "WEBSOCKET"))  # a handshake can change state
        if (
            session is not None
            and is_unsafe(method)
            and not write_allowed(request.headers, allowed_origins=self._write_origins)
        ):
            origin, site = request.headers.get("origin"), request.headers.get("sec-fetch-site")
            raise CrossOriginRequest(
                f"{method} with the session cookie from origin {origin!r} "
                f"(sec-fetch-site {site!r}); allowed: {sorted(self._write_origins)}"
            )
        return session

    async def session_user(self, request: HTTPConnection) -> User | None:
        """The user of the request's session (built once per request), or ``None``."""
        if self.sessions is None:
            return None
        session = await self.session(request)
        if session is None:
            return None
        cache = self.sessions.slot(request.scope).cache
        user: User | None = cache.get("user")
        if user is None:
            claims = session.user
            default = session.tokens.get(self.tokens.key(self.config.audience, None))
            if "scope" not in claims and default is not None and default.scope:
                # Session users' scopes: those granted with the session's default access token.
                claims = {**claims, "scope": default.scope}
            user = self.user_from_claims(claims)
            cache["user"] = user
        return user

    async def access_token_for(
        self,
        request: HTTPConnection,
        *,
        audience: str | None,
        scope: str | None,
        min_ttl: float = 60.0,
        force_refresh: bool = False,
    ) -> AccessToken:
        """A fresh access token of the request's session for ``audience`` (refreshed if it
        expires within ``min_ttl`` seconds). No session: 401; refresh impossible: 401
        ``login_required`` (the session ends when the provider refused the refresh token)."""
        session = await self.session(request)
        if session is None:
            raise NotAuthenticated("access token asked without a session")
        async with self._ending_on_refusal(request):
            return await self.tokens.for_session(
                session, audience=audience, scope=scope, min_ttl=min_ttl,
                persist=self._persister(request), force_refresh=force_refresh,
                can_refresh=self._can_save(request),
            )  # fmt: skip

    async def userinfo_for(self, request: HTTPConnection) -> dict[str, Any]:
        """The userinfo claims of the request's session (its ``sub`` checked by the caller);
        refreshes the access token first when needed, with the same rules as
        :meth:`access_token_for`."""
        session = await self.session(request)
        if session is None:
            raise NotAuthenticated("userinfo needs a session")
        async with self._ending_on_refusal(request):
            return await self.tokens.userinfo(
                session, persist=self._persister(request), can_refresh=self._can_save(request)
            )

    def _can_save(self, request: HTTPConnection) -> bool:
        """A WebSocket has no response to carry a new cookie: a cookie session cannot save a
        refresh there (the rotated refresh token would be lost), a store-backed one can."""
        return request.scope["type"] != "websocket" or bool(
            self.sessions and self.sessions.stateful
        )

    def _persister(self, request: HTTPConnection) -> Callable[[SessionData], Awaitable[None]]:
        sessions = self.sessions
        assert sessions is not None

        async def persist(updated: SessionData) -> None:
            await sessions.save(request.scope, updated)

        return persist

    @asynccontextmanager
    async def _ending_on_refusal(self, request: HTTPConnection) -> AsyncIterator[None]:
        """The one path for "the provider refused the refresh token": the session ends, for
        every caller (``access_token``, ``userinfo``, ``/auth/access-token``)."""
        try:
            yield
        except LoginRequired as err:
            if err.end_session and self.sessions is not None:
                self.sessions.end(request.scope)
            raise

    async def first_logout_use(self, claims: dict[str, Any]) -> bool:
        """True the first time a logout token's ``jti`` is seen (across processes when the
        session backend is shared, e.g. Redis)."""
        shared = self.sessions.shared if self.sessions else None
        ttl = max(float(claims["exp"]) - self.config.clock(), 0.0) + self.config.leeway + 60
        if shared is not None:
            return await shared.first_use(f"jti:{claims['iss']}:{claims['jti']}", ttl=ttl)
        return self.logout_jtis.first_use(claims["jti"], until=self.config.clock() + ttl)

    def public_profile(self, user: User) -> dict[str, Any]:
        """What ``/auth/profile`` sends to the browser."""
        return user.model_dump(by_alias=True, exclude_none=True)

    def while_authenticated(
        self, websocket: WebSocket, *, every: float = 5.0
    ) -> AbstractAsyncContextManager[None]:
        """``async with guard.while_authenticated(websocket): ...``: the socket is closed (1008)
        as soon as its token expires, its session is logged out (here or, through Redis, on any
        instance) or reaches its absolute lifetime; checked every ``every`` seconds. Use it in
        a WebSocket route after the dependency authenticated the socket."""
        return close_when_ended(websocket, credential_check(self, websocket), every=every)

    async def user_from_token(self, token: str) -> User:
        """Verify a bearer access token and build the user model from its claims.

        The validated model is cached with the verified token; each request gets its own
        shallow copy, so a route that changes its user changes nobody else's.
        """
        user = await self.issuers.principal(token, self.user_from_claims)
        return user.model_copy()

    def user_from_claims(self, claims: dict[str, Any]) -> User:
        """Validate verified claims against ``user_model``; failure is a 401, never a 500."""
        try:
            return self.user_model.model_validate(claims)
        except ValidationError as err:
            raise InvalidUserClaims(
                f"claims do not fit {self.user_model.__name__}: {err.error_count()} errors"
            ) from err
