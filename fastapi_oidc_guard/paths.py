"""The app's path as the browser sees it, for every URL and cookie path the library makes.

Behind a reverse proxy that serves the app under a prefix (``https://example.com/myapp/``),
the prefix comes from ``OIDC_BASE_URL``'s path (``https://example.com/myapp``) or, when that
has none, from the ASGI ``root_path`` (``uvicorn --root-path /myapp``). The login and callback
URLs, the transaction cookie's path, page redirects to login, ``returnTo`` defaults, the
logout form and the post-logout URL all include it. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["browser_path", "mount_path"]


def mount_path(app_path: str, scope: Mapping[str, Any]) -> str:
    """The prefix the app is served under ('' at the root): ``app_path`` (from the base URL),
    else the connection's ``root_path``."""
    if app_path:
        return app_path
    root = scope.get("root_path", "")
    return root.rstrip("/") if isinstance(root, str) else ""


def browser_path(scope: Mapping[str, Any], app_path: str = "") -> str:
    """The request's path as the browser requested it (the prefix included)."""
    mount = mount_path(app_path, scope)
    path = str(scope.get("path", "/"))
    if mount and path != mount and not path.startswith(mount + "/"):
        path = mount + path  # a server that strips the prefix from ``path`` (older ASGI servers)
    return path
