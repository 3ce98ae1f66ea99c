"""OpenID Connect Back-Channel Logout 1.0: the provider ends sessions by ``sid`` or ``sub``.

The order is the rule (docs/architecture.md, "where each rule lives"): the logout token is
verified (``verify.verify_logout_token``: signature, ``iss``, ``aud``, ``iat``/``exp``, the
``events`` claim, no ``nonce``, ``sid`` or ``sub``), then the sessions are revoked (idempotent:
the time is the token's ``iat``), and only then is its ``jti`` spent. A store failure between
the two (a 503) leaves the provider's retry able to end the session; a replay after that is
refused (400) and does nothing more.

A ``jti`` is remembered in the shared store when there is one (Redis: every instance refuses
the replay), else in this process (:class:`SeenIds`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ._cache import SeenIds
from .errors import InvalidRequest, InvalidToken
from .sessions.manager import SessionManager
from .verify import LEGACY_LOGOUT_WINDOW, TokenVerifier

__all__ = ["BackchannelLogout", "SeenIds"]

logger = logging.getLogger("fastapi_oidc_guard.backchannel")


class BackchannelLogout:
    """Handles one logout token: ``True`` when it ended what it names, ``False`` when refused."""

    def __init__(
        self,
        *,
        verifier: TokenVerifier,
        sessions: SessionManager,
        clock: Callable[[], float],
        leeway: float,
    ) -> None:
        self._verifier = verifier
        self._sessions = sessions
        self._clock = clock
        self._leeway = leeway
        self.seen = SeenIds(clock=self._clock)

    async def handle(self, token: object) -> bool:
        try:
            if not isinstance(token, str):
                raise InvalidRequest("logout_token missing")
            claims = await self._verifier.verify_logout_token(token)
        except (InvalidToken, InvalidRequest) as err:
            logger.info("back-channel logout refused: %s", err)
            return False
        sid, sub = claims.get("sid"), claims.get("sub")
        deleted = await self._sessions.revoke(sid=sid, sub=sub, at=float(claims["iat"]))
        if not await self.first_use(claims):
            logger.info("back-channel logout replayed (jti seen before); nothing more done")
            return False
        logger.info("back-channel logout: %d stored sessions deleted", deleted)
        return True

    async def first_use(self, claims: dict[str, Any]) -> bool:
        """True the first time a logout token's ``jti`` is seen (across processes when the
        session store is shared, e.g. Redis)."""
        now = self._clock()
        # Remembered until it expires (a legacy token without exp: its acceptance window).
        end = claims["exp"] if "exp" in claims else float(claims["iat"]) + LEGACY_LOGOUT_WINDOW
        ttl = max(float(end) - now, 0.0) + self._leeway + 60
        shared = self._sessions.shared
        if shared is not None:
            return await shared.first_use(f"jti:{claims['iss']}:{claims['jti']}", ttl=ttl)
        return self.seen.first_use(claims["jti"], until=now + ttl)
