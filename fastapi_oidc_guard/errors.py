"""The library's errors: one base with a stable ``code``, narrow subclasses.

Messages (``str(err)``) say what was expected and what was found; they are for logs. HTTP bodies
never carry them: ``http_errors.py`` maps each ``code`` to a fixed description.

Exception tree::

    OIDCGuardError
    ├── ConfigurationError                 configuration_error   (raised when the guard is built)
    ├── NotAuthenticated                   not_authenticated     401
    │   ├── LoginRedirect                  pages: 302 to the login route instead
    │   └── SessionEnded                   the session ended while the request was in flight
    ├── InvalidToken                       invalid_token         401
    │   ├── MalformedAuthorization         the header is not ``Bearer <token>``
    │   ├── MalformedToken                 shape, size, encoding, header
    │   ├── UnsupportedAlgorithm           alg outside the allow-list
    │   ├── KeyNotFound                    no key with that kid, even after a refetch
    │   ├── UnusableKey                    a key exists but does not fit the token
    │   ├── InvalidSignature
    │   ├── WrongTokenType                 e.g. an ID token used as a bearer token
    │   ├── ClaimError                     carries ``claim`` and ``reason``
    │   │   ├── ExpiredToken
    │   │   ├── TokenNotYetValid           ``nbf`` or ``iat`` in the future
    │   │   ├── InvalidIssuer
    │   │   └── InvalidAudience
    │   ├── InvalidUserClaims              claims do not validate against the user model
    │   ├── TokenBindingMismatch           DPoP: a bound token as Bearer, or another key's proof
    │   └── InvalidDPoPProof               invalid_dpop_proof    401 (RFC 9449)
    ├── InsufficientScope                  insufficient_scope    403
    ├── CrossOriginRequest                 cross_origin_request  403 (cookie-authenticated write
    │                                                                from another origin)
    ├── SessionTooLarge                    session_too_large     500 (the app stores too much)
    ├── InsufficientUserAuthentication     insufficient_user_authentication 401 (step-up, RFC 9470)
    ├── LoginRequired                      login_required        401
    │   └── NoRefreshToken                 expired token, no refresh token (offline_access)
    ├── TemporarilyUnavailable             temporarily_unavailable 503
    │   ├── DiscoveryError
    │   └── KeySetUnavailable
    └── InvalidRequest                     invalid_request       400
        ├── StaleCallback                  a callback without its login (expired, replayed)
        ├── AccessDenied                   access_denied         400
        └── TokenRequestFailed             the token endpoint refused (``error`` holds its code)
"""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "ClaimError",
    "ConfigurationError",
    "CrossOriginRequest",
    "DiscoveryError",
    "ExpiredToken",
    "InsufficientScope",
    "InsufficientUserAuthentication",
    "InvalidAudience",
    "InvalidDPoPProof",
    "InvalidIssuer",
    "InvalidRequest",
    "InvalidSignature",
    "InvalidToken",
    "InvalidUserClaims",
    "KeyNotFound",
    "KeySetUnavailable",
    "LoginRedirect",
    "LoginRequired",
    "MalformedAuthorization",
    "MalformedToken",
    "NoRefreshToken",
    "NotAuthenticated",
    "OIDCGuardError",
    "SessionEnded",
    "SessionTooLarge",
    "StaleCallback",
    "TemporarilyUnavailable",
    "TokenBindingMismatch",
    "TokenNotYetValid",
    "TokenRequestFailed",
    "UnsupportedAlgorithm",
    "UnusableKey",
    "WrongTokenType",
]


class OIDCGuardError(Exception):
    """Base of every error raised by the library. ``code`` is stable and machine-readable."""

    code: str = "oidc_guard_error"


class ConfigurationError(OIDCGuardError, ValueError):
    """A missing or contradictory setting; the message names the setting and the fix."""

    code = "configuration_error"


class NotAuthenticated(OIDCGuardError):
    """The request carries no credentials at all."""

    code = "not_authenticated"


class LoginRedirect(NotAuthenticated):
    """A page needs a signed-in user: the browser is sent to ``location`` (the login route)."""

    def __init__(self, message: str, *, location: str) -> None:
        super().__init__(message)
        self.location = location


class SessionEnded(NotAuthenticated):
    """The session ended (logout, back-channel logout) while this request was using it."""


class CrossOriginRequest(OIDCGuardError):
    """A cookie-authenticated unsafe request (POST, PUT, PATCH, DELETE) came from another
    origin (``Origin`` or ``Sec-Fetch-Site`` say so) that is not in ``trusted_origins``: the
    cross-site request forgery that SameSite=Lax does not stop (sibling subdomains, or
    ``SameSite=None``). Bearer requests are never refused for this."""

    code = "cross_origin_request"


