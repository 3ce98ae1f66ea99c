"""The development issuer's HTTP side: requests read strictly (ASGI scope, form bodies), the login
page (type a user name or pick a test user), and the 400 page for a request it refuses.

Every URL comes from the issuer's configured ``issuer`` URL, never from a request header; a
malformed request is a 400, never a 500.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from html import escape
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

import httpx

from ._errors import InvalidRequest
from ._oauth import AuthorizationServer


class _Served(Protocol):
    """What the HTTP side needs of the issuer (no import of ``issuer``: no cycle)."""

    oauth: AuthorizationServer
    preset_users: list[dict[str, Any]]

    @property
    def base(self) -> str: ...

    async def _handle(self, request: httpx.Request) -> httpx.Response: ...


__all__ = [
    "MAX_FORM_BYTES",
    "InvalidRequest",
    "Receive",
    "Scope",
    "Send",
    "error_page",
    "html_page",
    "login_page",
    "parse_form",
    "render_error_page",
    "render_login_page",
    "serve_asgi",
]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

#: Largest body the issuer reads (a real authorization or token request is far smaller).
MAX_FORM_BYTES = 16 * 1024
_FORM_TYPE = "application/x-www-form-urlencoded"
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:26rem;margin:4rem auto;padding:0 1rem}"
    ".warn{background:#fff3cd;border:1px solid #e0c36c;padding:.6rem;border-radius:6px}"
    "input,button{font-size:1rem;padding:.45rem;margin:.25rem 0}button{cursor:pointer}"
)


def parse_form(body: bytes, content_type: str | None) -> dict[str, str]:
    """A strict ``application/x-www-form-urlencoded`` body: UTF-8, bounded, no repeated names.

    An empty body is an empty form whatever its content type. Raises :class:`InvalidRequest`.
    """
    if not body:
        return {}
    if (content_type or "").split(";", 1)[0].strip().lower() != _FORM_TYPE:
        raise InvalidRequest(f"the body must be {_FORM_TYPE}")
    if len(body) > MAX_FORM_BYTES:
        raise InvalidRequest("the body is too large")
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=100)
    except ValueError as err:  # UnicodeDecodeError included; too many fields
        raise InvalidRequest("the body is not a valid UTF-8 form") from err
    form = dict(pairs)
    if len(form) != len(pairs):
        raise InvalidRequest("a parameter is repeated")
    return form


async def serve_asgi(issuer: _Served, scope: Scope, receive: Receive, send: Send) -> None:
    """``FakeIssuer.asgi``: read the request (bounded), answer it like the in-process transport."""
    if scope["type"] != "http":
        return
    body, complete = b"", False
    while not complete:
        message = await receive()
        body += message.get("body", b"")
        complete = not message.get("more_body") or len(body) > MAX_FORM_BYTES
    try:
        response = await issuer._handle(_request_from(issuer, scope, body))
    except InvalidRequest as err:
        response = error_page(str(err))
    except httpx.ConnectError:
        response = httpx.Response(503, text="fake issuer is down")
    await send({"type": "http.response.start", "status": response.status_code,
                "headers": response.headers.raw})  # fmt: skip
    await send({"type": "http.response.body", "body": response.content})


def _request_from(issuer: _Served, scope: Scope, body: bytes) -> httpx.Request:
    """The request addressed to the issuer's own URL (path relative to where it is mounted).

    ``body`` was read up to just past ``MAX_FORM_BYTES``; :func:`parse_form` refuses it then.
    """
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    prefix = urlsplit(issuer.base).path.rstrip("/")
    if prefix and (path == prefix or path.startswith(prefix + "/")):
        path = path[len(prefix) :]
    try:
        url = httpx.URL(issuer.base + path, query=scope.get("query_string", b""))
    except httpx.InvalidURL as err:
        raise InvalidRequest("malformed request URL") from err
    headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"host"]
    return httpx.Request(scope["method"], url, headers=headers, content=body)


def _document(body: str) -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Development issuer</title>"
        f"<style>{_STYLE}</style></head><body><h1>Development issuer</h1>{body}</body></html>"
    )


def html_page(html: str, *, status: int = 200) -> httpx.Response:
    headers = {"content-type": "text/html; charset=utf-8", "cache-control": "no-store"}
    return httpx.Response(status, text=html, headers=headers)


def render_error_page(message: str) -> str:
    """HTML for a refused request: nothing on it links or redirects onward."""
    return _document(f"<p id='error'>Request refused: {escape(message)}.</p>")


def error_page(message: str) -> httpx.Response:
    """A 400 answered in place: never a redirect to a target that could not be trusted."""
    return html_page(render_error_page(message), status=400)


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
    return _document(
        "<p class='warn'>Local development only: anyone can sign in as anyone.</p>"
        f'<form method="post" action="{escape(action)}">{hidden}'
        '<label>User name <input id="login" name="login" autofocus autocomplete="off"></label> '
        '<button id="submit" type="submit">Sign in</button></form>'
        f'<form method="post" action="{escape(action)}">{hidden}<p>Or: {picks}</p></form>'
    )


def login_page(issuer: _Served, params: dict[str, str], *, submitted: bool) -> httpx.Response:
    """The interactive ``/authorize``: the login page, or (``submitted``) sign in and redirect.

    An unknown client or an unregistered redirect URI raises :class:`InvalidRequest` before
    anything is shown. The form posts to the issuer's configured URL.
    """
    issuer.oauth.check_client(params)
    if submitted:
        login = params.pop("login", "").strip()[:64] or "user"
        preset = next((u for u in issuer.preset_users if u["sub"] == login), None)
        user = dict(preset or {"sub": login, "name": login, "email": f"{login}@example.test"})
        location = issuer.oauth.authorize_params(params, user=user)
        return httpx.Response(302, headers={"location": location})
    users = [u["sub"] for u in issuer.preset_users]
    page = render_login_page(action=f"{issuer.base}/authorize", params=params, users=users)
    return html_page(page)
