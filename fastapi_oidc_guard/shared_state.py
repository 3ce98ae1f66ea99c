"""What the instances of an app share besides sessions: the store of once-only ids (spent
DPoP proofs, logout-token ``jti``), and the key-value store and sealer of shared
introspection answers.

The shared store is the session layer's when it has one (the Redis backend, or the Redis
revocation list of cookie sessions); with ``OIDC_REDIS_URL`` and no login, a Redis client of
its own, which the guard closes.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING, cast

from .config import GuardConfig
from .introspection import ValueStore
from .sessions.base import SharedState
from .sessions.manager import SessionManager
from .sessions.sealing import Sealer

if TYPE_CHECKING:
    from .sessions._redis_client import RedisClient

__all__ = ["introspection_sealer", "shared_state", "value_store"]


def shared_state(
    cfg: GuardConfig, sessions: SessionManager | None
) -> tuple[SharedState | None, RedisClient | None]:
    """The shared store, and the Redis client opened for it here (``None`` when the session
    layer owns it, or there is none)."""
    shared = sessions.shared if sessions is not None else None
    if shared is not None or not cfg.redis_url:
        return shared, None
    from .sessions._redis_client import RedisClient

    # Once-only ids and sealed-elsewhere values only: its own sealing key is never used.
    unused = Sealer((secrets.token_urlsafe(48),), clock=cfg.clock)
    own = RedisClient(sealer=unused, url=cfg.redis_url, clock=cfg.clock)
    return own, own


def value_store(shared: SharedState | None) -> ValueStore | None:
    """The shared key-value store of a Redis-backed part, if there is one."""
    if hasattr(shared, "get_value") and hasattr(shared, "put_value"):
        return cast(ValueStore, shared)
    return None


def introspection_sealer(cfg: GuardConfig) -> Sealer | None:
    """What seals introspection answers shared in Redis: the session secret, else one derived
    from the client secret (an API without login); ``None`` (no sharing) without either."""
    if cfg.session_secret:
        keys = cfg.session_secret
    elif cfg.client_secret:
        keys = (hashlib.sha256(b"introspection\x1f" + cfg.client_secret.encode()).hexdigest(),)
    else:
        return None
    return Sealer(keys, clock=cfg.clock, binding="introspection\x1f" + cfg.issuer)