class SessionTooLarge(OIDCGuardError):
    """A session would need more cookie bytes than ``max_cookie_bytes``: browsers and servers
    drop such cookies, so it is refused where it is set instead of being lost silently."""

    code = "session_too_large"


class InvalidToken(OIDCGuardError):
    """A credential was presented and it is not acceptable."""

    code = "invalid_token"


class TokenBindingMismatch(InvalidToken):
    """A DPoP-bound token (``cnf.jkt``) presented as ``Bearer``, or with a proof of another
    key; or an unbound token presented with the ``DPoP`` scheme (RFC 9449 section 7)."""


class InvalidDPoPProof(InvalidToken):
    """The ``DPoP`` proof header is missing, malformed, or fails a check of RFC 9449
    section 4.3 (type, algorithm, key, signature, method, URL, age, replay, token hash)."""

    code = "invalid_dpop_proof"


class MalformedAuthorization(InvalidToken):
    """The ``Authorization`` header is not ``Bearer <token>`` (one token, no spaces)."""


class MalformedToken(InvalidToken):
    """Not a compact JWS we accept: size, segments, base64url, JSON or header rules."""


class UnsupportedAlgorithm(InvalidToken):
    """The ``alg`` header is not in the configured allow-list."""


class KeyNotFound(InvalidToken):
    """No key in the issuer's key set has the token's ``kid`` (after at most one refetch)."""


class UnusableKey(InvalidToken):
    """A key was found but its type, curve, size, ``use``, ``key_ops`` or ``alg`` do not fit."""


class InvalidSignature(InvalidToken):
    """The signature does not verify with the selected key."""


class WrongTokenType(InvalidToken):
    """The token is of another kind (``typ`` or markers), e.g. an ID token sent as bearer."""


class ClaimError(InvalidToken):
    """A claim is missing, has the wrong type or the wrong value."""

    def __init__(self, claim: str, reason: str) -> None:
        super().__init__(f"claim {claim!r}: {reason}")
        self.claim = claim
        self.reason = reason


class ExpiredToken(ClaimError):
    """``exp`` is in the past (leeway included)."""


class TokenNotYetValid(ClaimError):
    """``nbf`` is not reached yet, or ``iat`` is in the future (leeway included): often a clock
    skew between the provider and this machine."""


class InvalidIssuer(ClaimError):
    """``iss`` is missing or is not the issuer (or one of the issuers) this app trusts."""


class InvalidAudience(ClaimError):
    """``aud`` does not contain the expected audience."""


class InvalidUserClaims(InvalidToken):
    """The verified claims do not validate against the user model."""


class InsufficientScope(OIDCGuardError):
    """Authenticated, but without the scopes, permissions or roles the route needs."""

    code = "insufficient_scope"

    def __init__(self, message: str, *, required: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.required = required


class WrongPrincipal(OIDCGuardError):
    """Authenticated, but as a user where the route serves only services, or the reverse."""

    code = "wrong_principal"


class InsufficientUserAuthentication(OIDCGuardError):
    """Authenticated, but too long ago (``max_age``) or not strongly enough (``acr``) for the
    route: RFC 9470's challenge. ``max_age`` and ``acr_values`` say what a new login must do."""

    code = "insufficient_user_authentication"

    def __init__(
        self, message: str, *, max_age: int | None = None, acr_values: str | None = None
    ) -> None:
        super().__init__(message)
        self.max_age = max_age
        self.acr_values = acr_values


class LoginRequired(OIDCGuardError):
    """The session cannot produce what was asked (e.g. refresh impossible): log in again.

    ``end_session`` is true when the session is dead (the provider refused its refresh token).
    """

    code = "login_required"

    def __init__(self, message: str, *, end_session: bool = False) -> None:
        super().__init__(message)
        self.end_session = end_session


class NoRefreshToken(LoginRequired):
    """The access token expired and the session has no refresh token to renew it."""


class TemporarilyUnavailable(OIDCGuardError):
    """The provider or the session store cannot be reached or answered garbage."""

    code = "temporarily_unavailable"
    retry_after: int = 5


class DiscoveryError(TemporarilyUnavailable):
    """The discovery document could not be fetched or is not acceptable."""


class KeySetUnavailable(TemporarilyUnavailable):
    """No usable key set: never fetched successfully, or stale beyond the limit."""


class InvalidRequest(OIDCGuardError):
    """A malformed request to one of the library's own endpoints."""

    code = "invalid_request"


class StaleCallback(InvalidRequest):
    """A callback whose login transaction is gone: expired, already used (a replayed or
    bookmarked callback URL), or started in another browser."""


class AccessDenied(InvalidRequest):
    """The provider answered the authorization request with an error."""

    code = "access_denied"


class TokenRequestFailed(InvalidRequest):
    """The token endpoint answered with an OAuth error (``error`` is its code, for logs)."""

    def __init__(self, message: str, *, error: str) -> None:
        super().__init__(message)
        self.error = error
