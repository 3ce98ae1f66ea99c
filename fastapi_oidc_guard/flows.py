"""OAuth 2.0 / OpenID Connect flows as functions over provider metadata. No routing here.

- :func:`authorization_params`: code flow with PKCE (S256 always), ``state``, ``nonce``,
  audience; :func:`pushed_authorization_url` (RFC 9126);
- :func:`check_callback_issuer`: RFC 9207 ``iss`` in the authorization response;
- the grants' requests (:func:`code_grant`, :func:`refresh_grant`,
  :func:`client_credentials_grant`) and :func:`token_request`, which sends them
  (client_secret_basic or client_secret_post);
- :func:`logout_url` and :func:`revoke_token`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx

from ._json import loads_strict
from .client_auth import ClientCredentials
from .config import AudienceParam
from .errors import InvalidRequest, TemporarilyUnavailable, TokenRequestFailed
from .models import ProviderMetadata, TokenSet
from .pkce import random_token
from .step_up import numeric_date

__all__ = [
    "ClientCredentials",
    "audience_params",
    "authorization_params",
    "check_callback_issuer",
    "client_credentials_grant",
    "code_grant",
    "logout_url",
    "pushed_authorization_url",
    "refresh_grant",
    "revoke_token",
    "token_request",
    "token_set",
    "with_query",
]


def with_query(url: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    query = parts.query + ("&" if parts.query else "") + urlencode(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def audience_params(audience: str | None, style: AudienceParam) -> dict[str, str]:
    """``audience`` (Auth0 style) and/or ``resource`` (RFC 8707) for ``audience``; nothing
    with ``none`` (providers that refuse both, and take the API from the scope: Entra ID)."""
    if not audience or style == "none":
        return {}
    if style == "both":
        return {"audience": audience, "resource": audience}
    return {style: audience}


def code_grant(
    code: str,
    *,
    redirect_uri: str,
    code_verifier: str,
    audience: str | None,
    style: AudienceParam,
) -> dict[str, str]:
    """The token request of the authorization code grant with PKCE."""
    return {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "code_verifier": code_verifier, **audience_params(audience, style)}  # fmt: skip


def refresh_grant(
    refresh_token: str, *, audience: str | None, scope: str | None, style: AudienceParam
) -> dict[str, str]:
    """The token request of the refresh token grant (a narrower ``scope`` when given)."""
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token,
            **audience_params(audience, style)}  # fmt: skip
    if scope:
        data["scope"] = scope
    return data


def client_credentials_grant(
    *, audience: str | None, scope: str | None, style: AudienceParam
) -> dict[str, str]:
    """The token request of the client credentials grant."""
    data = {"grant_type": "client_credentials", **audience_params(audience, style)}
    if scope:
        data["scope"] = scope
    return data


def authorization_params(
    *,
    client_id: str,
    redirect_uri: str,
    scope: str,
    state: str,
    nonce: str,
    code_challenge: str,
    audience: str | None = None,
    audience_param: AudienceParam = "both",
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The authorization request's parameters (in the URL, or pushed first: RFC 9126)."""
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        "nonce": nonce,
        "code_challenge": code_challenge,
        "code_challenge_method": "S256",
        **audience_params(audience, audience_param),
        **(extra or {}),
    }


async def pushed_authorization_url(
    client: httpx.AsyncClient,
    metadata: ProviderMetadata,
    credentials: ClientCredentials,
    params: dict[str, str],
) -> str:
    """RFC 9126: POST the authorization request's parameters (with the app's client
    authentication) to the PAR endpoint; the URL to send the browser to carries only
    ``client_id`` and the ``request_uri`` the provider answered."""
    endpoint = metadata.pushed_authorization_request_endpoint
    if not endpoint or not metadata.authorization_endpoint:
        raise TemporarilyUnavailable(
            "provider metadata has no pushed_authorization_request_endpoint"
        )
    body = dict(params)
    headers = {"Accept": "application/json"}
    credentials.apply(body, headers, metadata=metadata)
    try:
        response = await client.post(endpoint, data=body, headers=headers)
    except httpx.HTTPError as err:
        raise TemporarilyUnavailable(f"PAR endpoint unreachable: {type(err).__name__}") from err
    try:
        document = loads_strict(response.content)
    except (ValueError, RecursionError):
        document = None
    request_uri = document.get("request_uri") if isinstance(document, dict) else None
    if response.status_code not in (200, 201) or not isinstance(request_uri, str):
        error = document.get("error") if isinstance(document, dict) else None
        if response.status_code in (400, 401) and isinstance(error, str):
            raise TokenRequestFailed(f"PAR endpoint answered {error}", error=error)
        raise TemporarilyUnavailable(f"PAR endpoint answered status {response.status_code}")
    if len(request_uri) > 2048 or not _PRINTABLE.fullmatch(request_uri):
        raise TemporarilyUnavailable("PAR endpoint answered an unusable request_uri")
    return with_query(
        metadata.authorization_endpoint,
        {"client_id": credentials.client_id, "request_uri": request_uri},
    )


def check_callback_issuer(metadata: ProviderMetadata, iss: str | None) -> None:
    """RFC 9207: when the provider advertises ``iss`` in responses, it must be there and match;
    when present anyway, it must match (mix-up attack defence)."""
    if iss is None:
        if metadata.authorization_response_iss_parameter_supported:
            raise InvalidRequest("authorization response lacks the iss parameter")
        return
    if not hmac.compare_digest(iss.encode(), metadata.issuer.encode()):
        raise InvalidRequest("authorization response iss does not match the issuer")


