"""Random values for the login transaction: ``state``, ``nonce`` and the PKCE pair (S256 only)."""

from __future__ import annotations

import base64
import hashlib
import secrets

__all__ = ["code_challenge", "random_token"]


def random_token(nbytes: int = 32) -> str:
    """An unguessable URL-safe string (256 bits by default)."""
    return secrets.token_urlsafe(nbytes)


def code_challenge(code_verifier: str) -> str:
    """The RFC 7636 S256 challenge of ``code_verifier``; ``plain`` is never used."""
    digest = hashlib.sha256(code_verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
