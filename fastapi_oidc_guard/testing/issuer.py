"""``FakeIssuer``: an in-process OpenID Provider for tests, served through an httpx transport.

It is product code, not a mock: it serves a real discovery document and JWKS, signs real tokens
with real keys, and lets a test rotate keys, count fetches and simulate outages::

    issuer = FakeIssuer()
    guard = OIDCGuard(issuer=issuer.issuer, audience=issuer.audience, transport=issuer.transport)
    token = issuer.mint(sub="alice", scope="read:messages")

Served to a browser (``asgi`` plus ``interactive=True``, as the example app's development mode
does), it redirects only to the redirect URIs registered for its client and builds every URL it
renders from its configured ``issuer`` URL, never from request headers.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import httpx

from ._keys import SigningKey, compact
from ._oauth import AuthorizationServer, registration
from ._pages import (
    InvalidRequest,
    Receive,
    Scope,
    Send,
    error_page,
    html_page,
    login_page,
    parse_form,
    serve_asgi,
)

__all__ = ["FakeIssuer", "IssuerMode", "combined_transport"]

IssuerMode = Literal["up", "down", "error", "garbage", "empty"]

DEFAULT_ISSUER = "https://issuer.example.test"
DEFAULT_AUDIENCE = "https://api.example.test"


class FakeIssuer:
    """An OpenID Provider in a box.

    ``mode`` simulates outages: ``down`` refuses connections, ``error`` answers 500, ``garbage``
    answers 200 with a body that is not JSON, ``empty`` serves a JWKS without keys. ``latency``
    (seconds) delays every answer, to let concurrent requests pile up; ``gate``, when set to an
    ``asyncio.Event``, holds every answer until the event is set. ``requests`` counts the
    requests per endpoint name (``discovery``, ``jwks``, ...).

    ``redirect_uris`` and ``post_logout_redirect_uris`` register the client's URIs (exact match).
    ``None``, the default, registers nothing and accepts any URI: for in-process tests only. An
    ``interactive`` issuer (a login page, for browsers) must register both.
    ``public_clients`` maps more client ids (public clients: no secret, PKCE, the authorization
    code grant only) to their exact redirect URIs, e.g. Swagger UI's ``/docs/oauth2-redirect``.
    """

    def __init__(
        self,
        issuer: str = DEFAULT_ISSUER,
        *,
        audience: str = DEFAULT_AUDIENCE,
        client_id: str = "test-client",
        client_secret: str = "test-client-secret",
        algorithms: tuple[str, ...] = ("RS256", "ES256"),
        clock: Callable[[], float] = time.time,
        redirect_uris: Sequence[str] | None = None,
        post_logout_redirect_uris: Sequence[str] | None = None,
        interactive: bool = False,
        public_clients: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        if interactive and (redirect_uris is None or post_logout_redirect_uris is None):
            raise ValueError("an interactive issuer must register its client's redirect URIs")
        self.redirect_uris = registration(redirect_uris)
        self.post_logout_redirect_uris = registration(post_logout_redirect_uris)
        #: Public clients (no secret; PKCE; the authorization code grant only), each with its
        #: exact redirect URIs: e.g. Swagger UI's ``/docs/oauth2-redirect``.
        self.public_clients: dict[str, tuple[str, ...]] = {}
        for cid, uris in (public_clients or {}).items():
            if not cid or cid == client_id:
                raise ValueError(f"public client {cid!r}: an id of its own, not the app's")
            self.public_clients[cid] = registration(uris) or ()
        self.issuer = issuer
        self.audience = audience
        self.client_id = client_id
        self.client_secret = client_secret
        self.clock = clock
        self.keys: list[SigningKey] = [SigningKey.generate(alg) for alg in algorithms]
        self.mode: IssuerMode = "up"
        self.latency = 0.0
        self.gate: asyncio.Event | None = None
        #: When true, ``/authorize`` shows a login page instead of signing ``next_user`` in.
        self.interactive = interactive
        self.preset_users: list[dict[str, Any]] = [
            {"sub": "alice", "name": "Alice Example", "email": "alice@example.test"},
            {"sub": "bob", "name": "Bob Example", "email": "bob@example.test"},
        ]
        self.jwks_cache_control: str | None = None
        self.requests: Counter[str] = Counter()
        self.oauth = AuthorizationServer(self)
        self._transport = httpx.MockTransport(self._handle)

    # -- what a test configures ---------------------------------------------------------------

    @property
    def base(self) -> str:
        return self.issuer.rstrip("/")

    @property
    def transport(self) -> httpx.AsyncBaseTransport:
        """Pass to ``OIDCGuard(transport=...)``: every provider call is answered in-process."""
        return self._transport

    @property
    def signing_key(self) -> SigningKey:
        """The key used by default: the first one."""
        return self.keys[0]

    def key_for(self, alg: str) -> SigningKey:
        """The first published key for ``alg``."""
        return next(key for key in self.keys if key.alg == alg)

    def rotate(self, alg: str = "RS256") -> SigningKey:
        """Publish a new key first (it signs from now on); old keys stay published."""
        key = SigningKey.generate(alg)
        self.keys.insert(0, key)
        return key

    def retire(self, kid: str) -> None:
        """Stop publishing the key ``kid``."""
        self.keys = [key for key in self.keys if key.kid != kid]

    def login_as(self, sub: str, **claims: Any) -> None:
        """The user that the next authorization requests sign in (auto-login)."""
        self.oauth.next_user = {"sub": sub, **claims}

    def authorize(self, url: str, *, user: dict[str, Any] | None = None) -> str:
        """Answer an authorization request URL as a browser would see it: the redirect target."""
        self.requests["authorize"] += 1
        return self.oauth.authorize(url, user=user)

    @contextmanager
    def outage(self, mode: IssuerMode = "down") -> Iterator[None]:
        """Simulate an outage for the duration of the block."""
        previous, self.mode = self.mode, mode
        try:
            yield
        finally:
            self.mode = previous

    # -- documents ----------------------------------------------------------------------------

    def discovery_document(self) -> dict[str, Any]:
        base = self.base
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{base}/jwks",
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "userinfo_endpoint": f"{base}/userinfo",
            "end_session_endpoint": f"{base}/logout",
            "revocation_endpoint": f"{base}/revoke",
            "introspection_endpoint": f"{base}/introspect",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": sorted({k.alg for k in self.keys}),
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": True,
        }

    def jwks(self) -> dict[str, Any]:
        if self.mode == "empty":
            return {"keys": []}
        return {"keys": [key.public_jwk() for key in self.keys if not key.alg.startswith("HS")]}

    # -- tokens -------------------------------------------------------------------------------

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """Default access-token claims, with ``overrides`` applied (``None`` removes a claim)."""
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": "user-1",
            "aud": self.audience,
            "iat": now,
            "exp": now + 3600,
            "scope": "openid profile",
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def mint(
        self,
        *,
        key: SigningKey | None = None,
        header: dict[str, Any] | None = None,
        alg: str | None = None,
        **claims: Any,
    ) -> str:
        """A signed access token (``typ: at+jwt``); any claim or header can be overridden.

        ``mint(exp=0)``, ``mint(aud="other")``, ``mint(header={"typ": "JWT"})``... make hostile
        tokens one line each. A header value of ``None`` removes that header.
        """
        return self.sign(self.claims(**claims), key=key, header=header, alg=alg)

    mint_access_token = mint

    def mint_opaque(self, **claims: Any) -> str:
        """An opaque access token (random, not a JWT) that the introspection endpoint knows:
        its answer is ``active`` with the default claims, ``claims`` applied (``None`` removes
        one). ``issuer.oauth.introspected[token] = {...}`` scripts any other answer."""
        token = secrets.token_urlsafe(32)
        base = self.claims(**{"client_id": self.client_id, "token_type": "Bearer", **claims})
        self.oauth.introspected[token] = {"active": True, **base}
        return token

    def mint_id_token(self, *, nonce: str | None = None, **claims: Any) -> str:
        """A signed ID token for ``client_id``."""
        base = self.claims(**{"aud": self.client_id, "scope": None, "nonce": nonce, **claims})
        return self.sign(base, header={"typ": "JWT"})

    def sign(
        self,
        payload: dict[str, Any] | bytes,
        *,
        key: SigningKey | None = None,
        header: dict[str, Any] | None = None,
        alg: str | None = None,
    ) -> str:
        """Sign any payload; the header defaults to the key's ``alg``/``kid`` and ``at+jwt``."""
        key = key or self.signing_key
        head: dict[str, Any] = {"alg": alg or key.alg, "kid": key.kid, "typ": "at+jwt"}
        head.update(header or {})
        head = {k: v for k, v in head.items() if v is not None}
        return compact(head, payload, key, alg=head.get("alg", alg or key.alg))

    # -- the transport ------------------------------------------------------------------------

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        name = self._endpoint_name(request.url.path)
        self.requests[name] += 1
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.gate is not None:
            await self.gate.wait()
        if self.mode == "down":
            raise httpx.ConnectError("fake issuer is down", request=request)
        if self.mode == "error":
            return httpx.Response(500, text="internal error")
        if self.mode == "garbage":
            return httpx.Response(200, text="<html>not json", headers={"content-type": "text/html"})
        if name == "discovery":
            return self._json(self.discovery_document())
        if name == "jwks":
            headers = {"cache-control": self.jwks_cache_control} if self.jwks_cache_control else {}
            return self._json(self.jwks(), headers=headers)
        return self._oauth_endpoint(name, request)

    def _oauth_endpoint(self, name: str, request: httpx.Request) -> httpx.Response:
        try:
            return self._answer(name, request)
        except InvalidRequest as err:  # answered here, never by a redirect
            if name in ("token", "revoke"):
                body = {"error": "invalid_request", "error_description": str(err)}
                return self._json(body, status=400, headers={"cache-control": "no-store"})
            return error_page(str(err))

    def _answer(self, name: str, request: httpx.Request) -> httpx.Response:
        authorization = request.headers.get("authorization")
        post = request.method == "POST"
        form = parse_form(request.content, request.headers.get("content-type")) if post else {}
        params = form if post else dict(request.url.params)
        if name == "authorize":
            if self.interactive:
                return login_page(self, params, submitted=post)
            return httpx.Response(302, headers={"location": self.oauth.authorize_params(params)})
        if name == "token" and post:
            status, body = self.oauth.token(form, authorization)
            return self._json(body, status=status, headers={"cache-control": "no-store"})
        if name == "userinfo":
            status, body = self.oauth.userinfo(authorization)
            return self._json(body, status=status)
        if name == "logout":
            status, target = self.oauth.end_session(params)
            if status == 302:
                return httpx.Response(302, headers={"location": target})
            return error_page(target) if status == 400 else html_page(target)
        if name == "revoke" and post:
            return httpx.Response(self.oauth.revoke(form, authorization))
        if name == "introspect" and post:
            status, body = self.oauth.introspect(form, authorization)
            return self._json(body, status=status, headers={"cache-control": "no-store"})
        return httpx.Response(404, json={"error": "not_found"})

    def _endpoint_name(self, path: str) -> str:
        prefix = httpx.URL(self.base).path.rstrip("/")
        local = path[len(prefix) :] if path.startswith(prefix) else path
        if local == "/.well-known/openid-configuration":
            return "discovery"
        return local.strip("/") or "root"

    @property
    def asgi(self) -> IssuerApp:
        """An ASGI app serving this issuer over HTTP (mount it, or ``uvicorn.run(issuer.asgi)``),
        for browsers and tools outside the process. Its ``issuer`` URL must match where it is
        served: every URL is built from it, none from the request's ``Host`` header.
        """
        return IssuerApp(self)

    @staticmethod
    def _json(document: Any, *, status: int = 200, headers: dict[str, str] | None = None
              ) -> httpx.Response:  # fmt: skip
        body = json.dumps(document).encode()
        all_headers = {"content-type": "application/json", **(headers or {})}
        return httpx.Response(status, content=body, headers=all_headers)


def combined_transport(*issuers: FakeIssuer) -> httpx.AsyncBaseTransport:
    """One transport serving several fake issuers (routed by URL), e.g. for multi-issuer apps.

    A request for any other host fails like an unreachable network and is counted in the first
    issuer's ``requests["unrouted"]``, so tests can assert that no request left.
    """

    async def handle(request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        for issuer in issuers:
            if url.startswith(issuer.base + "/"):
                return await issuer._handle(request)
        issuers[0].requests["unrouted"] += 1
        raise httpx.ConnectError(f"no fake issuer at {request.url.host}", request=request)

    return httpx.MockTransport(handle)


class IssuerApp:
    """``FakeIssuer.asgi``: an ASGI 3 application object (an ``async def __call__``, so uvicorn
    and other servers detect the interface; a bound method would be taken for ASGI 2)."""

    __slots__ = ("issuer",)

    def __init__(self, issuer: FakeIssuer) -> None:
        self.issuer = issuer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await serve_asgi(self.issuer, scope, receive, send)
