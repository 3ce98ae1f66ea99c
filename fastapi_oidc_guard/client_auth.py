"""How the app authenticates at the provider's token, revocation and PAR endpoints.

- ``client_secret_basic`` (HTTP Basic), ``client_secret_post`` (in the form);
- ``private_key_jwt`` (RFC 7523, OpenID Connect Core 9): a short-lived JWT signed with the app's
  private key (``client_private_key``: PEM or a JWK; RSA -> RS256, P-256 -> ES256, P-384 ->
  ES384, Ed25519 -> EdDSA), ``iss`` = ``sub`` = the client id, ``aud`` = the endpoint's URL
  (token endpoint; RFC 9126 accepts it for PAR too), a fresh ``jti``, one minute of life;
- ``none``: a public client (PKCE only), the client id in the form.

``auto`` (the default) picks ``private_key_jwt`` when a private key is configured, else a
client-secret method the discovery document lists in ``token_endpoint_auth_methods_supported``
(basic first, its default), else ``none`` without a secret.
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from .config import ClientAuth
from .errors import ConfigurationError
from .models import ProviderMetadata
from .pkce import random_token

__all__ = ["ClientAuth", "ClientCredentials", "PrivateKey", "load_private_key"]

_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64_int(value: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")


class PrivateKey:
    """The app's signing key for ``private_key_jwt``: the key, its JWS ``alg`` and ``kid``."""

    def __init__(self, key: _SigningKey, *, kid: str | None) -> None:
        self.key = key
        self.kid = kid
        if isinstance(key, rsa.RSAPrivateKey):
            if key.key_size < 2048:
                raise ConfigurationError("client_private_key: RSA keys must have 2048 bits or more")
            self.alg = "RS256"
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            algs = {"secp256r1": "ES256", "secp384r1": "ES384"}
            if key.curve.name not in algs:
                raise ConfigurationError("client_private_key: EC keys must be P-256 or P-384")
            self.alg = algs[key.curve.name]
        else:
            self.alg = "EdDSA"

    def sign(self, signing_input: bytes) -> bytes:
        key = self.key
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        if isinstance(key, ec.EllipticCurvePrivateKey):
            digest: hashes.HashAlgorithm = (
                hashes.SHA256() if self.alg == "ES256" else hashes.SHA384()
            )
            r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(digest)))
            size = math.ceil(key.curve.key_size / 8)
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")
        return key.sign(signing_input)

    def assertion(self, *, client_id: str, audience: str, now: float) -> str:
        header: dict[str, Any] = {"alg": self.alg, "typ": "JWT"}
        if self.kid:
            header["kid"] = self.kid
        claims = {"iss": client_id, "sub": client_id, "aud": audience, "jti": random_token(),
                  "iat": int(now), "exp": int(now) + 60}  # fmt: skip
        signing_input = ".".join(
            _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        )
        return f"{signing_input}.{_b64url(self.sign(signing_input.encode('ascii')))}"


def load_private_key(text: str, *, kid: str | None = None) -> PrivateKey:
    """A PEM private key (PKCS#8 or traditional) or a private JWK (JSON); ``kid`` wins over
    the JWK's own. Public keys, encrypted PEMs and symmetric JWKs are refused."""
    text = text.strip()
    try:
        if text.startswith("{"):
            key, jwk_kid = _from_jwk(json.loads(text))
            return PrivateKey(key, kid=kid or jwk_kid)
        loaded = serialization.load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError, KeyError) as err:
        raise ConfigurationError(
            f"client_private_key is not an unencrypted PEM private key or private JWK: {err}"
        ) from err
    if not isinstance(loaded, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
                      | ed25519.Ed25519PrivateKey):  # fmt: skip
        raise ConfigurationError("client_private_key: use an RSA, EC (P-256/P-384) or Ed25519 key")
    return PrivateKey(loaded, kid=kid)


