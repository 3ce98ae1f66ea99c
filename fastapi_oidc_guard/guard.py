"""``OIDCGuard``: wires configuration, discovery, keys and the verifier into a FastAPI app."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request
from pydantic import ValidationError

from ._http import build_client
from .config import GuardConfig
from .discovery import DiscoveryCache
from .errors import InvalidToken, InvalidUserClaims, NotAuthenticated
from .http_errors import install_error_handlers
from .jwks import RemoteKeySet
from .models import User
from .verify import TokenVerifier

__all__ = ["OIDCGuard", "parse_authorization"]

logger = logging.getLogger("fastapi_oidc_guard")


def parse_authorization(value: str) -> str:
    """The token of an ``Authorization: Bearer <token>`` header value; ``InvalidToken`` else."""
    scheme, _, token = value.partition(" ")
    token = token.strip(" ")
    if scheme.lower() != "bearer" or not token or " " in token:
        raise InvalidToken("Authorization header is not 'Bearer <token>'")
    return token


class OIDCGuard:
    """The library's entry point: build one per app, start it in ``lifespan``, ``install`` it.

    Example::

        guard = OIDCGuard.from_env()                 # or OIDCGuard(issuer=..., audience=...)
        app = FastAPI(lifespan=guard.lifespan)
        guard.install(app)

    Settings are the keyword arguments of :class:`GuardConfig` (or a ready ``config``).
    ``user_model`` is the Pydantic model (a :class:`User` subclass) that ``require_user`` returns.
    ``transport`` or ``http_client`` replace the HTTP layer towards the provider (an in-process
    fake issuer in tests, a proxy-aware client in production).
    """

    def __init__(
        self,
        *,
        config: GuardConfig | None = None,
        user_model: type[User] = User,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
        **settings: Any,
    ) -> None:
        if config is not None and settings:
            raise TypeError("pass either config=... or settings, not both")
        self.config = config if config is not None else GuardConfig(**settings)
        self.user_model = user_model
        self._transport = transport
        self._client: httpx.AsyncClient | None = http_client
        self._owns_client = http_client is None
        cfg = self.config
        self.discovery = DiscoveryCache(
            issuer=cfg.issuer, client=self.http_client, clock=cfg.clock,
            max_age=cfg.discovery_max_age,
        )  # fmt: skip
        self.keys = RemoteKeySet(
            jwks_uri=self._jwks_uri, client=self.http_client, clock=cfg.clock,
            algorithms=cfg.algorithms, max_age=cfg.jwks_max_age,
            min_max_age=cfg.jwks_min_max_age, max_max_age=cfg.jwks_max_max_age,
            cooldown=cfg.jwks_cooldown, stale_limit=cfg.jwks_stale_limit,
        )  # fmt: skip
        self.verifier = TokenVerifier(
            issuer=cfg.issuer, keys=self.keys, algorithms=cfg.algorithms, clock=cfg.clock,
            leeway=cfg.leeway, audience=cfg.audience, client_id=cfg.client_id,
            max_bytes=cfg.max_token_bytes, max_id_token_bytes=cfg.max_id_token_bytes,
            cache_size=cfg.token_cache_size,
        )  # fmt: skip
        if cfg.audience is None:
            logger.warning(
                "OIDC_AUDIENCE is not set: bearer tokens will be refused, and access tokens "
                "obtained at login may be opaque. Set it to your API's identifier."
            )

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        user_model: type[User] = User,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
        **overrides: Any,
    ) -> OIDCGuard:
        """Build from the ``OIDC_*`` environment variables; keyword arguments win."""
        config = GuardConfig.from_env(environ, **overrides)
        return cls(config=config, user_model=user_model, transport=transport,
                   http_client=http_client)  # fmt: skip

    # -- HTTP client and lifecycle -----------------------------------------------------------

    def http_client(self) -> httpx.AsyncClient:
        """The shared client; created on first use if the lifespan has not started it."""
        if self._client is None or self._client.is_closed:
            self._client = build_client(timeout=self.config.http_timeout, transport=self._transport)
            self._owns_client = True
        return self._client

    async def _jwks_uri(self) -> str:
        return (await self.discovery.get()).jwks_uri

    async def start(self) -> None:
        """Open the HTTP client and warm discovery and keys (failures are logged, not raised)."""
        self.http_client()
        await self.keys.warm()

    async def aclose(self) -> None:
        """Stop background refreshes and close the client if the guard created it."""
        self.keys.close()
        self.discovery.close()
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
        """Attach the guard to ``app`` (dependencies find it there) and its error handlers."""
        app.state.oidc_guard = self
        install_error_handlers(app)

    # -- authentication ----------------------------------------------------------------------

    async def authenticate(self, request: Request) -> User:
        """The user of ``request``; raises ``NotAuthenticated`` or ``InvalidToken``."""
        authorization = request.headers.get("authorization")
        if authorization is None:
            raise NotAuthenticated("no Authorization header")
        return await self.user_from_token(parse_authorization(authorization))

    async def user_from_token(self, token: str) -> User:
        """Verify a bearer access token and build the user model from its claims."""
        claims = await self.verifier.verify_access_token(token)
        return self.user_from_claims(claims)

    def user_from_claims(self, claims: dict[str, Any]) -> User:
        """Validate verified claims against ``user_model``; failure is a 401, never a 500."""
        try:
            return self.user_model.model_validate(claims)
        except ValidationError as err:
            raise InvalidUserClaims(
                f"claims do not fit {self.user_model.__name__}: {err.error_count()} errors"
            ) from err
