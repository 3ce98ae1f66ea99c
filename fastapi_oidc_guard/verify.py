"""Token verification: header and claim rules, and the verifier that orders the checks.

The checks are pure: they take claims and expectations, never a URL. :class:`TokenVerifier` runs
them in this order so that junk never costs a network round trip:

1. parse the compact JWS (size, shape, strict base64url and JSON, ``crit``) -- ``jose.py``;
2. header: ``alg`` in the allow-list, ``typ`` fits the token kind;
3. claims, types first (``exp``, ``nbf``, ``iat``, ``iss``, ``aud``, ``sub``, ...);
4. only then ask the key set for a key (which may fetch) and check the signature.

Nothing is ever accepted before step 4; steps 2-3 can only reject.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import logging
import math
from collections.abc import Callable, Iterable
from typing import Any, Literal, NamedTuple, TypeVar

from ._cache import CacheEntry, VerifiedTokenCache, token_digest
from .config import as_audiences
from .errors import (
    ClaimError,
    ExpiredToken,
    InvalidAudience,
    InvalidIssuer,
    InvalidToken,
    TokenNotYetValid,
    UnsupportedAlgorithm,
    WrongTokenType,
)
from .jose import ParsedToken, parse_compact, verify_signature
from .jwks import KeySet

__all__ = [
    "BACKCHANNEL_LOGOUT_EVENT",
    "LEGACY_LOGOUT_WINDOW",
    "TokenKind",
    "TokenTimes",
    "TokenVerifier",
    "audience_values",
    "check_access_token_kind",
    "check_audience",
    "check_claims",
    "check_header",
    "check_times",
    "check_times_at",
    "token_times",
]

logger = logging.getLogger("fastapi_oidc_guard.verify")

TokenKind = Literal["access", "id", "logout"]
T = TypeVar("T")
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"

_TYPS: dict[TokenKind, frozenset[str | None]] = {
    "access": frozenset({None, "jwt", "at+jwt"}),
    "id": frozenset({None, "jwt"}),
    "logout": frozenset({None, "jwt", "logout+jwt"}),
}
# Claims that only ID tokens (or logout tokens) carry: such a token is never a bearer token.
_NOT_ACCESS_TOKEN_CLAIMS = ("nonce", "at_hash", "c_hash", "events")
_ENTRA_ACCESS_CLAIMS = ("idtyp", "azpacr", "appidacr")  # only in Entra ID access tokens


def check_access_token_kind(
    claims: dict[str, Any], *, typ: str | None, client_id: str | None, strict: bool = False
) -> None:
    """An ID token (or logout token) is never a bearer token, decided by markers in order:

    0. a logout token's ``events`` refuses, and a ``token_use`` (Cognito) other than
       ``"access"`` refuses, whatever else the token says;
    1. an explicit access-token marker accepts: header ``typ: at+jwt`` (RFC 9068), Keycloak's
       claim ``typ: "Bearer"``, Cognito's ``token_use: "access"``, Entra ID's ``idtyp`` /
       ``azpacr`` / ``appidacr`` (access-token-only claims; app-only tokens carry ``roles`` and
       no ``scp``) (Keycloak access tokens carry ``nonce``: the marker wins);
    2. an explicit ID-token marker refuses: Keycloak's ``typ: "ID"``, ``nonce``, ``at_hash``,
       ``c_hash``;
    3. otherwise a token whose ``aud`` holds the app's own client id must carry ``scope`` or
       ``scp`` (an ID token from a refresh has no ``nonce`` and no ``at_hash``, and its audience
       is the client id, which one-registration apps also use as their API audience).

    ``strict`` (RFC 9068 only) accepts nothing but ``typ: at+jwt``.
    """
    if "events" in claims:
        raise WrongTokenType("claim 'events' marks a logout token, not an access token")
    claim_typ = claims.get("typ")
    claim_typ = claim_typ.lower() if isinstance(claim_typ, str) else None
    token_use = claims.get("token_use")
    if strict and typ != "at+jwt":
        raise WrongTokenType(f"typ {typ!r}: only at+jwt access tokens are accepted (RFC 9068)")
    if "token_use" in claims and token_use != "access":  # Cognito: "id", or anything else
        raise WrongTokenType(f"token_use {token_use!r}: only 'access' tokens are bearer tokens")
    if typ == "at+jwt" or claim_typ == "bearer" or token_use == "access":
        return
    if any(name in claims for name in _ENTRA_ACCESS_CLAIMS):
        return
    if claim_typ == "id":
        raise WrongTokenType("the token says it is an ID token (typ 'ID')")
    for name in _NOT_ACCESS_TOKEN_CLAIMS:
        if name in claims:
            raise WrongTokenType(f"claim {name!r} marks an ID or logout token, not an access token")
    ours = client_id is not None and client_id in audience_values(claims)
    if ours and "scope" not in claims and "scp" not in claims:
        raise WrongTokenType(
            "audience is the app's client id and the token has no scope/scp: an ID token?"
        )


_MAX_NUMERIC_DATE = 253_402_300_799.0  # 9999-12-31T23:59:59Z
_AT_HASH_DIGEST = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}


def _normalise_typ(typ: object) -> str | None:
    if typ is None:
        return None
    value = str(typ).lower()
    return value.removeprefix("application/")


def check_header(header: dict[str, Any], *, kind: TokenKind, algorithms: frozenset[str]) -> None:
    """``alg`` must be allowed; ``typ`` must fit ``kind`` (an ID token is never a bearer token)."""
    alg = header.get("alg")
    if alg not in algorithms:
        raise UnsupportedAlgorithm(f"alg {alg!r} is not in the allow-list")
    typ = _normalise_typ(header.get("typ"))
    if typ not in _TYPS[kind]:
        raise WrongTokenType(f"typ {header.get('typ')!r} is not accepted for a {kind} token")


def _number(claims: dict[str, Any], name: str, *, required: bool) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise ClaimError(name, "missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ClaimError(name, f"expected a NumericDate, got {type(value).__name__}")
    try:
        number = float(value)  # a huge JSON integer overflows here
    except OverflowError as err:
        raise ClaimError(name, "NumericDate out of range") from err
    if not math.isfinite(number):
        raise ClaimError(name, "NumericDate is not finite")
    if not 0 <= number <= _MAX_NUMERIC_DATE:
        raise ClaimError(name, "NumericDate outside 1970-9999")
    return number


class TokenTimes(NamedTuple):
    """A token's ``exp``, ``nbf`` and ``iat``, checked to be NumericDates (``None``: absent)."""

    exp: float
    nbf: float | None
    iat: float | None


