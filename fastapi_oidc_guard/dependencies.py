"""FastAPI dependencies: ``require_user`` and ``optional_user``.

They are module-level async callables, so ``app.dependency_overrides[require_user]`` works, and
they find the guard through the request's app (set by ``OIDCGuard.install``). They are
``async def`` on purpose: a sync dependency costs a threadpool hop on every request.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode

from fastapi.requests import HTTPConnection
from fastapi.security import SecurityScopes

from .authentication import Authenticator
from .config import GuardConfig
from .errors import InsufficientScope, InvalidToken, LoginRedirect, NotAuthenticated
from .machine_tokens import MachineTokens
from .models import AccessToken, SessionData, User
from .paths import browser_path, mount_path
from .tokens import TokenService

__all__ = [
    "GuardAPI",
    "Installed",
    "access_token",
    "client_credentials_token",
    "get_guard",
    "installed",
    "optional_user",
    "require_page_user",
    "require_user",
    "userinfo",
]


@dataclass(frozen=True, slots=True)
class Installed:
    """What the dependencies use (the config, the authenticator, the session tokens, the app's
    own tokens), put on the app by ``OIDCGuard.install`` (the guard itself is
    never imported here: it is the composition root)."""

    config: GuardConfig
    auth: Authenticator
    tokens: TokenService
    machine: MachineTokens
    resource_metadata: str | None = None  # the RFC 9728 document's URL, named in challenges


class GuardAPI(Protocol):
    """What :func:`get_guard` gives: the public verbs of the guard installed on the app."""

    config: GuardConfig

    async def authenticate(self, request: HTTPConnection) -> User: ...

    async def session(self, request: HTTPConnection) -> SessionData | None: ...

    async def access_token_for(
        self,
        request: HTTPConnection,
        *,
        audience: str | None,
        scope: str | None,
        min_ttl: float = 60.0,
        force_refresh: bool = False,
    ) -> AccessToken: ...

    async def userinfo_for(self, request: HTTPConnection) -> dict[str, Any]: ...

    def user_from_claims(self, claims: dict[str, Any]) -> User: ...


_NOT_INSTALLED = "fastapi_oidc_guard: no guard on this app; call guard.install(app) at start-up"


def installed(request: HTTPConnection) -> Installed:
    """The parts installed on the request's app (what the dependencies use)."""
    parts: Installed | None = getattr(request.app.state, "oidc_installed", None)
    if parts is None:
        raise RuntimeError(_NOT_INSTALLED)
    return parts


def get_guard(request: HTTPConnection) -> GuardAPI:
    """The guard installed on the request's app (``Depends(get_guard)`` in a route that needs
    its verbs); a clear error if ``install`` was not called."""
    guard: GuardAPI | None = getattr(request.app.state, "oidc_guard", None)
    if guard is None:
        raise RuntimeError(_NOT_INSTALLED)
    return guard


async def require_user(request: HTTPConnection, security_scopes: SecurityScopes) -> User:
    """The authenticated user, or 401 JSON.

    With an ``Authorization`` header, that header is the only credential looked at: it must be
    ``Bearer <JWT>`` valid for the configured issuer and audience. The user is an instance of the
    guard's ``user_model`` (``User`` by default). ``Security(require_user, scopes=[...])`` also
    requires those scopes (403 ``insufficient_scope`` otherwise).
    """
    user = await installed(request).auth.authenticate(request)
    if security_scopes.scopes:
        missing = [s for s in security_scopes.scopes if s not in user.scopes]
        if missing:
            required = tuple(security_scopes.scopes)
            raise InsufficientScope(f"missing scopes {missing}", required=required)
    return user


