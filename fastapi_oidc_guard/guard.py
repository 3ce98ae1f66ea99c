"""``OIDCGuard``: the composition root. It builds the parts (issuers and their keys, the
authenticator, sessions, tokens, login and back-channel logout), owns their lifecycle
(``lifespan``) and installs them on an app (``install``). No other module imports it; the map
of who uses whom is docs/architecture.md."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, WebSocket
from fastapi.requests import HTTPConnection

from ._http import build_client
from .authentication import Authenticator
from .backchannel import BackchannelLogout
from .browser_errors import ErrorPage
from .client_auth import ClientCredentials, PrivateKey, load_private_key
from .config import GuardConfig, SessionBackendName
from .dependencies import Installed
from .env_settings import DEFAULT_PREFIX
from .errors import ConfigurationError, NoRefreshToken
from .extra_verifiers import CredentialVerifier, VerifierSet
from .http_errors import error_response, install_error_handlers
from .introspection import Introspector
from .issuers import IssuerResolver, IssuerVerifiers, TrustedIssuer, build_issuer_stack
from .login_flow import LoginFlow
from .machine_tokens import MachineTokens
from .models import AccessToken, OfflineGrant, SessionData, User
from .openapi import install_openapi
from .provider import Provider
from .resource_metadata import install_resource_metadata, metadata_url
from .routes import PrefixedRoutes, build_router
from .sessions.base import SessionBackend
from .sessions.cookie import CookieSessionBackend
from .sessions.cookies import CookieSettings
from .sessions.manager import BeforeSave, SessionManager
from .sessions.memory import MemorySessionBackend
from .sessions.middleware import SessionMiddleware
from .sessions.revocation import MemoryRevocations, RevocationStore
from .sessions.sealing import Sealer
from .shared_state import introspection_sealer, shared_state, value_store
from .socket_lifetime import close_when_ended, credential_check
from .token_sets import Handout
from .tokens import TokenService
from .transactions import TransactionStore

__all__ = ["OIDCGuard"]

logger = logging.getLogger("fastapi_oidc_guard")
AnyBackend = SessionBackend | CookieSessionBackend


def _named_backend(cfg: GuardConfig, sealer: Sealer) -> AnyBackend:
    if cfg.session_backend == "memory":
        return MemorySessionBackend(clock=cfg.clock)
    if cfg.session_backend == "redis":
        from .sessions.redis import RedisSessionBackend

        return RedisSessionBackend(sealer=sealer, url=cfg.redis_url, clock=cfg.clock)
    return CookieSessionBackend(sealer)


def _private_key(cfg: GuardConfig) -> PrivateKey | None:
    """The ``private_key_jwt`` key from ``client_private_key`` or the file it names."""
    text = cfg.client_private_key
    if text is None and cfg.client_private_key_file:
        try:
            with open(cfg.client_private_key_file, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as err:
            raise ConfigurationError(
                f"client_private_key_file {cfg.client_private_key_file!r}: {err.strerror}"
            ) from err
    return None if text is None else load_private_key(text, kid=cfg.client_key_id)


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
    for unknown issuers at run time (multi-tenant apps). ``error_page(request, error)`` renders
    the errors of the login, callback and logout routes for browsers (see
    ``fastapi_oidc_guard.browser_errors``).
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
        error_page: ErrorPage | None = None,
        verifiers: Iterable[CredentialVerifier] = (),
        **settings: Any,
    ) -> None:
        if isinstance(session_backend, str):  # a name: it is the configuration setting
            settings["session_backend"] = session_backend
            session_backend = None
        if config is not None and settings:
            raise TypeError("pass either config=... or settings, not both")
        self.config = config if config is not None else GuardConfig(**settings)
        self.user_model = user_model
        self.error_page = error_page
        self._transport = transport
        self._client: httpx.AsyncClient | None = http_client
        self._owns_client = http_client is None
        self._installed = False
        cfg = self.config
        primary = build_issuer_stack(
            cfg, issuer=cfg.issuer, audience=cfg.audiences, client=self.http_client,
            client_id=cfg.client_id,
        )  # fmt: skip
        self.discovery, self.keys, self.verifier = primary.discovery, primary.keys, primary.verifier
        self.issuers = IssuerVerifiers(
            cfg, primary, client=self.http_client, trusted=trusted_issuers,
            resolver=issuer_resolver,
        )  # fmt: skip
        self.credentials = ClientCredentials(
            cfg.client_id or "", cfg.client_secret, auth=cfg.token_endpoint_auth,
            private_key=_private_key(cfg), clock=cfg.clock,
        )  # fmt: skip
        self.sessions: SessionManager | None = None
        self.transactions: TransactionStore | None = None
        if cfg.login_enabled:
            self._build_sessions(session_backend, before_session_saved)
        elif session_backend is not None:
            raise ConfigurationError("session_backend given but login is not configured")
        shared, self._own_redis = shared_state(cfg, self.sessions)
        self.provider = Provider(self.discovery, self.credentials, self.http_client)
        self.introspection: Introspector | None = None
        if cfg.token_validation != "local":
            self.introspection = Introspector(
                config=cfg, provider=self.provider, shared=value_store(shared),
                sealer=introspection_sealer(cfg),
            )  # fmt: skip
        self.auth = Authenticator(
            config=cfg, issuers=self.issuers, sessions=self.sessions, user_model=user_model,
            verifiers=VerifierSet(verifiers), introspection=self.introspection,
            shared=shared,
        )  # fmt: skip
        handout = Handout(clock=cfg.clock)  # one audience-trap warning per process
        self.tokens = TokenService(
            config=cfg, provider=self.provider, handout=handout, verifier=self.verifier,
            sessions=self.sessions, session_of=self.auth.session,
        )  # fmt: skip
        self.machine = MachineTokens(
            provider=self.provider, handout=handout, audience_param=cfg.audience_param,
            clock=cfg.clock,
        )  # fmt: skip
        self.login: LoginFlow | None = None
        self.backchannel: BackchannelLogout | None = None
        if self.sessions is not None and self.transactions is not None:
            self.login = LoginFlow(
                config=cfg, provider=self.provider, verifier=self.verifier,
                sessions=self.sessions, transactions=self.transactions, tokens=self.tokens,
                handout=handout,
            )  # fmt: skip
            self.backchannel = BackchannelLogout(
                verifier=self.verifier, sessions=self.sessions, clock=cfg.clock,
                leeway=cfg.leeway,
            )  # fmt: skip
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
        # A __Host- cookie must have Path=/; otherwise LoginFlow gives the prefixed /auth path.
        txn_path = "/" if cookie.name.startswith("__Host-") else cfg.app_path + cfg.routes_prefix
        self.transactions = TransactionStore(
            sealer, cookie, path=txn_path, max_pending=cfg.max_pending_logins
        )
        if cfg.cookie_same_site == "none" and not cfg.trusted_origins:
            logger.warning(
                "cookie_same_site='none' sends the session cookie with requests from every "
                "site; cookie-authenticated writes from other origins are refused, so list the "
                "origins of your front ends in OIDC_TRUSTED_ORIGINS (trusted_origins=...)"
            )

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
        error_page: ErrorPage | None = None,
        verifiers: Iterable[CredentialVerifier] = (),
        prefix: str = DEFAULT_PREFIX,
        env_file: str | os.PathLike[str] | None = None,
        **overrides: Any,
    ) -> OIDCGuard:
        """Build from the ``OIDC_*`` environment variables (or ``<prefix>*``, plus ``env_file``:
        see :meth:`GuardConfig.from_env`); keyword arguments win."""
        if isinstance(session_backend, str):
            overrides["session_backend"] = session_backend
            session_backend = None
        config = GuardConfig.from_env(environ, prefix=prefix, env_file=env_file, **overrides)
        return cls(
            config=config, user_model=user_model, transport=transport, http_client=http_client,
            session_backend=session_backend, before_session_saved=before_session_saved,
            trusted_issuers=trusted_issuers, issuer_resolver=issuer_resolver,
            error_page=error_page, verifiers=verifiers,
        )  # fmt: skip

    # -- HTTP client and lifecycle -----------------------------------------------------------

    def http_client(self) -> httpx.AsyncClient:
        """The shared client; created on first use if the lifespan has not started it."""
        if self._client is None or self._client.is_closed:
            self._client = build_client(timeout=self.config.http_timeout, transport=self._transport)
            self._owns_client = True
        return self._client

    async def start(self) -> None:
        """Open the HTTP client and warm discovery and keys (failures are logged, not raised).
        Logs one INFO line that summarises the configuration (never a secret)."""
        logger.info("%s", self.summary())
        self.http_client()
        for stack in self.issuers.stacks.values():
            await stack.keys.warm()

    def summary(self) -> str:
        """One line for the start-up log: issuer(s), audiences, login, sessions, algorithms.
        Secrets (client secret, session secrets, private keys) never appear in it."""
        cfg = self.config
        issuers = ", ".join(self.issuers.stacks)
        if self.issuers.single is False and len(self.issuers.stacks) == 1:
            issuers += " + resolved issuers"
        login = "off"
        if cfg.login_enabled:
            login = f"on at {cfg.base_url or ''}{cfg.routes_prefix}, client {cfg.client_id}"
        sessions = "none" if self.sessions is None else cfg.session_backend
        audiences = ", ".join(cfg.audiences) or "none (bearer tokens refused)"
        resource = cfg.resource_identifier
        metadata = metadata_url(resource) if resource else "off (OIDC_RESOURCE)"
        return (
            f"fastapi_oidc_guard: issuer {issuers}; audiences {audiences}; login {login}; "
            f"sessions {sessions}; algorithms {', '.join(cfg.algorithms)}; "
            f"resource metadata {metadata}"
        )

    async def aclose(self) -> None:
        """Stop background refreshes and close the client if the guard created it."""
        for stack in self.issuers.all_stacks():
            stack.keys.close()
            stack.discovery.close()
        sessions = self.sessions
        parts = {id(p): p for p in (sessions.backend, sessions.revocations)} if sessions else {}
        closing: list[object] = [*parts.values(), *filter(None, [self._own_redis])]
        for part in closing:
            close = getattr(part, "aclose", None)
            if close is not None:
                await close()
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        """Pass as ``FastAPI(lifespan=guard.lifespan)``, or enter it from your own lifespan.

        Refuses to start (``RuntimeError``) when ``install`` was never called: the app would
        otherwise answer 500 on its first protected request."""
        if not self._installed and getattr(app.state, "oidc_guard", None) is not self:
            raise RuntimeError(
                "fastapi_oidc_guard: the guard's lifespan started but guard.install(app) was never"
                " called; call it once after creating the app"
            )
        await self.start()
        try:
            yield
        finally:
            await self.aclose()

    def install(self, app: FastAPI) -> None:
        """Attach the guard to ``app``: dependencies find its parts there; error handlers; and,
        when login is configured, the ``/auth`` routes and the session middleware."""
        app.state.oidc_guard = self
        self._installed = True
        cfg = self.config
        resource = cfg.resource_identifier
        app.state.oidc_installed = Installed(
            config=cfg, auth=self.auth, tokens=self.tokens, machine=self.machine,
            resource_metadata=metadata_url(resource) if resource else None,
        )  # fmt: skip
        install_error_handlers(app)
        if resource:
            install_resource_metadata(
                app, resource=resource, authorization_servers=self.issuers.stacks,
                dpop_algorithms=cfg.dpop_algorithms if cfg.dpop != "off" else (),
                dpop_required=cfg.dpop == "required",
            )  # fmt: skip
        install_openapi(
            app, issuer=cfg.issuer, client_id=cfg.swagger_client_id or cfg.client_id,
            scope=cfg.scope, audience=cfg.audience,
        )  # fmt: skip
        if self.sessions is not None and self.login is not None and self.backchannel is not None:
            router = build_router(
                config=cfg, login=self.login, auth=self.auth, tokens=self.tokens,
                backchannel=self.backchannel, error_page=self.error_page,
            )  # fmt: skip
            # Included as FastAPI includes any router (app-level dependencies apply to them),
            # then gathered into one prefix-gated entry.
            # Whatever include_router appended (one entry per route, or, in newer FastAPI, one
            # entry for the whole router): never the app's own routes declared before, nor
            # /docs and /openapi.json.
            before = len(app.router.routes)
            app.include_router(router)
            added = app.router.routes[before:]
            del app.router.routes[before:]
            app.router.routes.append(PrefixedRoutes(cfg.routes_prefix, added))
            app.add_middleware(
                SessionMiddleware, manager=self.sessions, render_error=error_response
            )

    # -- the parts' verbs, for code that holds the guard (routes use the dependencies) --------

    async def authenticate(self, request: HTTPConnection) -> User:
        """The user of ``request`` (see :meth:`Authenticator.authenticate`)."""
        return await self.auth.authenticate(request)

    async def session(self, request: HTTPConnection) -> SessionData | None:
        """The request's browser session, or ``None`` (see :meth:`Authenticator.session`)."""
        return await self.auth.session(request)

    async def session_user(self, request: HTTPConnection) -> User | None:
        return await self.auth.session_user(request)

    async def access_token_for(
        self,
        request: HTTPConnection,
        *,
        audience: str | None,
        scope: str | None,
        min_ttl: float = 60.0,
        force_refresh: bool = False,
    ) -> AccessToken:
        """A fresh access token of the request's session (see
        :meth:`TokenService.access_token_for`)."""
        return await self.tokens.access_token_for(
            request, audience=audience, scope=scope, min_ttl=min_ttl, force_refresh=force_refresh
        )

    # -- outside requests: background jobs ----------------------------------------------------

    async def client_credentials_token(
        self, audience: str | None = None, *, scope: str | None = None, min_ttl: float = 60.0
    ) -> AccessToken:
        """The app's own access token (client credentials grant) for ``audience`` (default:
        ``OIDC_AUDIENCE``), as the ``client_credentials_token`` dependency gives it: cached
        until ``min_ttl`` seconds before expiry, one grant in flight however many ask."""
        return await self.machine.client_credentials(
            audience=audience or self.config.audience, scope=scope, min_ttl=min_ttl
        )

    async def access_token_from_refresh_token(
        self,
        refresh_token: str,
        *,
        sub: str,
        audience: str | None = None,
        scope: str | None = None,
        min_ttl: float = 60.0,
        force_refresh: bool = False,
        on_rotated: Callable[[str], Awaitable[None]] | None = None,
    ) -> AccessToken:
        """A user's access token for ``audience`` (default: ``OIDC_AUDIENCE``) from the refresh
        token the app stored for ``sub`` (see :meth:`offline_grant`), with the refresh,
        single-flight and rotation rules of a request. ``on_rotated(new_refresh_token)`` is
        awaited when the provider rotated it: store the new one. A refused refresh token is
        :class:`LoginRequired` (the user must sign in again)."""
        return await self.tokens.for_refresh_token(
            refresh_token, sub=sub, audience=audience or self.config.audience, scope=scope,
            min_ttl=min_ttl, force_refresh=force_refresh, on_rotated=on_rotated,
        )  # fmt: skip

    async def offline_grant(self, request: HTTPConnection, *, detach: bool = True) -> OfflineGrant:
        """What a background job needs to act for the signed-in user later: their ``sub`` and
        the session's refresh token (``NoRefreshToken`` without one: ask ``offline_access``).
        Store it encrypted; it is as powerful as the user's session.

        ``detach`` (the default) moves the refresh token to the job: the session keeps its
        access tokens until they expire, then the user signs in again (a grant of its own),
        and logout no longer revokes the job's token. Two holders of one refresh token break
        at the first rotation (the provider sees a reuse and revokes the grant, for both);
        ``detach=False`` shares it, for providers that never rotate refresh tokens."""
        session = await self.auth.require_session(request, why="offline_grant needs a session")
        if not session.refresh_token:
            raise NoRefreshToken("the session has no refresh token: ask the offline_access scope")
        grant = OfflineGrant(sub=session.sub, refresh_token=session.refresh_token)
        if detach and self.sessions is not None:
            await self.sessions.save(
                request.scope, session.model_copy(update={"refresh_token": None})
            )
        return grant

    async def userinfo_for(self, request: HTTPConnection) -> dict[str, Any]:
        return await self.tokens.userinfo_for(request)

    async def user_from_token(self, token: str) -> User:
        """Verify a bearer access token and build the user model from its claims."""
        return await self.auth.user_from_token(token)

    def user_from_claims(self, claims: dict[str, Any]) -> User:
        return self.auth.user_from_claims(claims)

    def while_authenticated(
        self, websocket: WebSocket, *, every: float = 5.0
    ) -> AbstractAsyncContextManager[None]:
        """``async with guard.while_authenticated(websocket): ...``: the socket is closed (1008)
        as soon as its token expires, its session is logged out (here or, through Redis, on any
        instance) or reaches its absolute lifetime; checked every ``every`` seconds. Use it in
        a WebSocket route after the dependency authenticated the socket."""
        return close_when_ended(websocket, credential_check(self.auth, websocket), every=every)
