"""DPoP (RFC 9449) on the resource-server side: the proof checks of section 4.3, the RFC 7638
key thumbprint, and the binding of the access token to the proof's key (section 7.1).

Pure: :func:`check_proof` takes the proof, the request's method and URL, the access token
and the time, and returns what the caller still has to do with I/O (spend the ``jti`` once,
compare the token's ``cnf.jkt``). Every refusal is :class:`InvalidDPoPProof` with a message
for the logs; the client sees one fixed description.

Checked, in this order (cheap and local first; nothing here fetches):

1. one ``DPoP`` header holding one compact JWS, at most ``MAX_PROOF_BYTES``;
2. header ``typ`` is ``dpop+jwt``, ``alg`` is in the allow-list (asymmetric only: ``none`` and
   HMAC are never in it), ``jwk`` is a public key (no private members) that fits ``alg``;
3. claims: ``jti`` (a UTF-8 string), ``htm`` equal to the request's method, ``htu`` equal to
   the request's URL without query and fragment (both normalised, RFC 3986 section 6.2.2),
   ``iat`` within ``max_age`` in the past and ``leeway`` in the future, ``ath`` equal to the
   base64url SHA-256 of the access token;
4. last, the signature verifies with that ``jwk`` (an RSA key is at most 4096 bits, ``e`` at
   most 2^32: a caller-chosen key cannot make the check costly).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import InvalidDPoPProof, InvalidToken, MalformedToken
from .jose import parse_compact, parse_jwk, verify_signature

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "DPOP_SCHEME",
    "MAX_PROOF_BYTES",
    "DPoPProof",
    "access_token_hash",
    "check_proof",
    "normalize_url",
    "thumbprint",
]

DPOP_SCHEME = "dpop"
MAX_PROOF_BYTES = 8 * 1024
MAX_JTI = 512
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
# Private members of a JWK (RFC 7518 section 6): a proof key carrying one is refused.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
# RFC 7638 section 3.2: the required members per key type, in lexicographic order.
_THUMBPRINT_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"),
                       "OKP": ("crv", "kty", "x")}  # fmt: skip
_DEFAULT_PORTS = {"http": 80, "https": 443}
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


@dataclass(frozen=True, slots=True)
class DPoPProof:
    """A proof that passed every local check: its key's thumbprint and its ``jti``."""

    jkt: str
    jti: str
    iat: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def access_token_hash(token: str) -> str:
    """``ath``: the base64url SHA-256 of the access token's ASCII bytes (RFC 9449 4.2)."""
    return _b64(hashlib.sha256(token.encode("ascii")).digest())


def thumbprint(jwk: dict[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public JWK (RSA, EC, OKP); ``ValueError`` if it
    lacks a required member."""
    members = _THUMBPRINT_MEMBERS.get(str(jwk.get("kty")))
    if members is None or any(not isinstance(jwk.get(m), str) for m in members):
        raise ValueError("JWK without the members its thumbprint needs")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return _b64(hashlib.sha256(canonical.encode("utf-8")).digest())


def _normalize_percent(part: str) -> str:
    def fix(match: re.Match[str]) -> str:
        char = chr(int(match.group(0)[1:], 16))
        return char if char in _UNRESERVED else match.group(0).upper()

    return _PERCENT.sub(fix, part)


def normalize_url(url: str) -> str:
    """``url`` without query and fragment, normalised as RFC 3986 section 6.2.2/6.2.3 says:
    scheme and host in lower case, the default port dropped, an empty path as ``/``, percent
    escapes of unreserved characters decoded and the others upper case. ``ValueError`` if it
    is not an absolute http(s) URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        raise ValueError("not an absolute http(s) URL")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port  # ValueError for a bad port
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, _normalize_percent(parts.path) or "/", "", ""))


