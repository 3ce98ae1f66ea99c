"""Sealing: AES-256-GCM with keys derived by HKDF from ``OIDC_SESSION_SECRET``.

A sealed value is ``v1.`` + base64url(key id (4 bytes) || nonce (12) || ciphertext || tag). The
plaintext is JSON ``{"exp": <unix time>, "p": <payload>}``, so expiry cannot be changed without
breaking the tag. The purpose (``session``, ``txn``...) and the app's binding (issuer, client id
and cookie name) are the associated data: a value sealed for one purpose, or by another app that
shares the secret (staging and production, say), never opens here. Several secrets rotate: the
first seals, all open.

The same secrets also key :meth:`Sealer.digest`, the keyed hash that stateful stores use as
their keys: the store never sees a cookie's secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["Sealer"]

_PREFIX = "v1."
_INFO_KEY = b"fastapi-oidc-guard/aes-256-gcm/v1"
_INFO_ID = b"fastapi-oidc-guard/key-id/v1"
_INFO_DIGEST = b"fastapi-oidc-guard/store-key/v1"


def _derive(secret: str, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(
        secret.encode("utf-8")
    )


class Sealer:
    """Seals and opens JSON payloads with expiry; ``open`` returns ``None`` for anything invalid."""

    def __init__(
        self, secrets: Sequence[str], *, clock: Callable[[], float], binding: str = ""
    ) -> None:
        if not secrets:
            raise ValueError("at least one secret is needed")
        self._keys = [(_derive(s, _INFO_ID, 4), AESGCM(_derive(s, _INFO_KEY, 32))) for s in secrets]
        self._by_id = {key_id: aead for key_id, aead in reversed(self._keys)}
        info = _INFO_DIGEST + b"\x00" + binding.encode("utf-8")
        self._digest_keys = {
            kid: _derive(s, info, 32) for (kid, _), s in zip(self._keys, secrets, strict=True)
        }
        self._binding = binding.encode("utf-8")
        self._clock = clock

    @property
    def key_id(self) -> bytes:
        """The id of the sealing (first) secret."""
        return self._keys[0][0]

    def digest(self, value: str, *, key_id: bytes) -> str | None:
        """HMAC-SHA-256 of ``value`` under the secret ``key_id`` names (bound to this app), as
        hex; ``None`` for an unknown key id. Stores key sessions by this, never by the cookie."""
        key = self._digest_keys.get(key_id)
        if key is None:
            return None
        return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()

    def name(self, kind: str, value: str) -> str:
        """An app-bound name for ``value`` in a shared store (an index of a ``sid`` or ``sub``):
        SHA-256 over the binding, so two apps sharing one Redis never touch each other's
        entries, and the store does not spell out user ids."""
        material = b"\x00".join((self._binding, kind.encode(), value.encode("utf-8")))
        return hashlib.sha256(material).hexdigest()[:40]

    def _ad(self, purpose: str) -> bytes:
        return purpose.encode("ascii") + b"\x00" + self._binding

    def seal(self, payload: Any, *, purpose: str, expires_at: float) -> str:
        key_id, aead = self._keys[0]
        nonce = os.urandom(12)
        plaintext = json.dumps({"exp": expires_at, "p": payload}, separators=(",", ":"))
        sealed = aead.encrypt(nonce, plaintext.encode("utf-8"), self._ad(purpose))
        return _PREFIX + base64.urlsafe_b64encode(key_id + nonce + sealed).rstrip(b"=").decode()

    def open(self, value: str, *, purpose: str) -> Any | None:
        """The payload, or ``None`` if the value is malformed, tampered, foreign or expired."""
        if not value.startswith(_PREFIX) or len(value) > 64 * 1024:
            return None
        body = value[len(_PREFIX) :]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(raw) < 4 + 12 + 16:
            return None
        aead = self._by_id.get(raw[:4])
        if aead is None:
            return None
        try:
            plaintext = aead.decrypt(raw[4:16], raw[16:], self._ad(purpose))
            document = json.loads(plaintext)
        except (InvalidTag, ValueError):
            return None
        if not isinstance(document, dict) or not isinstance(document.get("exp"), int | float):
            return None
        if self._clock() >= document["exp"]:
            return None
        return document.get("p")