async def require_page_user(request: HTTPConnection) -> User:
    """For pages: the signed-in user, or a 302 to the login route that comes back here.

    The equivalent of nextjs-auth0's ``withPageAuthRequired``. API routes should use
    :func:`require_user`, which answers 401 JSON instead.
    """
    guard = installed(request)
    try:
        return await guard.auth.authenticate(request)
    except NotAuthenticated as err:
        location = login_location(request, guard.config, {})
        raise LoginRedirect("page needs a signed-in user", location=location) from err


def login_location(request: HTTPConnection, config: GuardConfig, extra: dict[str, str]) -> str:
    """The login route (under the app's prefix) with ``returnTo`` this page (as the browser
    sees it) and ``extra`` parameters."""
    path = browser_path(request.scope, config.app_path)
    if request.url.query:
        path = f"{path}?{request.url.query}"
    mount = mount_path(config.app_path, request.scope)
    return f"{mount}{config.routes_prefix}/login?{urlencode({'returnTo': path, **extra})}"


async def optional_user(request: HTTPConnection) -> User | None:
    """Like :func:`require_user`, but ``None`` when the request carries no credentials at all.

    Credentials that are present but invalid still answer 401: a broken token is never silently
    treated as anonymous.
    """
    try:
        return await installed(request).auth.authenticate(request)
    except NotAuthenticated:
        return None


def access_token(
    audience: str | None = None, *, scope: str | None = None, min_ttl: float = 60.0
) -> Callable[..., Awaitable[AccessToken]]:
    """A dependency giving the signed-in user's access token for ``audience``.

    ``audience`` defaults to ``OIDC_AUDIENCE``. The token is refreshed with the session's refresh
    token when it expires within ``min_ttl`` seconds (single flight per session), and the new
    tokens are saved in the session. Memoised: the same arguments return the same object, so
    ``app.dependency_overrides[access_token(audience="x")]`` works.

    An opaque (non-JWT) token logs a warning once per process: see "Calling your own API".
    """
    return _access_token(audience, scope, float(min_ttl))


@functools.cache
def _access_token(
    audience: str | None, scope: str | None, min_ttl: float
) -> Callable[..., Awaitable[AccessToken]]:
    async def dependency(request: HTTPConnection) -> AccessToken:
        guard = installed(request)
        return await guard.tokens.access_token_for(
            request, audience=audience or guard.config.audience, scope=scope, min_ttl=min_ttl
        )

    dependency.__name__ = f"access_token({audience!r}, scope={scope!r})"
    return dependency


def client_credentials_token(
    audience: str | None = None, *, scope: str | None = None, min_ttl: float = 60.0
) -> Callable[..., Awaitable[AccessToken]]:
    """A dependency giving the app's own token (client credentials grant) for ``audience``,
    e.g. for a provider's management API. Cached in the process until ``min_ttl`` seconds
    before expiry; concurrent renewals share one request. Memoised like :func:`access_token`."""
    return _client_credentials_token(audience, scope, float(min_ttl))


@functools.cache
def _client_credentials_token(
    audience: str | None, scope: str | None, min_ttl: float
) -> Callable[..., Awaitable[AccessToken]]:
    async def dependency(request: HTTPConnection) -> AccessToken:
        guard = installed(request)
        return await guard.machine.client_credentials(
            audience=audience or guard.config.audience, scope=scope, min_ttl=min_ttl
        )

    dependency.__name__ = f"client_credentials_token({audience!r}, scope={scope!r})"
    return dependency


async def userinfo(request: HTTPConnection) -> User:
    """The signed-in user's full profile from the provider's userinfo endpoint (Clerk's
    ``currentUser()``), as the guard's user model; cached per session for a minute. Its ``sub``
    must equal the session's. Declare fields with ``Field(exclude=True)`` in your user model to
    keep private ones out of what routes return."""
    guard = installed(request)
    claims = await guard.tokens.userinfo_for(request)
    session = await guard.auth.session(request)
    if session is None or claims.get("sub") != session.sub:
        raise InvalidToken("userinfo sub does not match the session")
    return guard.auth.user_from_claims(claims)
