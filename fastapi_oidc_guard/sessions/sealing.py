"""Sealing: AES-256-GCM with keys derived by HKDF from ``OIDC_SESSION_SECRET``.

A sealed value is ``v1.`` + base64url(key id (4 bytes) || nonce (12) || ciphertext || tag). The
plaintext is JSON ``{"exp": <unix time>, "p": <payload>}``, so expiry cannot be changed without
breaking the tag. The purpose (``session``, ``txn``...) is bound as associated data: a value
sealed for one purpose never opens as another. Several secrets rotate: the first seals, all open.
"""

from __future__ import annotations

import base64
import binascii
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


def _derive(secret: str, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(
        secret.encode("utf-8")
    )


class Sealer:
    """Seals and opens JSON payloads with expiry; ``open`` returns ``None`` for anything invalid."""

    def __init__(self, secrets: Sequence[str], *, clock: Callable[[], float]) -> None:
        if not secrets:
            raise ValueError("at least one secret is needed")
        self._keys = [(_derive(s, _INFO_ID, 4), AESGCM(_derive(s, _INFO_KEY, 32))) for s in secrets]
        self._by_id = {key_id: aead for key_id, aead in reversed(self._keys)}
        self._clock = clock

    def seal(self, payload: Any, *, purpose: str, expires_at: float) -> str:
        key_id, aead = self._keys[0]
        nonce = os.urandom(12)
        plaintext = json.dumps({"exp": expires_at, "p": payload}, separators=(",", ":"))
        sealed = aead.encrypt(nonce, plaintext.encode("utf-8"), purpose.encode("ascii"))
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
            plaintext = aead.decrypt(raw[4:16], raw[16:], purpose.encode("ascii"))
            document = json.loads(plaintext)
        except (InvalidTag, ValueError):
            return None
        if not isinstance(document, dict) or not isinstance(document.get("exp"), int | float):
            return None
        if self._clock() >= document["exp"]:
            return None
        return document.get("p")