def _header_key(header: dict[str, Any], algorithms: frozenset[str]) -> tuple[Any, str]:
    if header.get("typ") != "dpop+jwt":
        raise InvalidDPoPProof(f"typ is {header.get('typ')!r}, not 'dpop+jwt'")
    alg = header["alg"]
    if alg not in algorithms or alg not in ASYMMETRIC_ALGORITHMS:
        raise InvalidDPoPProof(f"alg {alg!r} is not allowed for proofs")
    jwk = header.get("jwk")
    if not isinstance(jwk, dict):
        raise InvalidDPoPProof("header 'jwk' missing or not an object")
    private = sorted(_PRIVATE_MEMBERS.intersection(jwk))
    if private:
        raise InvalidDPoPProof(f"header 'jwk' carries private members {private}")
    _check_rsa_cost(jwk)
    key = parse_jwk({k: v for k, v in jwk.items() if k not in ("use", "key_ops")}, (alg,))
    if alg not in key.verifiers:
        raise InvalidDPoPProof(f"header 'jwk' cannot verify {alg}: {key.reason or 'no fit'}")
    try:
        return key, thumbprint(jwk)
    except ValueError as err:
        raise InvalidDPoPProof(str(err)) from err


def _check_rsa_cost(jwk: dict[str, Any]) -> None:
    """A proof key is chosen by the caller: an RSA key with a huge modulus or exponent would
    make each signature check cost tens of times more (at most 4096 bits, e at most 2^32)."""
    if jwk.get("kty") != "RSA":
        return
    n, e = jwk.get("n"), jwk.get("e")
    if not isinstance(n, str) or not isinstance(e, str) or len(n) > 700 or len(e) > 6:
        raise InvalidDPoPProof("header 'jwk': an RSA key of more than 4096 bits or a huge e")


def check_proof(
    proof: str,
    *,
    method: str,
    url: str,
    access_token: str,
    algorithms: frozenset[str],
    now: float,
    max_age: float,
    leeway: float,
) -> DPoPProof:
    """Every local check of RFC 9449 section 4.3 on ``proof`` for a request ``method url``
    carrying ``access_token``; the :class:`DPoPProof` to finish with (replay, binding)."""
    try:
        parsed = parse_compact(proof, max_bytes=MAX_PROOF_BYTES)
    except MalformedToken as err:
        raise InvalidDPoPProof(f"proof is not a compact JWS: {err}") from err
    key, jkt = _header_key(parsed.header, algorithms)
    claims = parsed.claims
    jti, htm, htu, iat = (claims.get(n) for n in ("jti", "htm", "htu", "iat"))
    if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI or not _encodable(jti):
        raise InvalidDPoPProof("jti missing, not a string, too long or not UTF-8")
    if htm != method:
        raise InvalidDPoPProof(f"htm {str(htm)[:16]!r} is not the request's method {method}")
    try:
        same_url = isinstance(htu, str) and normalize_url(htu) == normalize_url(url)
    except ValueError:
        same_url = False
    if not same_url:
        raise InvalidDPoPProof(f"htu {str(htu)[:128]!r} is not this request's URL {url}")
    if isinstance(iat, bool) or not isinstance(iat, int | float):
        raise InvalidDPoPProof("iat missing or not a number")
    if isinstance(iat, float) and not math.isfinite(iat):  # never float(int): 10**400 overflows
        raise InvalidDPoPProof("iat is not a finite number")
    if iat > now + leeway or iat < now - max_age - leeway:
        raise InvalidDPoPProof(f"iat {iat} outside the window (now {int(now)}, {max_age:g} s)")
    if claims.get("ath") != access_token_hash(access_token):
        raise InvalidDPoPProof("ath missing or not the hash of the access token")
    try:  # last of the local checks: the costly one
        verify_signature(parsed, key, allowed=algorithms)
    except InvalidToken as err:  # InvalidSignature, UnusableKey, UnsupportedAlgorithm
        raise InvalidDPoPProof(f"proof signature: {err}") from err
    return DPoPProof(jkt=jkt, jti=jti, iat=int(iat))


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a JSON escape
        return False
    return True
