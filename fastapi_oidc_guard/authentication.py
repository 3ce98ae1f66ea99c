"""Who is calling: the one authenticator for every ASGI connection (HTTP request or WebSocket).

A request is authenticated by exactly one credential (docs/architecture.md, "the walk of a
bearer request" and "of a session request"):

- an ``Authorization`` header, when present, is the only credential looked at;
- on a WebSocket handshake without one, a ``bearer.<token>`` subprotocol (or, when the app opted
  in, ``?access_token=``) counts as a bearer token (``websocket_auth``);
- otherwise the session cookie, through the session layer, and only from an allowed origin when
  the request can change state (``csrf``).

The user model is validated once per token (cached with the verified token) and once per request
for a session; a model that refuses the claims is a 401, never a 500.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from fastapi.requests import HTTPConnection
from pydantic import ValidationError

from .config import GuardConfig
from .csrf import is_unsafe, write_allowed
from .errors import CrossOriginRequest, InvalidUserClaims, NotAuthenticated
from .issuers import IssuerVerifiers
from .models import SessionData, User
from .sessions.manager import SessionManager
from .token_sets import token_key
from .websocket_auth import bearer_token, carries_bearer

__all__ = ["Authenticator"]


def _socket_query(conn: HTTPConnection) -> Callable[[], Mapping[str, str]] | None:
    return (lambda: conn.query_params) if conn.scope["type"] == "websocket" else None


class _Recipe:
    """What the verified-token cache keeps for the user model: the claims as JSON (each later
    request validates its own user from them) and the first user, for the request that built
    it."""

    __slots__ = ("data", "first")

    def __init__(self, data: bytes, first: User) -> None:
        self.data = data
        self.first: User | None = first


class Authenticator:
    """Bearer tokens (through ``issuers``) and session cookies (through ``sessions``, when login
    is configured) to instances of ``user_model``."""

    def __init__(
        self,
        *,
        config: GuardConfig,
        issuers: IssuerVerifiers,
        sessions: SessionManager | None,
        user_model: type[User],
    ) -> None:
        self.config = config
        self.issuers = issuers
        self.sessions = sessions
        self.user_model = user_model
        self.write_origins = frozenset({config.origin or "", *config.trusted_origins}) - {""}
        # Session users' scopes: those granted with the session's default access token.
        self._default_token = token_key(config.audience, config.scope)

    def uses_bearer(self, conn: HTTPConnection) -> bool:
        """Whether ``conn``'s credential is a bearer token (else the session cookie)."""
        return carries_bearer(
            conn.headers, socket_query=_socket_query(conn),
            allow_query=self.config.websocket_query_token,
        )  # fmt: skip

    def bearer_token(self, conn: HTTPConnection) -> str | None:
        """``conn``'s bearer token, or ``None`` (its credential is then the session cookie)."""
        return bearer_token(
            conn.headers, socket_query=_socket_query(conn),
            allow_query=self.config.websocket_query_token,
        )  # fmt: skip

    async def authenticate(self, conn: HTTPConnection) -> User:
        """The user of ``conn``; raises ``NotAuthenticated`` or ``InvalidToken``."""
        token = self.bearer_token(conn)
        if token is not None:
            return await self.user_from_token(token)
        user = await self.session_user(conn)
        if user is None:
            raise NotAuthenticated("no Authorization header and no session")
        return user

    async def session(self, conn: HTTPConnection) -> SessionData | None:
        """The connection's browser session, or ``None``.

        A cookie-authenticated unsafe request (any method but GET, HEAD, OPTIONS, TRACE), or a
        WebSocket handshake, from another origin raises :class:`CrossOriginRequest` (403; a
        refused socket) instead: see ``fastapi_oidc_guard.csrf``.
        """
        if self.sessions is None:
            return None
        session = await self.sessions.get(conn.scope)
        method = str(conn.scope.get("method", "WEBSOCKET"))  # a handshake can change state
        if (
            session is not None
            and is_unsafe(method)
            and not write_allowed(conn.headers, allowed_origins=self.write_origins)
        ):
            origin, site = conn.headers.get("origin"), conn.headers.get("sec-fetch-site")
            raise CrossOriginRequest(
                f"{method} with the session cookie from origin {origin!r} "
                f"(sec-fetch-site {site!r}); allowed: {sorted(self.write_origins)}"
            )
        return session

    async def require_session(self, conn: HTTPConnection, *, why: str) -> SessionData:
        session = await self.session(conn)
        if session is None:
            raise NotAuthenticated(why)
        return session

    async def session_user(self, conn: HTTPConnection) -> User | None:
        """The user of the connection's session (built once per request), or ``None``."""
        if self.sessions is None:
            return None
        session = await self.session(conn)
        if session is None:
            return None
        cache = self.sessions.slot(conn.scope).cache
        user: User | None = cache.get("user")
        if user is None:
            claims = session.user
            default = session.tokens.get(self._default_token)
            if "scope" not in claims and default is not None and default.scope:
                claims = {**claims, "scope": default.scope}
            # From a JSON copy: the user shares no list or dict with the session the store
            # hands out to other requests (a route that edits its user edits only its own).
            user = self._from_json(json.dumps(claims, separators=(",", ":"))).as_session_user()
            cache["user"] = user
        return user

    async def user_from_token(self, token: str) -> User:
        """Verify a bearer access token and build the user model from its claims.

        The claims are validated against the user model once per verified token (a model that
        refuses them is a 401 every time); each request gets a user of its own, lists and
        nested claims included, so a route that changes its user (``user.permissions.append``)
        changes nobody else's, and no later request's authorization."""
        recipe = await self.issuers.principal(token, self._recipe)
        first = recipe.first
        if first is not None:  # the request that verified the token uses the model it built
            recipe.first = None
            return first
        return self._from_json(recipe.data)

    def _from_json(self, data: str | bytes) -> User:
        try:
            return self.user_model.model_validate_json(data)
        except ValidationError as err:
            raise self._refused(err) from err

    def _recipe(self, claims: dict[str, Any]) -> _Recipe:
        # From the JSON, even the first user: the model's validators never see the cached
        # claims (a validator editing its input in place would change every later hit).
        data = json.dumps(claims, separators=(",", ":")).encode()
        return _Recipe(data, self._from_json(data))  # refused claims raise here, never cached

    def user_from_claims(self, claims: dict[str, Any]) -> User:
        """Validate verified claims against ``user_model``; failure is a 401, never a 500."""
        try:
            return self.user_model.model_validate(claims)
        except ValidationError as err:
            raise self._refused(err) from err

    def _refused(self, err: ValidationError) -> InvalidUserClaims:
        return InvalidUserClaims(
            f"claims do not fit {self.user_model.__name__}: {err.error_count()} errors"
        )

    def public_profile(self, user: User) -> dict[str, Any]:
        """What ``/auth/profile`` sends to the browser."""
        return user.model_dump(by_alias=True, exclude_none=True)
