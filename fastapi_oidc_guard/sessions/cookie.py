"""The default: the whole session, sealed with AES-256-GCM, in the cookie itself (stateless).

Nothing is stored server-side, so a copied cookie would outlive logout on its own: the session
manager refuses ended sessions through a revocation list (in this process, or in Redis for every
process when one is configured). See docs/sessions.md for what holds after logout.
"""

from __future__ import annotations

from pydantic import ValidationError

from .._cache import BoundedCache, token_digest
from ..models import SessionData
from .sealing import Sealer

__all__ = ["CookieSessionBackend"]

PURPOSE = "session"


class CookieSessionBackend:
    """Seals sessions into cookie values and opens them again.

    Opened sessions are kept in a small LRU keyed by SHA-256 of the cookie value (it is
    content-addressed: a changed session is a different value), so a browser's repeated
    requests skip decryption and parsing; the session manager still checks expiry and
    revocation each time.
    """

    stateful = False

    def __init__(self, sealer: Sealer, *, cache_size: int = 1024) -> None:
        self._sealer = sealer
        self._cache: BoundedCache[bytes, SessionData] = BoundedCache(cache_size)

    def open(self, cookie_value: str) -> SessionData | None:
        """The session sealed in ``cookie_value``, or ``None`` (tampered, foreign, expired)."""
        digest = token_digest(cookie_value)
        cached = self._cache.get(digest)
        if cached is not None:
            return cached
        payload = self._sealer.open(cookie_value, purpose=PURPOSE)
        if not isinstance(payload, dict):
            return None
        try:
            session = SessionData.model_validate(payload)
        except ValidationError:
            return None
        self._cache.put(digest, session)
        return session

    def seal(self, session: SessionData, *, expires_at: float) -> str:
        """The cookie value that carries ``session`` until ``expires_at``."""
        payload = session.model_dump(mode="json", exclude_defaults=True)
        return self._sealer.seal(payload, purpose=PURPOSE, expires_at=expires_at)
