"""Bearer credentials in requests: the ``Authorization`` header, and on WebSocket handshakes,
where browsers cannot set that header, a subprotocol or (opted in) the query.

- ``Authorization: Bearer <token>`` (non-browser clients) is looked at first, as on HTTP.
- Browsers pass a bearer token as a subprotocol: ``new WebSocket(url, ["chat",
  "bearer.<token>"])``. The server accepts with the app's own protocol (:func:`app_subprotocol`:
  the first offered one that is not a token), never echoing the token back.
- ``?access_token=<token>`` only when the app sets ``websocket_query_token=True``: query strings
  end up in access logs, proxies and browser history, so the token leaks there.
- Otherwise the session cookie, as on HTTP. A socket authenticated by the cookie must come from
  an allowed origin (``Origin`` is the app's own or in ``trusted_origins``): cross-site WebSocket
  hijacking from a sibling subdomain, or with ``SameSite=None``, is refused.

Pure functions over the handshake's headers and query; no FastAPI import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from .errors import MalformedAuthorization

__all__ = [
    "B64TOKEN",
    "BEARER_PROTOCOL_PREFIX",
    "app_subprotocol",
    "carries_bearer",
    "offered_protocols",
    "socket_token",
    "split_authorization",
]

BEARER_PROTOCOL_PREFIX = "bearer."
#: The characters of an RFC 6750 ``b64token`` (what a token in ``Authorization`` may hold).
B64TOKEN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=")
QUERY_TOKEN = "access_token"


def split_authorization(value: str) -> tuple[str, str]:
    """``Authorization: <scheme> <credential>`` as (the scheme in lower case, the credential):
    one credential, no spaces in it; :class:`MalformedAuthorization` else."""
    scheme, _, token = value.partition(" ")
    token = token.strip(" ")
    if not scheme or not token or " " in token:
        raise MalformedAuthorization("Authorization header is not '<scheme> <token>'")
    return scheme.lower(), token


def offered_protocols(headers: Mapping[str, str]) -> list[str]:
    """The subprotocols the client offered (``Sec-WebSocket-Protocol``), in order."""
    value = headers.get("sec-websocket-protocol", "")
    return [item.strip() for item in value.split(",") if item.strip()]


def socket_token(
    headers: Mapping[str, str], query: Mapping[str, str], *, allow_query: bool
) -> str | None:
    """A bearer token passed as a ``bearer.<token>`` subprotocol (or, opted in, in the query)."""
    for protocol in offered_protocols(headers):
        if protocol.startswith(BEARER_PROTOCOL_PREFIX):
            return protocol[len(BEARER_PROTOCOL_PREFIX) :]
    if allow_query:
        return query.get(QUERY_TOKEN) or None
    return None


def carries_bearer(
    headers: Mapping[str, str],
    *,
    socket_query: Callable[[], Mapping[str, str]] | None,
    allow_query: bool,
) -> bool:
    """Whether the connection's credential is a bearer token (else: the session cookie). The
    one rule, used by authentication and by every check that depends on the credential
    (step-up, ``auth_state``, the socket's lifetime). ``socket_query`` gives a WebSocket
    handshake's query (``None`` for HTTP requests; only read when needed)."""
    if "authorization" in headers:
        return True
    if socket_query is None:
        return False
    return socket_token(headers, socket_query(), allow_query=allow_query) is not None


def app_subprotocol(headers: Mapping[str, str]) -> str | None:
    """The subprotocol to accept with: the first offered one that does not carry a token.

    ``await websocket.accept(subprotocol=app_subprotocol(websocket.headers))``: browsers fail a
    handshake that offered protocols when the server selects none.
    """
    for protocol in offered_protocols(headers):
        if not protocol.startswith(BEARER_PROTOCOL_PREFIX):
            return protocol
    return None
