"""Login transactions: one short-lived encrypted cookie per login, so parallel tabs work.

The cookie's name is derived from ``state``, so the callback finds its own transaction; its path is
the routes' prefix (``/auth``), so it travels to the login and callback routes only, except for a
``__Host-`` name, which must have ``Path=/`` (the name still carries the login's state). Sealed
with the app's binding: another app's transaction never opens here. At most
``max_pending`` transactions are kept: the oldest are removed when a new login starts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from pydantic import BaseModel, ValidationError

from .errors import InvalidRequest
from .sessions.cookies import CookieSettings, cookie_header
from .sessions.sealing import Sealer

__all__ = ["Transaction", "TransactionStore"]

PURPOSE = "txn"
#: A transaction cookie never exceeds this (a normal one is ~550 bytes): with ``Path=/`` it goes
#: with every request, so a page that starts logins in a loop must not be able to stuff the
#: browser's Cookie header past what servers accept (3 pending logins: at most ~3 KB).
MAX_TXN_BYTES = 1024


class Transaction(BaseModel):
    """What the callback needs to finish a login."""

    state: str
    nonce: str
    code_verifier: str
    return_to: str
    audience: str | None = None
    scope: str
    created_at: float
    max_age: int | None = None  # asked: the ID token must say auth_time within it
    acr_values: str | None = None


class TransactionStore:
    """Seals transactions into cookies named ``<prefix><hash of state>``."""

    def __init__(
        self,
        sealer: Sealer,
        cookie: CookieSettings,
        *,
        path: str,
        ttl: float = 600.0,
        max_pending: int,
    ) -> None:
        self._sealer = sealer
        self._cookie = cookie
        self._path = path
        self._ttl = ttl
        self._max_pending = max_pending
        self.prefix = f"{cookie.name}_txn_"
        #: Host-only (``__Host-``) cookies always have Path=/.
        self.host_only = cookie.name.startswith("__Host-")

    def name_for(self, state: str) -> str:
        return self.prefix + hashlib.sha256(state.encode()).hexdigest()[:16]

    def open(self, cookies: Mapping[str, str], state: str) -> Transaction | None:
        """The transaction for ``state`` from the request's cookies, or ``None``."""
        value = cookies.get(self.name_for(state))
        if value is None:
            return None
        return self._parse(value)

    def _parse(self, value: str) -> Transaction | None:
        payload = self._sealer.open(value, purpose=PURPOSE)
        if not isinstance(payload, dict):
            return None
        try:
            return Transaction.model_validate(payload)
        except ValidationError:
            return None

    def start(
        self, cookies: Mapping[str, str], txn: Transaction, *, path: str | None = None
    ) -> list[bytes]:
        """``Set-Cookie`` values that store ``txn`` and evict the oldest pending ones (the
        cookies' path: ``path``, else the store's)."""
        pending: list[tuple[float, str]] = []
        headers: list[bytes] = []
        for name, value in cookies.items():
            if not name.startswith(self.prefix):
                continue
            existing = self._parse(value)
            if existing is None:
                headers.append(self.delete(name, path=path))
            else:
                pending.append((existing.created_at, name))
        pending.sort()
        while len(pending) >= self._max_pending:
            headers.append(self.delete(pending.pop(0)[1], path=path))
        sealed = self._sealer.seal(
            txn.model_dump(mode="json"), purpose=PURPOSE, expires_at=txn.created_at + self._ttl
        )
        if len(sealed) > MAX_TXN_BYTES:
            raise InvalidRequest(f"login transaction of {len(sealed)} bytes (returnTo too long?)")
        name = self.name_for(txn.state)
        headers.append(
            cookie_header(
                name, sealed, self._cookie, max_age=int(self._ttl), path=path or self._path
            )
        )
        return headers

    def delete(self, name: str, *, path: str | None = None) -> bytes:
        return cookie_header(name, "", self._cookie, max_age=0, path=path or self._path)
