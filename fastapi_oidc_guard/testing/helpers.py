"""Test helpers that skip the login flow: user overrides and ready-made session cookies."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI

from ..dependencies import optional_user, require_page_user, require_user
from ..guard import OIDCGuard
from ..models import SessionData, TokenSet, User
from ..pkce import random_token

__all__ = ["make_session", "override_user", "session_cookies"]


@contextmanager
def override_user(app: FastAPI, user: User | None) -> Iterator[User | None]:
    """Within the block, ``require_user``, ``require_page_user`` and ``optional_user`` return
    ``user`` (``None``: anonymous; ``require_user`` then still answers 401). Overrides that
    were there before are restored afterwards."""
    targets: tuple[Callable[..., Any], ...] = (require_user, require_page_user, optional_user)
    saved = {t: app.dependency_overrides[t] for t in targets if t in app.dependency_overrides}

    def anonymous() -> None:
        return None

    if user is None:
        app.dependency_overrides[optional_user] = anonymous
        for target in (require_user, require_page_user):
            app.dependency_overrides.pop(target, None)
    else:
        for target in targets:
            app.dependency_overrides[target] = lambda: user
    try:
        yield user
    finally:
        for target in targets:
            app.dependency_overrides.pop(target, None)
        app.dependency_overrides.update(saved)


def make_session(
    user: dict[str, Any],
    *,
    access_token: str | None = None,
    audience: str | None = None,
    scope: str = "openid profile email offline_access",
    refresh_token: str | None = None,
    expires_in: float = 3600,
    now: float | None = None,
) -> SessionData:
    """A :class:`SessionData` for ``user`` (claims, ``sub`` required), as a login would store."""
    now = time.time() if now is None else now
    tokens = {}
    if access_token is not None:
        tokens[f"{audience or ''}|{scope}"] = TokenSet(
            access_token=access_token, expires_at=now + expires_in, scope=scope, audience=audience
        )
    return SessionData(
        id=random_token(), sub=user["sub"], sid=user.get("sid"), user=dict(user),
        refresh_token=refresh_token, tokens=tokens, created_at=now, last_active=now,
    )  # fmt: skip


def session_cookies(guard: OIDCGuard, session: SessionData) -> dict[str, str]:
    """Cookies (name -> value) that carry ``session`` for ``guard``: nextjs-auth0's
    ``generateSessionCookie``. Works with every backend (a stateful one stores the session)."""
    manager = guard.sessions
    if manager is None:
        raise ValueError("this guard has no sessions: configure login first")
    scope: dict[str, Any] = {"type": "http", "headers": []}
    manager.start(scope, session)
    cookies: dict[str, str] = {}
    for header in _run(manager.commit(manager.slot(scope))):
        name, _, rest = header.decode("latin-1").partition("=")
        cookies[name] = rest.split(";", 1)[0]
    return cookies


def _run(coroutine: Any) -> Any:
    """Run a coroutine to completion from sync code, even inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(asyncio.run(coroutine)))
    thread.start()
    thread.join()
    return result[0]
