"""The app's path as the browser sees it, for every URL and cookie path the library makes.

Behind a reverse proxy that serves the app under a prefix (``https://example.com/myapp/``),
the prefix comes from ``OIDC_BASE_URL``'s path (``https://example.com/myapp``) or, when that
has none, from the ASGI ``root_path`` (``uvicorn --root-path /myapp``). The login and callback
URLs, the transaction cookie's path, page redirects to login, ``returnTo`` defaults, the
logout form and the post-logout URL all include it. Pure.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from .config import SAFE_PREFIX

__all__ = ["browser_path", "mount_path", "received_path"]

logger = logging.getLogger("fastapi_oidc_guard")

_warned: set[str] = set()


def mount_path(app_path: str, scope: Mapping[str, Any]) -> str:
    """The prefix the app is served under ('' at the root): ``app_path`` (from the base URL),
    else the connection's ``root_path``."""
    if app_path:
        return app_path
    root = scope.get("root_path", "")
    root = root.rstrip("/") if isinstance(root, str) else ""
    if root and not SAFE_PREFIX.fullmatch(root):
        # Some servers fill root_path from a request header (Daphne-Root-Path): never trust
        # one that could turn a redirect or a cookie path into something else.
        if root[:64] not in _warned and len(_warned) < 16:
            _warned.add(root[:64])
            logger.warning("ignoring an unsafe ASGI root_path %r: put the prefix in OIDC_BASE_URL",
                           root[:64])  # fmt: skip
        return ""
    return root


def browser_path(scope: Mapping[str, Any], app_path: str = "") -> str:
    """The request's path as the browser requested it (the prefix included)."""
    mount = mount_path(app_path, scope)
    path = str(scope.get("path", "/"))
    if mount and path != mount and not path.startswith(mount + "/"):
        path = mount + path  # a server that strips the prefix from ``path`` (older ASGI servers)
    return path


def received_path(scope: Mapping[str, Any], app_path: str = "") -> str:
    """The request's path as the client sent it: still percent-encoded (``raw_path``, else the
    decoded ``path`` encoded again), without the query, the prefix included (DPoP's ``htu``)."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) and raw else ""
    path = path.partition("?")[0] or quote(str(scope.get("path", "/")))
    mount = mount_path(app_path, scope)
    if mount and path != mount and not path.startswith(mount + "/"):
        path = mount + path
    return path
