"""``DPoPKey``: a client's DPoP key that makes proofs (RFC 9449 section 4.2), for tests of an
API that accepts DPoP-bound tokens::

    key = DPoPKey()
    token = issuer.mint(cnf={"jkt": key.jkt})
    headers = key.headers("GET", "http://testserver/api/me", token)
    client.get("/api/me", headers=headers)

Every claim and header of a proof can be overridden (``None`` removes it), so hostile proofs
are one line each.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from ..dpop import access_token_hash, thumbprint
from ._keys import SigningKey, compact

__all__ = ["DPoPKey"]

_MISSING: Any = object()


class DPoPKey:
    """A DPoP key pair (``alg``: ES256 by default) and the proofs it signs."""

    def __init__(self, alg: str = "ES256", *, clock: Any = time.time) -> None:
        self.key = SigningKey.generate(alg)
        self.alg = alg
        self.clock = clock

    @property
    def public_jwk(self) -> dict[str, Any]:
        """The public JWK a proof carries (no ``kid``/``use``/``alg``)."""
        jwk = self.key.public_jwk()
        return {k: v for k, v in jwk.items() if k not in ("kid", "use", "alg")}

    @property
    def jkt(self) -> str:
        """The RFC 7638 thumbprint: the ``cnf.jkt`` of tokens bound to this key."""
        return thumbprint(self.public_jwk)

    def proof(
        self,
        method: str,
        url: str,
        access_token: str | None = None,
        *,
        header: dict[str, Any] | None = None,
        signing_key: SigningKey | None = None,
        **claims: Any,
    ) -> str:
        """A proof for ``method url`` (with ``ath`` for ``access_token``); ``claims`` and
        ``header`` override or (``None``) remove members; ``signing_key`` signs with another
        key than the one in the header."""
        head: dict[str, Any] = {"typ": "dpop+jwt", "alg": self.alg, "jwk": self.public_jwk}
        head.update(header or {})
        body: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16), "htm": method, "htu": url, "iat": int(self.clock()),
        }  # fmt: skip
        if access_token is not None:
            body["ath"] = access_token_hash(access_token)
        body.update(claims)
        head = {k: v for k, v in head.items() if v is not None}
        body = {k: v for k, v in body.items() if v is not None}
        return compact(head, body, signing_key or self.key, alg=head.get("alg", self.alg))

    def headers(self, method: str, url: str, access_token: str, **overrides: Any) -> dict[str, str]:
        """``Authorization: DPoP <token>`` and a fresh ``DPoP`` proof for ``method url``."""
        return {
            "Authorization": f"DPoP {access_token}",
            "DPoP": self.proof(method, url, access_token, **overrides),
        }
