"""OpenID Connect for FastAPI: sign-in, sessions and token validation as dependencies.

from fastapi import Depends, FastAPI
from fastapi_oidc_guard import OIDCGuard, User, require_user

guard = OIDCGuard.from_env()
app = FastAPI(lifespan=guard.lifespan)
guard.install(app)

@app.get("/api/protected")
async def protected(user: User = Depends(require_user)):
    return {"userId": user.sub}
"""

from .authorization import (
    AuthState,
    auth_state,
    require_dpop,
    require_permissions,
    require_principal,
    require_roles,
    require_rule,
    require_scopes,
    require_step_up,
    roles_of,
)
from .config import GuardConfig
from .dependencies import (
    access_token,
    client_credentials_token,
    get_guard,
    optional_user,
    require_page_user,
    require_user,
    userinfo,
)
from .errors import (
    AccessDenied,
    ClaimError,
    ConfigurationError,
    CrossOriginRequest,
    DiscoveryError,
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
    KeySetUnavailable,
    LoginRedirect,
    LoginRequired,
    MalformedAuthorization,
    MalformedToken,
    NoRefreshToken,
    NotAuthenticated,
    OIDCGuardError,
    SessionEnded,
    SessionTooLarge,
    StaleCallback,
    TemporarilyUnavailable,
    TokenBindingMismatch,
    TokenNotYetValid,
    TokenRequestFailed,
    UnsupportedAlgorithm,
    UnusableKey,
    WrongPrincipal,
    WrongTokenType,
)
from .extra_verifiers import CredentialVerifier
from .guard import OIDCGuard
from .issuers import TrustedIssuer
from .jwks import KeySet, RemoteKeySet, StaticKeySet
from .models import AccessToken, OfflineGrant, ProviderMetadata, SessionData, TokenSet, User
from .sessions.base import SessionBackend
from .sessions.cookie import CookieSessionBackend
from .sessions.memory import MemorySessionBackend
from .verify import TokenVerifier

__all__ = [
    "AccessDenied",
    "AccessToken",
    "AuthState",
    "ClaimError",
    "ConfigurationError",
    "CookieSessionBackend",
    "CredentialVerifier",
    "CrossOriginRequest",
    "DiscoveryError",
    "ExpiredToken",
    "GuardConfig",
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
    "KeySet",
    "KeySetUnavailable",
    "LoginRedirect",
    "LoginRequired",
    "MalformedAuthorization",
    "MalformedToken",
    "MemorySessionBackend",
    "NoRefreshToken",
    "NotAuthenticated",
    "OIDCGuard",
    "OIDCGuardError",
    "OfflineGrant",
    "ProviderMetadata",
    "RemoteKeySet",
    "SessionBackend",
    "SessionData",
    "SessionEnded",
    "SessionTooLarge",
    "StaleCallback",
    "StaticKeySet",
    "TemporarilyUnavailable",
    "TokenBindingMismatch",
    "TokenNotYetValid",
    "TokenRequestFailed",
    "TokenSet",
    "TokenVerifier",
    "TrustedIssuer",
    "UnsupportedAlgorithm",
    "UnusableKey",
    "User",
    "WrongPrincipal",
    "WrongTokenType",
    "access_token",
    "auth_state",
    "client_credentials_token",
    "get_guard",
    "optional_user",
    "require_dpop",
    "require_page_user",
    "require_permissions",
    "require_principal",
    "require_roles",
    "require_rule",
    "require_scopes",
    "require_step_up",
    "require_user",
    "roles_of",
    "userinfo",
]

__version__ = "0.1.0"
