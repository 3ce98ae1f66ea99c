"""The one place where library errors become HTTP responses (docs/architecture.md).

Descriptions are fixed strings per error code: a response never echoes a token, a claim value or
an exception message. The detailed message goes to the ``fastapi_oidc_guard`` logger instead.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, WebSocket
from fastapi.requests import HTTPConnection
from fastapi.responses import JSONResponse, RedirectResponse, Response

from .errors import (
    AccessDenied,
    ClaimError,
    CrossOriginRequest,
    ExpiredToken,
    InsufficientScope,
    InsufficientUserAuthentication,
    InvalidAudience,
    InvalidDPoPProof,
    InvalidIssuer,
    InvalidRequest,
    InvalidSignature,
    InvalidToken,
    InvalidUserClaims,
    KeyNotFound,
    LoginRedirect,
    LoginRequired,
    MalformedAuthorization,
    MalformedToken,
    NoRefreshToken,
    NotAuthenticated,
    OIDCGuardError,
    SessionTooLarge,
    StaleCallback,
    TemporarilyUnavailable,
    TokenBindingMismatch,
    TokenNotYetValid,
    UnsupportedAlgorithm,
    UnusableKey,
    WrongPrincipal,
    WrongTokenType,
)

__all__ = ["describe", "error_response", "install_error_handlers", "log_refusal"]

logger = logging.getLogger("fastapi_oidc_guard")

NOT_AUTHENTICATED_DESCRIPTION = "The user does not have an active session or is not authenticated"

_DESCRIPTIONS: dict[type[OIDCGuardError], tuple[int, str]] = {
    NotAuthenticated: (401, NOT_AUTHENTICATED_DESCRIPTION),
    InvalidToken: (401, "The access token is invalid or has expired"),
    # One fixed description per rejection class: what failed, never a value from the token
    # (expected vs found goes to the fastapi_oidc_guard logger).
    MalformedAuthorization: (
        401,
        "The Authorization header must be 'Bearer' (or 'DPoP' with a DPoP proof) and one token",
    ),
    InvalidDPoPProof: (
        401,
        "The DPoP proof is missing, malformed, replayed, or does not match this request or token",
    ),
    TokenBindingMismatch: (
        401,
        "The access token's key binding does not match: DPoP-bound tokens need the DPoP scheme "
        "and a proof of their key",
    ),
    MalformedToken: (
        401,
        "The access token is not a well-formed signed JWT (an opaque token? request the token "
        "with this API's audience)",
    ),
    UnsupportedAlgorithm: (401, "The access token is signed with an algorithm this API refuses"),
    KeyNotFound: (401, "The access token is signed with a key its issuer does not publish"),
    UnusableKey: (401, "The issuer's key does not fit the access token's algorithm"),
    InvalidSignature: (401, "The access token's signature does not verify"),
    WrongTokenType: (
        401,
        "This is not an access token (an ID token or a logout token is never a bearer token)",
    ),
    ClaimError: (401, "A required claim of the access token is missing or invalid"),
    ExpiredToken: (401, "The access token has expired"),
    TokenNotYetValid: (
        401,
        "The access token is not valid yet (nbf or iat in the future: check the clocks)",
    ),
    InvalidIssuer: (401, "The access token's issuer is missing or not trusted by this API"),
    InvalidAudience: (401, "The access token was issued for another audience than this API"),
    InvalidUserClaims: (401, "The access token's claims do not fit this API's user model"),
    NoRefreshToken: (
        401,
        "The access token expired and the session has no refresh token: request the "
        "offline_access scope at login, then log in again",
    ),
    LoginRequired: (401, "The session cannot provide this token; the user must log in again"),
    InsufficientUserAuthentication: (
        401,
        "A more recent or stronger authentication is required for this request",
    ),
    InsufficientScope: (403, "The token does not grant the permissions this route requires"),
    WrongPrincipal: (403, "This route is not for this kind of caller (a user or a service)"),
    CrossOriginRequest: (
        403,
        "Requests that change state with the session cookie must come from this site's origin",
    ),
    SessionTooLarge: (500, "The session is too large to be stored in cookies"),
    TemporarilyUnavailable: (503, "The identity provider is temporarily unavailable"),
    AccessDenied: (400, "The sign-in was cancelled or refused at the identity provider"),
    StaleCallback: (400, "This sign-in has expired or was already completed"),
    InvalidRequest: (400, "The request is invalid"),
}


def describe(err: OIDCGuardError) -> tuple[int, str]:
    """The status and the fixed description of ``err`` (what its JSON answer says)."""
    for cls in type(err).__mro__:
        if cls in _DESCRIPTIONS:
            return _DESCRIPTIONS[cls]
    return 500, "Internal authentication error"


def _challenge(
    params: list[tuple[str, str]], resource_metadata: str | None, dpop_algs: str | None
) -> str:
    """A ``Bearer`` challenge (RFC 6750 section 3), or a ``DPoP`` one with ``algs`` (RFC 9449
    section 7.1) when ``dpop_algs`` is given, with ``params`` and, when the API has
    protected-resource metadata, ``resource_metadata`` (RFC 9728 section 5.1). Every value is
    a fixed string of this library or a configured value, never from the request."""
    if dpop_algs:
        params = [*params, ("algs", dpop_algs)]
    if resource_metadata:
        params = [*params, ("resource_metadata", resource_metadata)]
    quoted = ", ".join(
        f"{name}={value}" if name == "max_age" else f'{name}="{value}"' for name, value in params
    )
    scheme = "DPoP" if dpop_algs else "Bearer"
    return f"{scheme} {quoted}" if quoted else scheme


def error_response(
    err: OIDCGuardError, *, resource_metadata: str | None = None, dpop_algs: str | None = None
) -> Response:
    """The JSON response for ``err``: ``{"error": code, "description": fixed text}``.

    401 and 403 answers carry a ``WWW-Authenticate`` challenge: ``Bearer``, or ``DPoP`` with
    its ``algs`` when ``dpop_algs`` is given (a request that used DPoP, an API that requires
    it, a binding or proof error), naming ``resource_metadata`` (the URL of the API's RFC 9728
    document) when given. :class:`LoginRedirect` (pages) becomes a 302 to the login route.
    """
    if isinstance(err, LoginRedirect):
        no_store = {"Cache-Control": "no-store"}
        return RedirectResponse(err.location, status_code=302, headers=no_store)
    status, description = describe(err)
    headers = {"Cache-Control": "no-store"}
    params: list[tuple[str, str]] | None = None
    if isinstance(err, NotAuthenticated):
        params = []
    elif isinstance(err, InvalidToken):
        params = [("error", err.code), ("error_description", description)]
    elif isinstance(err, InsufficientScope):
        params = [("error", "insufficient_scope"), ("scope", " ".join(err.required))]
    elif isinstance(err, WrongPrincipal):
        params = [("error", "insufficient_scope"), ("error_description", description)]
    elif isinstance(err, InsufficientUserAuthentication):
        params = [("error", "insufficient_user_authentication"), ("error_description", description)]
        if err.max_age is not None:
            params.append(("max_age", str(err.max_age)))
        if err.acr_values:
            params.append(("acr_values", err.acr_values))
    elif isinstance(err, TemporarilyUnavailable):
        headers["Retry-After"] = str(err.retry_after)
    if params is not None:
        headers["WWW-Authenticate"] = _challenge(params, resource_metadata, dpop_algs)
    return JSONResponse(
        {"error": err.code, "description": description}, status_code=status, headers=headers
    )


def log_refusal(request: HTTPConnection, exc: OIDCGuardError) -> None:
    """The one log line of an answered error: method, path, code, class and the detailed
    reason (WARNING when the provider is unavailable, ERROR for an oversized session)."""
    level = logging.INFO
    if isinstance(exc, TemporarilyUnavailable):
        level = logging.WARNING
    elif isinstance(exc, SessionTooLarge):
        level = logging.ERROR
    method = request.scope.get("method")
    logger.log(level, "%s %s -> %s (%s): %s", method, request.url.path, exc.code,
               type(exc).__name__, exc)  # fmt: skip


async def _handle(request: HTTPConnection, exc: Exception) -> Response | None:
    assert isinstance(exc, OIDCGuardError)
    if isinstance(request, WebSocket):
        # A refused socket: closed before accept (the server answers the handshake with 403),
        # code 1008 (policy violation) and the error code as the reason; never an exception.
        logger.info("websocket %s -> %s (%s): %s", request.url.path, exc.code,
                    type(exc).__name__, exc)  # fmt: skip
        await request.close(code=1008, reason=exc.code)
        return None
    log_refusal(request, exc)
    parts = getattr(request.app.state, "oidc_installed", None)
    config = getattr(parts, "config", None)
    return error_response(
        exc, resource_metadata=getattr(parts, "resource_metadata", None),
        dpop_algs=_dpop_challenge(request, exc, config),
    )  # fmt: skip


def _dpop_challenge(request: HTTPConnection, exc: OIDCGuardError, config: Any) -> str | None:
    """The ``algs`` of a DPoP challenge when the answer should be one: DPoP on, and the
    request used the ``DPoP`` scheme, or the API requires it, or the error is about DPoP."""
    if config is None or config.dpop == "off":
        return None
    scheme = request.headers.get("authorization", "").partition(" ")[0].lower()
    if (
        scheme == "dpop"
        or config.dpop == "required"
        or isinstance(exc, InvalidDPoPProof | TokenBindingMismatch)
    ):
        return " ".join(config.dpop_algorithms)
    return None


def install_error_handlers(app: FastAPI) -> None:
    """Register the handler for every :class:`OIDCGuardError` on ``app`` (HTTP requests get
    the JSON answer; WebSocket handshakes are closed with 1008)."""
    app.add_exception_handler(OIDCGuardError, _handle)  # type: ignore[arg-type]
