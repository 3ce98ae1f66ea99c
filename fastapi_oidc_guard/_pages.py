"""The library's own small HTML pages (no templates, no scripts, everything escaped)."""

from __future__ import annotations

import base64
import hashlib
from html import escape

__all__ = ["PAGE_CSP", "error_page", "logout_confirmation"]

_STYLE = "font-family:sans-serif;margin:3em"
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
#: The pages' Content-Security-Policy: nothing loads, no script; only their one inline style.
PAGE_CSP = (
    f"default-src 'none'; style-src 'unsafe-hashes' 'sha256-{_STYLE_HASH}'; "
    "frame-ancestors 'none'; form-action 'self'"
)


def logout_confirmation(action: str, return_to: str) -> str:
    """The page ``GET /auth/logout`` shows when the request did not start on this origin: a
    button that POSTs the logout, so a link on another site cannot log the user out."""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        "<title>Log out?</title></head><body style='" + _STYLE + "'>"
        "<h1>Log out?</h1>"
        f"<form method=post action='{escape(action, quote=True)}'>"
        f"<input type=hidden name=returnTo value='{escape(return_to, quote=True)}'>"
        "<button type=submit>Log out</button></form>"
        f"<p><a href='{escape(return_to, quote=True)}'>Stay signed in</a></p>"
        "</body></html>"
    )


def error_page(description: str, *, try_again: str, home: str) -> str:
    """A browser route's error (a stale callback, a cancelled login, the provider down): what
    happened, and the ways back (log in again, keeping where the user was going; go back)."""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        "<title>Something went wrong</title></head><body style='" + _STYLE + "'>"
        "<h1>That did not work</h1>"
        f"<p>{escape(description)}.</p>"
        f"<p><a href='{escape(try_again, quote=True)}'>Try again</a></p>"
        f"<p><a href='{escape(home, quote=True)}'>Go back</a></p>"
        "</body></html>"
    )