def token_times(claims: dict[str, Any], *, require_iat: bool = False) -> TokenTimes:
    """The token's times, each a NumericDate in range; ``exp`` (and ``iat`` when asked) required."""
    exp = _number(claims, "exp", required=True)
    assert exp is not None
    nbf = _number(claims, "nbf", required=False)
    return TokenTimes(exp, nbf, _number(claims, "iat", required=require_iat))


def check_times_at(
    times: tuple[float, float | None, float | None], *, now: float, leeway: float
) -> None:
    """``exp`` in the future, ``nbf`` reached, ``iat`` not in the future, at ``now``: what a
    cache hit re-runs on every request (the times were parsed when the token was verified)."""
    exp, nbf, iat = times
    if now - leeway >= exp:
        raise ExpiredToken("exp", "token has expired")
    if nbf is not None and nbf > now + leeway:
        raise TokenNotYetValid("nbf", "token is not valid yet")
    if iat is not None and iat > now + leeway:
        raise TokenNotYetValid("iat", "issued in the future")


def check_times(
    claims: dict[str, Any], *, now: float, leeway: float, require_iat: bool = False
) -> None:
    """``exp`` required and in the future, ``nbf`` reached, ``iat`` not in the future (in this
    order: an expired token is reported as expired)."""
    exp = _number(claims, "exp", required=True)
    assert exp is not None
    if now - leeway >= exp:
        raise ExpiredToken("exp", "token has expired")
    nbf = _number(claims, "nbf", required=False)
    if nbf is not None and nbf > now + leeway:
        raise TokenNotYetValid("nbf", "token is not valid yet")
    iat = _number(claims, "iat", required=require_iat)
    if iat is not None and iat > now + leeway:
        raise TokenNotYetValid("iat", "issued in the future")


