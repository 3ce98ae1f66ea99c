"""Rules shared by everything that hands out access tokens (a session's, the app's own):
where a token set is kept (:func:`token_key`), whether it is fresh enough (:func:`fresh`),
how a refusal at the token endpoint is answered (:func:`provider_refusal`), and the audience
trap's warning (:class:`Handout`, once per process for every kind of token)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ._json import loads_strict
from .errors import TemporarilyUnavailable, TokenRequestFailed
from .jose import b64url_decode
from .models import AccessToken, TokenSet

__all__ = ["Handout", "fresh", "provider_refusal", "token_key", "unverified_audiences"]

logger = logging.getLogger("fastapi_oidc_guard.tokens")

# Token-endpoint errors that mean our own client registration or settings are wrong.
_OUR_CONFIGURATION = {
    "invalid_client": "OIDC_CLIENT_ID / OIDC_CLIENT_SECRET and token_endpoint_auth",
    "unauthorized_client": "the grant types allowed for OIDC_CLIENT_ID at the provider",
    "unsupported_grant_type": "the grant types allowed for OIDC_CLIENT_ID at the provider",
    "invalid_scope": "OIDC_SCOPE and the scopes asked by access_token(scope=...)",
    "invalid_target": "OIDC_AUDIENCE and the audiences asked by access_token(audience=...)",
}


def unverified_audiences(jwt: str) -> list[str] | None:
    """The ``aud`` of a JWT the provider just gave us, read without verifying it (only for a
    diagnosis: never to accept anything); ``None`` when it cannot be read."""
    try:
        claims = loads_strict(b64url_decode(jwt.split(".")[1]))
    except (ValueError, IndexError, RecursionError):
        return None
    aud = claims.get("aud") if isinstance(claims, dict) else None
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list):
        return [value for value in aud if isinstance(value, str)]
    return None


def token_key(audience: str | None, scope: str | None) -> str:
    return f"{audience or ''}|{scope or ''}"


def fresh(tokens: TokenSet | None, min_ttl: float, *, now: float) -> TokenSet | None:
    """``tokens`` if they stay valid for more than ``min_ttl`` seconds, else ``None``."""
    if tokens is None:
        return None
    if tokens.expires_at is not None and tokens.expires_at - now <= min_ttl:
        return None
    return tokens


def provider_refusal(err: TokenRequestFailed, *, what: str) -> TemporarilyUnavailable:
    """A token-endpoint refusal that is not the user's doing, as a 503 (never a 4xx to a
    caller who did nothing wrong); refusals that mean our configuration is wrong are logged at
    ERROR with the settings to check."""
    setting = _OUR_CONFIGURATION.get(err.error)
    if setting is not None:
        logger.error(
            "%s refused with %s: the provider says this app is misconfigured; check %s",
            what, err.error, setting,
        )  # fmt: skip
    else:
        logger.warning("%s refused with %s", what, err.error)
    return TemporarilyUnavailable(f"{what} refused: {err.error}")


class Handout:
    """Turns token sets into :class:`AccessToken` for routes, and warns once per process when
    one is opaque (the audience trap). An already expired token is never handed out."""

    def __init__(self, *, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._warned_opaque = False
        self._warned_audiences: set[str] = set()

    def __call__(self, tokens: TokenSet, *, expected_audience: str | None) -> AccessToken:
        self.diagnose(tokens.access_token, expected_audience=expected_audience)
        return AccessToken(
            token=tokens.access_token, token_type=tokens.token_type,
            expires_at=tokens.expires_at, scope=tokens.scope, audience=tokens.audience,
        )  # fmt: skip

    def just_issued(self, tokens: TokenSet) -> TokenSet:
        """``tokens`` just issued by the provider; 503 if already expired."""
        if fresh(tokens, 0.0, now=self._clock()) is None:
            raise TemporarilyUnavailable("the provider issued an access token already expired")
        return tokens

    def diagnose(self, access_token: str, *, expected_audience: str | None) -> None:
        """Warn once per process when an access token is opaque (the audience trap), and once
        per audience when a JWT asked for ``expected_audience`` does not carry it."""
        if access_token.count(".") == 2:
            self._check_audience(access_token, expected_audience)
            return
        if self._warned_opaque:
            return
        self._warned_opaque = True
        if expected_audience:
            logger.warning(
                "access token for audience %r is opaque, not a JWT: the provider does not know "
                "that API. Register it at the provider and use its identifier as the audience.",
                expected_audience,
            )
        else:
            logger.warning(
                "the access token is opaque because no audience was asked: your API cannot "
                "validate it. Set OIDC_AUDIENCE (or access_token(audience=...)) to your API's "
                "identifier as registered at the provider."
            )

    def _check_audience(self, access_token: str, expected: str | None) -> None:
        if expected is None or expected in self._warned_audiences:
            return
        found = unverified_audiences(access_token)
        if found is None or expected in found:
            return
        self._warned_audiences.add(expected)
        logger.warning(
            "the access token asked for audience %r carries aud %r: the provider ignored the "
            "audience/resource parameter (LemonLDAP::NG, Okta's authorization servers do) or "
            "knows the API by another identifier (Entra ID: its application id). That API "
            "will refuse it unless it accepts one of those audiences.", expected, found,
        )  # fmt: skip