def _from_jwk(jwk: dict[str, Any]) -> tuple[_SigningKey, str | None]:
    kid = jwk.get("kid") if isinstance(jwk.get("kid"), str) else None
    kty = jwk.get("kty")
    if kty == "RSA" and "d" in jwk:
        public = rsa.RSAPublicNumbers(_b64_int(jwk["e"]), _b64_int(jwk["n"]))
        numbers = rsa.RSAPrivateNumbers(
            p=_b64_int(jwk["p"]), q=_b64_int(jwk["q"]), d=_b64_int(jwk["d"]),
            dmp1=_b64_int(jwk["dp"]), dmq1=_b64_int(jwk["dq"]), iqmp=_b64_int(jwk["qi"]),
            public_numbers=public,
        )  # fmt: skip
        return numbers.private_key(), kid
    if kty == "EC" and "d" in jwk:
        curves: dict[str, ec.EllipticCurve] = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1()}
        curve = curves[jwk["crv"]]
        ec_public = ec.EllipticCurvePublicNumbers(_b64_int(jwk["x"]), _b64_int(jwk["y"]), curve)
        return ec.EllipticCurvePrivateNumbers(_b64_int(jwk["d"]), ec_public).private_key(), kid
    if kty == "OKP" and jwk.get("crv") == "Ed25519" and "d" in jwk:
        raw = base64.urlsafe_b64decode(jwk["d"] + "=" * (-len(jwk["d"]) % 4))
        return ed25519.Ed25519PrivateKey.from_private_bytes(raw), kid
    raise ValueError("not a private RSA, EC or Ed25519 JWK")


class ClientCredentials:
    """The app's client at the provider and how it authenticates (see the module docstring)."""

    def __init__(
        self,
        client_id: str,
        client_secret: str | None,
        *,
        auth: ClientAuth = "auto",
        private_key: PrivateKey | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if auth == "private_key_jwt" and private_key is None:
            raise ConfigurationError("token_endpoint_auth=private_key_jwt needs client_private_key")
        if auth in ("client_secret_basic", "client_secret_post") and not client_secret:
            raise ConfigurationError(f"token_endpoint_auth={auth} needs OIDC_CLIENT_SECRET")
        self.client_id = client_id
        self.client_secret = client_secret
        self.auth = auth
        self.private_key = private_key
        self._clock = clock

    def method(self, metadata: ProviderMetadata | None) -> ClientAuth:
        """The method used with this provider (``auto`` resolved from discovery)."""
        if self.auth != "auto":
            return self.auth
        if self.private_key is not None:
            return "private_key_jwt"
        if not self.client_secret:
            return "none"
        supported = (metadata.token_endpoint_auth_methods_supported if metadata else None) or []
        if (
            supported
            and "client_secret_basic" not in supported
            and ("client_secret_post" in supported)
        ):
            return "client_secret_post"
        return "client_secret_basic"

    def apply(
        self, data: dict[str, str], headers: dict[str, str], *, metadata: ProviderMetadata
    ) -> None:
        """Add the app's authentication to a request to one of the provider's endpoints (the
        assertion's audience is the token endpoint's URL, which RFC 9126 and RFC 7009 servers
        accept for their endpoints too)."""
        method = self.method(metadata)
        if method == "client_secret_basic":
            assert self.client_secret is not None
            # RFC 6749 2.3.1: both parts form-urlencoded before Base64.
            pair = f"{quote(self.client_id, safe='')}:{quote(self.client_secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
            return
        data["client_id"] = self.client_id
        if method == "client_secret_post":
            assert self.client_secret is not None
            data["client_secret"] = self.client_secret
        elif method == "private_key_jwt":
            assert self.private_key is not None
            now = self._clock() if self._clock is not None else time.time()
            data["client_assertion_type"] = _ASSERTION_TYPE
            data["client_assertion"] = self.private_key.assertion(
                client_id=self.client_id, audience=metadata.token_endpoint or metadata.issuer,
                now=now,
            )  # fmt: skip
