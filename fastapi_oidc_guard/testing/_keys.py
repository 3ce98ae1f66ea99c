"""Signing keys for the fake issuer, written directly on ``cryptography``.

Independent of the verifier's own code on purpose: a bug in ``jose.py`` cannot hide itself by
being used to mint the tokens that test it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

__all__ = ["SigningKey", "b64url", "compact"]

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | bytes

_Hash = type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]
_HASHES: dict[str, _Hash] = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
_CURVES = {"ES256": (ec.SECP256R1, "P-256", 32), "ES384": (ec.SECP384R1, "P-384", 48),
           "ES512": (ec.SECP521R1, "P-521", 66)}  # fmt: skip


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int(value: int, length: int | None = None) -> str:
    size = length or (value.bit_length() + 7) // 8
    return b64url(value.to_bytes(size, "big"))


@dataclass
class SigningKey:
    """A private key with its ``kid`` and ``alg``; ``public_jwk()`` is what the JWKS serves."""

    alg: str
    private: PrivateKey = field(repr=False)
    kid: str = field(default_factory=lambda: secrets.token_hex(8))
    jwk_extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def generate(
        cls, alg: str = "RS256", *, kid: str | None = None, bits: int = 2048
    ) -> SigningKey:
        """A fresh key for ``alg`` (RS*, PS*, ES*, EdDSA with Ed25519, HS* with random bytes)."""
        private: PrivateKey
        if alg[:2] in ("RS", "PS"):
            private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        elif alg in _CURVES:
            private = ec.generate_private_key(_CURVES[alg][0]())
        elif alg == "EdDSA":
            private = ed25519.Ed25519PrivateKey.generate()
        elif alg.startswith("HS"):
            private = secrets.token_bytes(32)
        else:
            raise ValueError(f"unsupported alg {alg}")
        key = cls(alg=alg, private=private)
        if kid is not None:
            key.kid = kid
        return key

    def public_jwk(self) -> dict[str, Any]:
        """The public JWK (with ``kid``, ``alg``, ``use``) plus ``jwk_extra`` overrides."""
        jwk: dict[str, Any]
        priv = self.private
        if isinstance(priv, rsa.RSAPrivateKey):
            numbers = priv.public_key().public_numbers()
            jwk = {"kty": "RSA", "n": _int(numbers.n), "e": _int(numbers.e)}
        elif isinstance(priv, ec.EllipticCurvePrivateKey):
            _, crv, size = _CURVES[self.alg]
            point = priv.public_key().public_numbers()
            jwk = {"kty": "EC", "crv": crv, "x": _int(point.x, size), "y": _int(point.y, size)}
        elif isinstance(priv, ed25519.Ed25519PrivateKey):
            raw = priv.public_key().public_bytes_raw()
            jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}
        else:
            jwk = {"kty": "oct", "k": b64url(priv)}
        jwk.update({"kid": self.kid, "alg": self.alg, "use": "sig"})
        jwk.update(self.jwk_extra)
        return {k: v for k, v in jwk.items() if v is not None}

    def public_pem(self) -> bytes:
        """The public key as PEM (for the 'public key used as HMAC secret' attack)."""
        from cryptography.hazmat.primitives import serialization

        priv = self.private
        assert not isinstance(priv, bytes)
        return priv.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, message: bytes, alg: str | None = None) -> bytes:
        """Sign ``message`` with ``alg`` (default: the key's own)."""
        alg = alg or self.alg
        priv = self.private
        if alg.startswith("HS"):
            secret = priv if isinstance(priv, bytes) else self.public_pem()
            return hmac.new(secret, message, getattr(hashlib, f"sha{alg[2:]}")).digest()
        digest = _HASHES.get(alg[2:], hashes.SHA256)()
        if isinstance(priv, rsa.RSAPrivateKey):
            if alg.startswith("PS"):
                pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
                return priv.sign(message, pss, digest)
            return priv.sign(message, padding.PKCS1v15(), digest)
        if isinstance(priv, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(priv.sign(message, ec.ECDSA(digest)))
            size = (priv.curve.key_size + 7) // 8
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")
        if isinstance(priv, ed25519.Ed25519PrivateKey):
            return priv.sign(message)
        raise ValueError(f"cannot sign {alg} with this key")


def compact(header: dict[str, Any], payload: dict[str, Any] | bytes, key: SigningKey | None,
            *, alg: str | None = None) -> str:  # fmt: skip
    """Serialise and sign a compact JWS; ``key=None`` leaves the signature empty."""
    head = b64url(json.dumps(header, separators=(",", ":")).encode())
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    body = b64url(raw)
    signing_input = f"{head}.{body}".encode("ascii")
    signature = b"" if key is None else key.sign(signing_input, alg or header.get("alg"))
    return f"{head}.{body}.{b64url(signature)}"