def _string(claims: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise ClaimError(name, "missing")
        return None
    if not isinstance(value, str) or not value:
        raise ClaimError(name, "expected a non-empty string")
    return value


def audience_values(claims: dict[str, Any]) -> list[str]:
    """``aud`` as a list, without judging it (the claim checks do that)."""
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    return [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []


def _audiences(claims: dict[str, Any], name: str = "aud") -> list[str]:
    aud = claims.get(name)
    if isinstance(aud, str) and aud:
        return [aud]
    if isinstance(aud, list) and aud and all(isinstance(a, str) and a for a in aud):
        return aud
    if aud is None:
        raise ClaimError(name, "missing")
    raise ClaimError(name, "expected a string or a non-empty array of strings")


def check_audience(claims: dict[str, Any], audiences: tuple[str, ...], *, claim: str) -> None:
    """One of the token's audiences must be one of ``audiences``; raises ``InvalidToken``.

    ``claim`` is ``aud``, or the claim a provider uses instead (Cognito access tokens carry no
    ``aud`` and name the app client in ``client_id``): that claim must then be one non-empty
    string, and a token that does carry ``aud`` must match there too (the setting never
    widens what ``aud`` says: a token for another API with our ``client_id`` is refused)."""
    if claim != "aud":
        value = claims.get(claim)
        if not isinstance(value, str) or not value:
            raise ClaimError(claim, "missing or not a string")
        if value not in audiences:
            raise InvalidAudience(claim, f"expected one of {list(audiences)!r}, got {value!r}")
        if "aud" not in claims:
            return
    found = _audiences(claims, "aud")
    if not any(value in audiences for value in found):
        raise InvalidAudience("aud", f"expected one of {list(audiences)!r} in {found!r}")


def _at_hash(access_token: str, alg: str) -> str:
    digest = hashlib.sha512 if alg == "EdDSA" else _AT_HASH_DIGEST[alg[-3:]]
    full = digest(access_token.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(full[: len(full) // 2]).rstrip(b"=").decode("ascii")


def check_claims(
    claims: dict[str, Any],
    *,
    kind: TokenKind,
    issuer: str,
    audience: str | tuple[str, ...],
    now: float,
    leeway: float,
    audience_claim: str = "aud",
    alg: str = "RS256",
    nonce: str | None = None,
    access_token: str | None = None,
    typ: str | None = None,
    client_id: str | None = None,
    strict_typ: bool = False,
    legacy_logout: bool = False,
) -> None:
    """Every claim rule for ``kind`` (docs/architecture.md, "where each rule lives"); raises
    an ``InvalidToken``.

    For ID tokens ``audience`` is the client id; for logout tokens too. For access tokens it
    is the accepted API audiences (one of them must be in ``audience_claim``), and ``typ`` (the
    header's, normalised) and ``client_id`` feed :func:`check_access_token_kind`.
    """
    if kind == "access":
        check_access_token_kind(claims, typ=typ, client_id=client_id, strict=strict_typ)
    if kind == "logout" and legacy_logout and "exp" not in claims:
        _check_legacy_logout_times(claims, now=now, leeway=leeway)
    else:
        check_times(claims, now=now, leeway=leeway, require_iat=kind != "access")
    try:
        iss = _string(claims, "iss", required=True)
    except ClaimError as err:
        raise InvalidIssuer("iss", err.reason) from None
    if iss != issuer:
        raise InvalidIssuer("iss", f"expected {issuer!r}, got {iss!r}")
    if kind == "access":
        check_audience(claims, as_audiences(audience), claim=audience_claim)
    else:
        assert isinstance(audience, str)
        audiences = _audiences(claims)
        if audience not in audiences:
            raise InvalidAudience("aud", f"expected {audience!r} in {audiences!r}")
    if kind == "logout":
        _check_logout_claims(claims)
        return
    _string(claims, "sub", required=True)
    if kind == "id":
        azp = _string(claims, "azp", required=len(_audiences(claims)) > 1)
        if azp is not None and azp != audience:
            raise ClaimError("azp", f"expected {audience!r}, got {azp!r}")
        if nonce is not None:
            found = _string(claims, "nonce", required=True)
            assert found is not None
            if not hmac.compare_digest(found.encode(), nonce.encode()):
                raise ClaimError("nonce", "does not match the login transaction")
        at_hash = _string(claims, "at_hash", required=False)
        if (
            at_hash is not None
            and access_token is not None
            and not hmac.compare_digest(at_hash.encode(), _at_hash(access_token, alg).encode())
        ):
            raise ClaimError("at_hash", "does not match the access token")


LEGACY_LOGOUT_WINDOW = 120.0  # seconds a logout token without exp is accepted after its iat


def _check_legacy_logout_times(claims: dict[str, Any], *, now: float, leeway: float) -> None:
    """A logout token of the older back-channel draft (no ``exp``: Glewlwyd), accepted only
    with ``legacy_logout_tokens`` on: its ``iat`` must be within the last two minutes."""
    iat = _number(claims, "iat", required=True)
    assert iat is not None
    if iat > now + leeway:
        raise TokenNotYetValid("iat", "issued in the future")
    if now - iat > LEGACY_LOGOUT_WINDOW + leeway:
        raise ExpiredToken("iat", "logout token without exp, issued too long ago")
    nbf = _number(claims, "nbf", required=False)
    if nbf is not None and nbf > now + leeway:
        raise TokenNotYetValid("nbf", "token is not valid yet")


def _check_logout_claims(claims: dict[str, Any]) -> None:
    _string(claims, "jti", required=True)
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_LOGOUT_EVENT), dict):
        raise ClaimError("events", "missing the back-channel logout event")
    if "nonce" in claims:
        raise ClaimError("nonce", "must not be present in a logout token")
    sub = _string(claims, "sub", required=False)
    sid = _string(claims, "sid", required=False)
    if sub is None and sid is None:
        raise ClaimError("sid", "a logout token needs sid or sub")


class TokenVerifier:
    """Verifies tokens of one issuer against one key set.

    ``audience`` is the API audience for bearer tokens, or several (a token is accepted when
    one of its audiences, read from ``audience_claim``, is one of them); without one, bearer
    tokens are refused (never accepted without an audience check). ``client_id`` is the
    audience of ID and logout tokens. Verified access tokens are cached (keyed by SHA-256 of
    the token) until their ``exp`` or until the key set changes; the clock checks still run on
    every call.
    """

    def __init__(
        self,
        *,
        issuer: str,
        keys: KeySet,
        algorithms: Iterable[str],
        clock: Callable[[], float],
        leeway: float,
        audience: str | Iterable[str] | None,
        client_id: str | None,
        max_bytes: int,
        max_id_token_bytes: int,
        cache_size: int,
        strict_typ: bool,
        audience_claim: str = "aud",
        legacy_logout: bool = False,
    ) -> None:
        self._strict_typ = strict_typ
        self._legacy_logout = legacy_logout
        self.issuer = issuer
        self.keys = keys
        self.algorithms = frozenset(algorithms)
        self.audiences = as_audiences(audience)
        self.audience_claim = audience_claim
        self.client_id = client_id
        self._clock = clock
        self._leeway = leeway
        self._max_bytes = max_bytes
        self._max_id_token_bytes = max_id_token_bytes
        self._cache = VerifiedTokenCache(cache_size)

    async def verify_access_token(self, token: str) -> dict[str, Any]:
        """Claims of a valid bearer access token for ``audience``; raises ``InvalidToken``.
        A copy: a caller that edits it changes nothing the cache serves to later requests."""
        return copy.deepcopy((await self._access_entry(token)).claims)

    async def access_principal(self, token: str, build: Callable[[dict[str, Any]], T]) -> T:
        """``build(claims)`` for a valid bearer token; the result is cached with the claims,
        so a repeated token skips both verification and ``build`` (clock checks still run)."""
        entry = await self._access_entry(token)
        built = entry.built
        if built is None:
            built = entry.built = build(entry.claims)
        return built  # type: ignore[return-value]

    async def _access_entry(self, token: str) -> CacheEntry:
        if not self.audiences:
            raise InvalidToken("no audience configured (OIDC_AUDIENCE): bearer tokens refused")
        now = self._clock()
        generation = self.keys.generation
        digest = token_digest(token) if self._cache.size else b""
        entry = self._cache.get(digest, generation=generation) if digest else None
        if entry is not None:
            check_times_at(entry.times, now=now, leeway=self._leeway)  # every hit, on the clock
            return entry
        claims = await self._verify(token, kind="access", audience=self.audiences, now=now)
        entry = CacheEntry(generation, claims, token_times(claims))
        if digest:
            self._cache.put(digest, entry)
        return entry

    async def verify_id_token(
        self, token: str, *, nonce: str | None, access_token: str | None = None
    ) -> dict[str, Any]:
        """Claims of a valid ID token for this client (``nonce`` and ``at_hash`` checked)."""
        return await self._verify(
            token, kind="id", audience=self._client(), now=self._clock(),
            nonce=nonce, access_token=access_token,
        )  # fmt: skip

    async def verify_logout_token(self, token: str) -> dict[str, Any]:
        """Claims of a valid back-channel logout token for this client."""
        return await self._verify(token, kind="logout", audience=self._client(), now=self._clock())

    def _client(self) -> str:
        if self.client_id is None:
            raise InvalidToken("no client id configured (OIDC_CLIENT_ID)")
        return self.client_id

    async def _verify(
        self,
        token: str,
        *,
        kind: TokenKind,
        audience: str | tuple[str, ...],
        now: float,
        nonce: str | None = None,
        access_token: str | None = None,
    ) -> dict[str, Any]:
        limit = self._max_bytes if kind == "access" else self._max_id_token_bytes
        parsed: ParsedToken = parse_compact(token, max_bytes=limit)
        check_header(parsed.header, kind=kind, algorithms=self.algorithms)
        check_claims(
            parsed.claims, kind=kind, issuer=self.issuer, audience=audience, now=now,
            leeway=self._leeway, alg=parsed.alg, nonce=nonce, access_token=access_token,
            typ=_normalise_typ(parsed.header.get("typ")), client_id=self.client_id,
            strict_typ=self._strict_typ, audience_claim=self.audience_claim,
            legacy_logout=self._legacy_logout,
        )  # fmt: skip
        key = await self.keys.get_key(kid=parsed.kid, alg=parsed.alg)
        verify_signature(parsed, key, allowed=self.algorithms)
        return parsed.claims
