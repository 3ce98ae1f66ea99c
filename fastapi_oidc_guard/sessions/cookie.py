"""The default backend: the whole session, sealed with AES-256-GCM, in the cookie itself."""

from __future__ import annotations

from pydantic import ValidationError

from ..models import SessionData
from .sealing import Sealer

__all__ = ["CookieSessionBackend"]

PURPOSE = "session"


class CookieSessionBackend:
    """Stateless: nothing is stored server-side; the sealed value carries its own expiry."""

    stateful = False

    def __init__(self, sealer: Sealer) -> None:
        self._sealer = sealer

    async def load(self, cookie_value: str) -> SessionData | None:
        payload = self._sealer.open(cookie_value, purpose=PURPOSE)
        if not isinstance(payload, dict):
            return None
        try:
            return SessionData.model_validate(payload)
        except ValidationError:
            return None

    async def save(self, session: SessionData, *, expires_at: float) -> str:
        payload = session.model_dump(mode="json", exclude_defaults=True)
        return self._sealer.seal(payload, purpose=PURPOSE, expires_at=expires_at)

    async def delete(self, session: SessionData) -> None:
        return None

    async def delete_by(self, *, sid: str | None = None, sub: str | None = None) -> int:
        return 0
