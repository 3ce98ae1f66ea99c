"""Compact JWS parsing, JWK parsing, key selection and signature checks. Pure, no I/O.

This is the only module that imports python-jose, and it uses it only as a signature primitive:
python-jose ignores ``kid``, ``use``, ``crv`` and ``crit``, accepts PEM/DER public keys as HMAC
secrets, has no size limit and leaks non-JOSE exceptions, so everything around the signature check
is done here. PS256/384/512 and EdDSA, which python-jose lacks, use ``cryptography`` directly.
Keys are parsed once per key-set fetch into ready verifier callables.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from jose import backends as _jose_backends
from jose.backends.cryptography_backend import CryptographyECKey, CryptographyRSAKey

from ._json import loads_strict
from .errors import (
    InvalidSignature,
    KeyNotFound,
    MalformedToken,
    UnsupportedAlgorithm,
    UnusableKey,
)

__all__ = [
    "ParsedToken",
    "VerificationKey",
    "b64url_decode",
    "parse_compact",
    "parse_jwk",
    "parse_jwks",
    "select_key",
    "verify_signature",
]
# Header parameters that exist only for JWE (RFC 7516, 7518): a JWS carrying one is confused.
_JWE_ONLY_HEADER = frozenset({"zip", "enc", "epk", "apu", "apv", "iv", "tag", "p2s", "p2c"})

# python-jose silently falls back to pure-Python backends when `cryptography` is missing;
# we rely on the cryptography backend (constant-time, maintained), so refuse anything else.
if _jose_backends.RSAKey is not CryptographyRSAKey or _jose_backends.ECKey is not CryptographyECKey:
    raise ImportError("python-jose must use its cryptography backend: pip install cryptography")

_MIN_RSA_BITS = 2048
_KTY_OF_ALG = {
    "RS256": "RSA", "RS384": "RSA", "RS512": "RSA",
    "PS256": "RSA", "PS384": "RSA", "PS512": "RSA",
    "ES256": "EC", "ES384": "EC", "ES512": "EC",
    "EdDSA": "OKP",
}  # fmt: skip
_CURVE_OF_ALG = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
_EC_CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
}
_PSS_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "PS256": hashes.SHA256,
    "PS384": hashes.SHA384,
    "PS512": hashes.SHA512,
}

Verifier = Callable[[bytes, bytes], bool]


# base64url -> standard alphabet; "+", "/" and "=" in the input become "!" (invalid) so that
# strict decoding rejects them.
_TO_STANDARD = bytes.maketrans(b"-_+/=", b"+/!!!")
# With len % 4 == 2 (or 3), the last character carries only 2 (or 4) data bits; the others must be
# zero for the encoding to be canonical: one token, one form.
_CANONICAL_LAST = {2: frozenset("AQgw"), 3: frozenset("AEIMQUYcgkosw048")}
_PADDING = {0: b"", 2: b"==", 3: b"="}


def b64url_decode(segment: str) -> bytes:
    """Decode unpadded, canonical base64url; raise ``ValueError`` on anything else."""
    remainder = len(segment) % 4
    if remainder == 1 or not segment.isascii():
        raise ValueError("not base64url")
    if remainder and segment[-1] not in _CANONICAL_LAST[remainder]:
        raise ValueError("non-canonical base64url")
    raw = segment.encode("ascii").translate(_TO_STANDARD) + _PADDING[remainder]
    try:
        return binascii.a2b_base64(raw, strict_mode=True)
    except binascii.Error as err:
        raise ValueError("not base64url") from err


class ParsedToken(NamedTuple):
    """A compact JWS split and decoded; the signature is not checked yet (immutable: a
    NamedTuple, which is also five times cheaper to build than a frozen dataclass)."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes

    @property
    def alg(self) -> str:
        return str(self.header["alg"])

    @property
    def kid(self) -> str | None:
        kid = self.header.get("kid")
        return None if kid is None else str(kid)


def _decode_json_object(segment: str, what: str) -> dict[str, Any]:
    try:
        value = loads_strict(b64url_decode(segment))
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise MalformedToken(f"{what} is not base64url JSON without duplicate keys") from err
    if not isinstance(value, dict):
        raise MalformedToken(f"{what} is not a JSON object")
    return value