def token_set(
    document: Mapping[str, Any], *, now: float, audience: str | None, scope: str | None
) -> TokenSet:
    """A :class:`TokenSet` from a token response (``expires_in`` made absolute).

    ``expires_in`` must be a number of seconds in (0, 10 years]: anything else (a 400-digit
    number, ``1e400``, a negative, a bool) is a malformed response (503), never an infinite
    lifetime. Without it, a JWT access token's own ``exp`` (read, not trusted for anything but
    scheduling the refresh) says when to refresh. ``token_type`` "bearer" in any case is stored as
    ``Bearer`` (RFC 6750), which is what goes out in ``Authorization`` headers.
    """
    access_token = document.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise TemporarilyUnavailable("token response has no access_token")
    expires_in = document.get("expires_in")
    expires_at = _jwt_exp(access_token) if expires_in is None else now + _lifetime(expires_in)
    if not _PRINTABLE.fullmatch(access_token):
        raise TemporarilyUnavailable("token response: access_token has non-printable characters")
    granted = document.get("scope")
    token_type = document.get("token_type")
    if not isinstance(token_type, str) or token_type.strip().lower() in ("bearer", ""):
        token_type = "Bearer"
    elif not _TOKEN_TYPE.fullmatch(token_type):
        raise TemporarilyUnavailable("token response: token_type is not an HTTP auth scheme")
    return TokenSet(
        access_token=access_token,
        token_type=token_type,
        expires_at=expires_at,
        scope=granted if isinstance(granted, str) else scope,
        audience=audience,
    )


_MAX_LIFETIME = 10 * 365 * 86_400.0
_PRINTABLE = re.compile(r"[\x21-\x7e]+")  # what fits in an Authorization header, unquoted
_TOKEN_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]{0,31}")  # an RFC 9110 token


def _lifetime(value: object) -> float:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 12:
        value = int(value)  # some providers send "3600" (ASCII digits only: not "²" or "①")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TemporarilyUnavailable("token response: expires_in is not a number")
    try:
        seconds = float(value)
    except OverflowError as err:
        raise TemporarilyUnavailable("token response: expires_in out of range") from err
    if not (math.isfinite(seconds) and 0 < seconds <= _MAX_LIFETIME):
        raise TemporarilyUnavailable("token response: expires_in out of range")
    return seconds


def _jwt_exp(access_token: str) -> float | None:
    """The ``exp`` of a JWT access token (unverified: only to know when to refresh)."""
    parts = access_token.split(".")
    if len(parts) != 3 or len(parts[1]) > 16_384:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error, RecursionError):  # RecursionError: nested JSON
        return None
    return numeric_date(payload.get("exp")) if isinstance(payload, dict) else None


async def token_request(
    client: httpx.AsyncClient,
    metadata: ProviderMetadata,
    credentials: ClientCredentials,
    data: dict[str, str],
) -> dict[str, Any]:
    """POST to the token endpoint; the JSON response, or raise.

    An OAuth error answer (400/401 with ``error``) raises :class:`TokenRequestFailed` carrying
    the code (``invalid_grant``...); network failures, 5xx and garbage raise
    :class:`TemporarilyUnavailable`.
    """
    if not metadata.token_endpoint:
        raise TemporarilyUnavailable("provider metadata has no token_endpoint")
    body = dict(data)
    headers = {"Accept": "application/json"}
    credentials.apply(body, headers, metadata=metadata)
    try:
        response = await client.post(metadata.token_endpoint, data=body, headers=headers)
    except httpx.HTTPError as err:
        raise TemporarilyUnavailable(f"token endpoint unreachable: {type(err).__name__}") from err
    try:
        document = loads_strict(response.content)
    except (ValueError, RecursionError):
        document = None
    if response.status_code == 200 and isinstance(document, dict):
        return document
    if response.status_code in (400, 401) and isinstance(document, dict):
        error = document.get("error")
        if isinstance(error, str):
            raise TokenRequestFailed(f"token endpoint answered {error}", error=error)
    raise TemporarilyUnavailable(f"token endpoint answered status {response.status_code}")


def logout_url(
    metadata: ProviderMetadata,
    *,
    client_id: str,
    id_token_hint: str | None,
    post_logout_redirect_uri: str,
) -> str | None:
    """RP-initiated logout URL, or ``None`` when the provider has no ``end_session_endpoint``.

    A ``state`` is always sent (optional in RP-Initiated Logout 1.0): some providers
    (Glewlwyd) redirect back to ``post_logout_redirect_uri`` only when there is one."""
    if not metadata.end_session_endpoint:
        return None
    params = {"client_id": client_id, "post_logout_redirect_uri": post_logout_redirect_uri,
              "state": random_token(16)}  # fmt: skip
    if id_token_hint:
        params["id_token_hint"] = id_token_hint
    return with_query(metadata.end_session_endpoint, params)


async def revoke_token(
    client: httpx.AsyncClient,
    metadata: ProviderMetadata,
    credentials: ClientCredentials,
    token: str,
    *,
    hint: str = "refresh_token",
    on_error: Callable[[str], None] | None = None,
) -> bool:
    """RFC 7009 revocation; returns whether the provider accepted it (never raises)."""
    if not metadata.revocation_endpoint:
        return False
    body = {"token": token, "token_type_hint": hint}
    headers: dict[str, str] = {}
    credentials.apply(body, headers, metadata=metadata)
    try:
        response = await client.post(metadata.revocation_endpoint, data=body, headers=headers)
    except httpx.HTTPError as err:
        if on_error:
            on_error(f"revocation failed: {type(err).__name__}")
        return False
    if response.status_code != 200 and on_error:
        on_error(f"revocation answered {response.status_code}")
    return response.status_code == 200
