"""Who is calling: the one authenticator for every ASGI connection (HTTP request or WebSocket).

A request is authenticated by exactly one credential (docs/architecture.md, "the walk of a
bearer request" and "of a session request"):

- an ``Authorization`` header, when present, is the only credential looked at: ``Bearer``
  (an OIDC access token, or an extra verifier's by prefix), ``DPoP`` (an access token bound to
  the request's ``DPoP`` proof, RFC 9449), or an extra verifier's own scheme;
- else an extra verifier's own header (``X-API-Key``);
- on a WebSocket handshake without one, a ``bearer.<token>`` subprotocol (or, when the app opted
  in, ``?access_token=``) counts as a bearer token (``websocket_auth``);
- otherwise the session cookie, through the session layer, and only from an allowed origin when
  the request can change state (``csrf``).

A token bound to a key (``cnf``) is accepted only with the ``DPoP`` scheme and a proof of that
key; the ``DPoP`` scheme is accepted only for a token bound to the proof's key.

The user model is validated once per token (cached with the verified token) and once per request
for a session; a model that refuses the claims is a 401, never a 500.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Protocol, TypeVar

from fastapi.requests import HTTPConnection
from pydantic import ValidationError

from ._cache import SeenIds
from .config import GuardConfig
from .csrf import is_unsafe, write_allowed
from .dpop import DPOP_SCHEME, check_proof
from .errors import (
    CrossOriginRequest,
    InvalidDPoPProof,
    InvalidUserClaims,
    MalformedAuthorization,
    NotAuthenticated,
    TokenBindingMismatch,
)
from .extra_verifiers import CredentialVerifier, VerifierSet
from .issuers import IssuerVerifiers
from .models import SessionData, User
from .paths import received_path
from .sessions.base import SharedState
from .sessions.manager import SessionManager
from .token_sets import token_key
from .websocket_auth import B64TOKEN, carries_bearer, socket_token, split_authorization

__all__ = ["Authenticator", "Credential", "TokenSource"]

T = TypeVar("T")


class TokenSource(Protocol):
    """Where an access token's claims come from besides local JWT verification (RFC 7662
    introspection): ``handles(token)`` says whether it takes the token."""

    def handles(self, token: str) -> bool: ...

    async def principal(self, token: str, build: Callable[[dict[str, Any]], T]) -> T: ...


class Credential(NamedTuple):
    """The one credential of a connection: ``kind`` is ``"bearer"``, ``"dpop"`` or an extra
    verifier's name."""

    kind: str
    token: str
    verifier: CredentialVerifier | None = None


def _socket_query(conn: HTTPConnection) -> Callable[[], Mapping[str, str]] | None:
    return (lambda: conn.query_params) if conn.scope["type"] == "websocket" else None