def parse_compact(token: str, *, max_bytes: int) -> ParsedToken:
    """Split and decode a compact JWS, enforcing size, shape and header rules."""
    if len(token) > max_bytes:
        raise MalformedToken(f"token is {len(token)} bytes, limit {max_bytes}")
    if not token.isascii():
        raise MalformedToken("token contains non-ASCII characters")
    parts = token.split(".")
    if len(parts) == 5:
        raise MalformedToken("encrypted tokens (JWE) are not accepted")
    if len(parts) != 3:
        raise MalformedToken(f"expected 3 dot-separated segments, got {len(parts)}")
    header_b64, payload_b64, signature_b64 = parts
    header = _decode_json_object(header_b64, "header")
    if not isinstance(header.get("alg"), str):
        raise MalformedToken("header 'alg' missing or not a string")
    if "crit" in header:
        raise MalformedToken("header 'crit' is not supported")
    jwe_only = sorted(_JWE_ONLY_HEADER.intersection(header))
    if jwe_only:
        raise MalformedToken(f"header {jwe_only} belongs to an encrypted token (JWE), not a JWS")
    for name in ("kid", "typ", "cty"):
        if name in header and not isinstance(header[name], str):
            raise MalformedToken(f"header {name!r} is not a string")
    claims = _decode_json_object(payload_b64, "payload")
    try:
        signature = b64url_decode(signature_b64)
    except ValueError as err:
        raise MalformedToken("signature is not base64url") from err
    if not signature:
        raise MalformedToken("empty signature")
    return ParsedToken(
        header=header,
        claims=claims,
        signing_input=f"{header_b64}.{payload_b64}".encode("ascii"),
        signature=signature,
    )


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A JWK parsed once: its identity and one ready verifier per algorithm it may verify.

    A key that cannot verify anything (wrong ``use``, too short, unsupported type) is kept with
    no verifiers so that a token naming its ``kid`` is rejected without a refetch.
    """

    kid: str | None
    kty: str
    verifiers: Mapping[str, Verifier] = field(default_factory=dict)
    reason: str = ""


def _b64_int(jwk: Mapping[str, Any], name: str) -> int:
    value = jwk.get(name)
    if not isinstance(value, str):
        raise ValueError(f"JWK member {name!r} missing")
    return int.from_bytes(b64url_decode(value), "big")


def _rsa_verifiers(jwk: Mapping[str, Any], algs: Iterable[str]) -> dict[str, Verifier]:
    public = rsa.RSAPublicNumbers(_b64_int(jwk, "e"), _b64_int(jwk, "n")).public_key()
    if public.key_size < _MIN_RSA_BITS:
        raise ValueError(f"RSA key of {public.key_size} bits, at least {_MIN_RSA_BITS} needed")
    verifiers: dict[str, Verifier] = {}
    for alg in algs:
        if alg.startswith("RS"):
            verifiers[alg] = CryptographyRSAKey(public, alg).verify
        else:
            verifiers[alg] = _pss_verifier(public, _PSS_HASHES[alg]())
    return verifiers


def _pss_verifier(public: rsa.RSAPublicKey, digest: hashes.HashAlgorithm) -> Verifier:
    pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)

    def verify(message: bytes, signature: bytes) -> bool:
        try:
            public.verify(signature, message, pss, digest)
        except _CryptoInvalidSignature:
            return False
        return True

    return verify


def _ec_verifiers(jwk: Mapping[str, Any], algs: Iterable[str]) -> dict[str, Verifier]:
    crv = jwk.get("crv")
    if crv not in _EC_CURVES:
        raise ValueError(f"unsupported EC curve {crv!r}")
    numbers = ec.EllipticCurvePublicNumbers(_b64_int(jwk, "x"), _b64_int(jwk, "y"), _EC_CURVES[crv])
    public = numbers.public_key()
    return {alg: CryptographyECKey(public, alg).verify for alg in algs if _CURVE_OF_ALG[alg] == crv}


def _okp_verifiers(jwk: Mapping[str, Any], algs: Iterable[str]) -> dict[str, Verifier]:
    if "EdDSA" not in algs:
        return {}
    x = jwk.get("x")
    if not isinstance(x, str):
        raise ValueError("JWK member 'x' missing")
    raw = b64url_decode(x)
    crv = jwk.get("crv")
    public: ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
    if crv == "Ed25519":
        public = ed25519.Ed25519PublicKey.from_public_bytes(raw)
    elif crv == "Ed448":
        public = ed448.Ed448PublicKey.from_public_bytes(raw)
    else:
        raise ValueError(f"unsupported OKP curve {crv!r}")

    def verify(message: bytes, signature: bytes) -> bool:
        try:
            public.verify(signature, message)
        except _CryptoInvalidSignature:
            return False
        return True

    return {"EdDSA": verify}


_BUILDERS = {"RSA": _rsa_verifiers, "EC": _ec_verifiers, "OKP": _okp_verifiers}


def parse_jwk(jwk: Mapping[str, Any], allowed_algorithms: Iterable[str]) -> VerificationKey:
    """Parse one public JWK into a :class:`VerificationKey` (never raises for a bad key).

    The key may verify an algorithm only if the algorithm is allowed, fits ``kty`` (and ``crv``
    for EC), equals the JWK's ``alg`` when present, and ``use``/``key_ops`` permit verifying.
    Private members are ignored: only the public part is ever loaded.
    """
    kid = jwk.get("kid")
    kid = kid if isinstance(kid, str) else None
    kty = jwk.get("kty")
    if not isinstance(kty, str) or kty not in _BUILDERS:
        return VerificationKey(kid, str(kty), reason=f"unsupported kty {kty!r}")
    use, key_ops, jwk_alg = jwk.get("use"), jwk.get("key_ops"), jwk.get("alg")
    if use is not None and use != "sig":
        return VerificationKey(kid, kty, reason=f"use is {use!r}, not 'sig'")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        return VerificationKey(kid, kty, reason="key_ops does not include 'verify'")
    algs = [a for a in allowed_algorithms if _KTY_OF_ALG.get(a) == kty]
    if jwk_alg is not None:
        algs = [a for a in algs if a == jwk_alg]
    try:
        verifiers = _BUILDERS[kty](jwk, algs)
    except (ValueError, TypeError, KeyError) as err:
        return VerificationKey(kid, kty, reason=f"unusable key: {err}")
    return VerificationKey(kid, kty, verifiers=verifiers, reason="" if verifiers else "no alg fits")


def parse_jwks(
    document: Mapping[str, Any], allowed_algorithms: Iterable[str]
) -> tuple[VerificationKey, ...]:
    """Parse a JWK Set document; raise ``ValueError`` if it is not one."""
    keys = document.get("keys")
    if not isinstance(keys, list):
        raise ValueError("JWKS has no 'keys' array")
    algs = tuple(allowed_algorithms)
    return tuple(parse_jwk(k, algs) for k in keys if isinstance(k, dict))


def select_key(keys: Iterable[VerificationKey], *, kid: str | None, alg: str) -> VerificationKey:
    """Pick exactly one key for ``kid``/``alg``.

    Raises :class:`KeyNotFound` when no key has that ``kid`` (the caller may refetch once) and
    :class:`UnusableKey` when keys exist but none, or more than one, can verify ``alg``.
    """
    if kid is None:
        usable = [k for k in keys if alg in k.verifiers]
        if not usable:
            raise KeyNotFound(f"token has no kid and no key verifies {alg}")
        if len(usable) > 1:
            raise UnusableKey(f"token has no kid and {len(usable)} keys could verify {alg}")
        return usable[0]
    named = [k for k in keys if k.kid == kid]
    if not named:
        raise KeyNotFound(f"no key with kid {kid!r}")
    usable = [k for k in named if alg in k.verifiers]
    if len(usable) != 1:
        reasons = "; ".join(k.reason or f"does not verify {alg}" for k in named)
        raise UnusableKey(f"kid {kid!r} cannot verify {alg}: {reasons}")
    return usable[0]


def verify_signature(token: ParsedToken, key: VerificationKey, *, allowed: Iterable[str]) -> None:
    """Check the signature; raise :class:`InvalidSignature` or :class:`UnsupportedAlgorithm`."""
    alg = token.alg
    if alg not in allowed:
        raise UnsupportedAlgorithm(f"alg {alg!r} is not allowed")
    verifier = key.verifiers.get(alg)
    if verifier is None:
        raise UnusableKey(f"key {key.kid!r} cannot verify {alg}")
    try:
        valid = verifier(token.signing_input, token.signature)
    except (ValueError, TypeError) as err:
        raise InvalidSignature("signature could not be checked") from err
    if not valid:
        raise InvalidSignature("signature does not verify")
