"""The public surface is explicit: ``__all__`` is sorted, complete and pinned."""

from __future__ import annotations

import fastapi_oidc_guard
import fastapi_oidc_guard.testing

EXPECTED = [
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
]  # fmt: skip


def test_all_is_pinned_and_sorted() -> None:
    assert fastapi_oidc_guard.__all__ == EXPECTED
    assert sorted(fastapi_oidc_guard.__all__) == fastapi_oidc_guard.__all__


def test_every_exported_name_exists() -> None:
    for module in (fastapi_oidc_guard, fastapi_oidc_guard.testing):
        for name in module.__all__:
            assert getattr(module, name) is not None, name


def test_testing_all_is_sorted() -> None:
    names = fastapi_oidc_guard.testing.__all__
    assert sorted(names) == names