class _Recipe:
    """What the verified-token cache keeps for the user model: the claims as JSON (each later
    request validates its own user from them) and the first user, for the request that built
    it."""

    __slots__ = ("bound", "data", "first", "jkt")

    def __init__(self, data: bytes, first: User, cnf: Any) -> None:
        self.data = data
        self.first: User | None = first
        # Bound to a key (RFC 7800 cnf: DPoP's jkt, mTLS's x5t#S256...): never a Bearer token.
        self.bound = cnf is not None
        jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
        self.jkt = jkt if isinstance(jkt, str) else None


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
        verifiers: VerifierSet | None = None,
        introspection: TokenSource | None = None,
        shared: SharedState | None = None,
    ) -> None:
        self.config = config
        self.issuers = issuers
        self.sessions = sessions
        self.user_model = user_model
        self.verifiers = verifiers or VerifierSet(())
        self.introspection = introspection
        # Spent DPoP proofs: in the shared store (every instance), else in this process (a
        # flood never evicts a spent one: the store refuses new ones while full).
        self._shared = shared
        self._seen = SeenIds(clock=config.clock, fail_closed=True)
        self._dpop_algorithms = frozenset(config.dpop_algorithms)
        self.write_origins = frozenset({config.origin or "", *config.trusted_origins}) - {""}
        # Session users' scopes: those granted with the session's default access token.
        self._default_token = token_key(config.audience, config.scope)

    def uses_bearer(self, conn: HTTPConnection) -> bool:
        """Whether ``conn``'s credential is a token (else the session cookie)."""
        if (
            self.verifiers.headers
            and "authorization" not in conn.headers
            and self.verifiers.for_headers(conn.headers) is not None
        ):
            return True
        return carries_bearer(
            conn.headers, socket_query=_socket_query(conn),
            allow_query=self.config.websocket_query_token,
        )  # fmt: skip

    def credential(self, conn: HTTPConnection) -> Credential | None:
        """``conn``'s token credential, or ``None`` (its credential is then the session
        cookie); :class:`MalformedAuthorization` for an ``Authorization`` header of no known
        scheme."""
        authorization = conn.headers.get("authorization")
        if authorization is not None:
            scheme, token = split_authorization(authorization)
            verifier = self.verifiers.for_authorization(scheme, token)
            if verifier is not None:
                return Credential(verifier.name, token, verifier)
            if scheme == "bearer":
                return Credential("bearer", token)
            if scheme == DPOP_SCHEME and self.config.dpop != "off":
                return Credential("dpop", token)
            raise MalformedAuthorization(f"Authorization scheme {scheme[:16]!r} is not accepted")
        if self.verifiers.headers:
            found = self.verifiers.for_headers(conn.headers)
            if found is not None:
                return Credential(found[0].name, found[1].strip(), found[0])
        query = _socket_query(conn)
        if query is not None:
            allow = self.config.websocket_query_token
            passed = socket_token(conn.headers, query(), allow_query=allow)
            if passed is not None:
                return Credential("bearer", passed)
        return None

    async def authenticate(self, conn: HTTPConnection) -> User:
        """The user of ``conn``; raises ``NotAuthenticated`` or ``InvalidToken``."""
        found = self.credential(conn)
        if found is not None:
            if found.kind == "dpop":
                return await self._dpop_user(conn, found.token)
            return await self.revalidate(found)
        user = await self.session_user(conn)
        if user is None:
            raise NotAuthenticated("no Authorization header and no session")
        return user

    async def revalidate(self, found: Credential) -> User:
        """The user of a token credential, checked again without its request (a socket's
        periodic check; a DPoP token's proof was checked at the handshake)."""
        if found.verifier is not None:
            claims = await found.verifier.claims(found.token)
            try:  # a JSON copy: the user shares nothing with what the app's store holds
                data = json.dumps(claims, separators=(",", ":"))
            except (TypeError, ValueError) as err:
                raise InvalidUserClaims(f"{found.kind}: the claims are not JSON ({err})") from err
            user = self._from_json(data)
            return user.authenticated_with(found.verifier.name, found.verifier.principal)
        if found.kind == "dpop":
            user, _ = await self._token_user(found.token)
            return user.authenticated_with("dpop")
        if self.config.dpop == "required":
            raise TokenBindingMismatch("this API accepts DPoP-bound access tokens only")
        user, recipe = await self._token_user(found.token)
        if recipe.bound:
            raise TokenBindingMismatch("a token bound to a key (cnf) presented as Bearer")
        return user.authenticated_with("bearer")

    async def _dpop_user(self, conn: HTTPConnection, token: str) -> User:
        """RFC 9449 section 4.3 and 7.1: the proof (locally), then the token, then the
        binding, then the proof's ``jti`` spent once (so that only a valid request spends)."""
        if not token.isascii() or not set(token) <= B64TOKEN:
            raise MalformedAuthorization("the DPoP token is not an RFC 6750 b64token")
        proofs = conn.headers.getlist("dpop")
        if len(proofs) != 1:
            raise InvalidDPoPProof(f"{len(proofs)} DPoP headers, exactly one needed")
        cfg = self.config
        proof = check_proof(
            proofs[0], method=str(conn.scope.get("method", "GET")), url=self.request_url(conn),
            access_token=token, algorithms=self._dpop_algorithms, now=cfg.clock(),
            max_age=cfg.dpop_max_age, leeway=cfg.leeway,
        )  # fmt: skip
        user, recipe = await self._token_user(token)
        if recipe.jkt is None:
            raise TokenBindingMismatch("DPoP scheme with a token not bound to a DPoP key")
        if not hmac.compare_digest(recipe.jkt, proof.jkt):
            raise TokenBindingMismatch("the proof's key is not the one the token is bound to")
        jti = hashlib.sha256(proof.jti.encode()).hexdigest()
        # Remembered as long as the proof can be valid: iat up to leeway in the future, then
        # max_age (and leeway) in the past.
        keep = cfg.dpop_max_age + 2 * cfg.leeway + 60
        if not await self._first_use(f"dpop:{proof.jkt}:{jti}", keep):
            raise InvalidDPoPProof("proof jti already used (a replayed request)")
        return user.authenticated_with("dpop")

    async def _first_use(self, name: str, ttl: float) -> bool:
        if self._shared is not None:
            return await self._shared.first_use(name, ttl=ttl)
        return self._seen.first_use(name, until=self.config.clock() + ttl)

    def request_url(self, conn: HTTPConnection) -> str:
        """The URL a DPoP proof's ``htu`` must name: the configured public origin
        (``OIDC_BASE_URL``) or the request's, and the path as received (the prefix included)."""
        origin = self.config.origin
        if origin is None:
            url = conn.url
            scheme = {"ws": "http", "wss": "https"}.get(url.scheme, url.scheme)
            origin = f"{scheme}://{url.netloc}"
        return origin + received_path(conn.scope, self.config.app_path)

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
        if self.config.dpop == "required":
            raise TokenBindingMismatch("this API accepts DPoP-bound access tokens only")
        user, recipe = await self._token_user(token)
        if recipe.bound:  # no proof here: a key-bound token is never a bearer token
            raise TokenBindingMismatch("a token bound to a key (cnf) used without its proof")
        return user

    async def _token_user(self, token: str) -> tuple[User, _Recipe]:
        source: TokenSource | IssuerVerifiers = self.issuers
        if self.introspection is not None and self.introspection.handles(token):
            source = self.introspection
        recipe = await source.principal(token, self._recipe)
        first = recipe.first
        if first is not None:  # the request that verified the token uses the model it built
            recipe.first = None
            return first, recipe
        return self._from_json(recipe.data), recipe

    def _from_json(self, data: str | bytes) -> User:
        try:
            return self.user_model.model_validate_json(data)
        except ValidationError as err:
            raise self._refused(err) from err

    def _recipe(self, claims: dict[str, Any]) -> _Recipe:
        # From the JSON, even the first user: the model's validators never see the cached
        # claims (a validator editing its input in place would change every later hit).
        data = json.dumps(claims, separators=(",", ":")).encode()
        # refused claims raise here, never cached
        return _Recipe(data, self._from_json(data), claims.get("cnf"))

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
