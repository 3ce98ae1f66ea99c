"""The development issuer's login page: type a user name or pick a test user."""

from __future__ import annotations

from html import escape

__all__ = ["render_login_page"]

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:26rem;margin:4rem auto;padding:0 1rem}"
    ".warn{background:#fff3cd;border:1px solid #e0c36c;padding:.6rem;border-radius:6px}"
    "input,button{font-size:1rem;padding:.45rem;margin:.25rem 0}button{cursor:pointer}"
)


def render_login_page(*, action: str, params: dict[str, str], users: list[str]) -> str:
    """HTML for the authorization request ``params``; every value is escaped."""
    hidden = "".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">'
        for k, v in params.items()
        if k != "login"
    )
    picks = "".join(
        f'<button type="submit" name="login" value="{escape(u)}">Continue as {escape(u)}</button> '
        for u in users
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Development issuer</title>"
        f"<style>{_STYLE}</style></head><body>"
        "<h1>Development issuer</h1>"
        "<p class='warn'>Local development only: anyone can sign in as anyone.</p>"
        f'<form method="post" action="{escape(action)}">{hidden}'
        '<label>User name <input id="login" name="login" autofocus autocomplete="off"></label> '
        '<button id="submit" type="submit">Sign in</button></form>'
        f'<form method="post" action="{escape(action)}">{hidden}<p>Or: {picks}</p></form>'
        "</body></html>"
    )
