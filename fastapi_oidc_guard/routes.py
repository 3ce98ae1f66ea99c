"""The ``/auth`` routes: login, callback, logout, profile. Mounted by ``OIDCGuard.install``."""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

from fastapi import APIRouter, Request
from fastapi.requests import HTTPConnection
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from . import flows, step_up
from ._pages import logout_confirmation
from .csrf import same_origin_navigation, write_allowed
from .dependencies import GuardAPI
from .errors import (
    AccessDenied,
    CrossOriginRequest,
    InvalidRequest,
    InvalidToken,
    NotAuthenticated,
    OIDCGuardError,
    SessionTooLarge,
    TemporarilyUnavailable,
    TokenRequestFailed,
)
from .http_errors import error_response
from .login_params import MAX_PARAM, has_control_chars, login_ask
from .models import SessionData, TokenSet, User
from .pkce import code_challenge, random_token
from .tokens import TokenHost, TokenService, provider_refusal
from .transactions import Transaction, TransactionStore


class RouterHost(GuardAPI, TokenHost, Protocol):
    """What the ``/auth`` routes use of the guard (no import of ``guard``)."""

    tokens: TokenService
    transactions: TransactionStore | None

    async def session_user(self, request: HTTPConnection) -> User | None: ...

    def public_profile(self, user: User) -> dict[str, Any]: ...

    async def first_logout_use(self, claims: dict[str, Any]) -> bool: ...


__all__ = ["build_router", "safe_return_to", "session_claims"]

logger = logging.getLogger("fastapi_oidc_guard.routes")

_MAX_RETURN_TO = 2048
_MAX_STORED_RETURN_TO = 300
# Protocol claims of the ID token that are not about the user: not kept in the session.
_PROTOCOL_CLAIMS = frozenset(
    {"iss", "aud", "exp", "iat", "nbf", "nonce", "at_hash", "c_hash", "azp", "jti", "sid"}
)


def safe_return_to(value: str | None, *, default: str = "/") -> str:
    """``value`` if it is a same-origin relative path, else ``default``.

    Refused: absolute and scheme-relative URLs (``//evil``), backslashes (``/\\evil``), control
    characters (CR/LF header injection), encoded forms of those (``/%2F%2Fevil``) and values over
    2 KiB.
    """
    if not value or len(value) > _MAX_RETURN_TO:
        return default
    candidates = [value]
    decoded = value
    for _ in range(3):  # percent-decoding is not stable after one pass for nested encodings
        decoded = unquote(decoded)
        candidates.append(decoded)
    for candidate in candidates:
        if (
            not candidate.startswith("/")
            or candidate.startswith("//")
            or "\\" in candidate
            or has_control_chars(candidate)
        ):
            return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value


def session_claims(claims: dict[str, Any]) -> dict[str, Any]:
    """The user's claims from a verified ID token, protocol claims removed."""
    return {k: v for k, v in claims.items() if k not in _PROTOCOL_CLAIMS}


async def _small_form(request: Request, limit: int = 32 * 1024) -> dict[str, str] | None:
    """An ``application/x-www-form-urlencoded`` body of at most ``limit`` bytes, or ``None``."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    try:
        return dict(parse_qsl(body.decode("ascii"), max_num_fields=10))
    except (UnicodeDecodeError, ValueError):
        return None


def build_router(guard: RouterHost) -> APIRouter:
    """The ``/auth/*`` router for ``guard`` (its prefix comes from the configuration)."""
    cfg = guard.config
    assert cfg.client_id is not None and cfg.base_url is not None
    client_id = cfg.client_id
    sessions, transactions = guard.sessions, guard.transactions
    assert sessions is not None and transactions is not None
    base_url = cfg.base_url.rstrip("/")
    own_origin = cfg.origin or ""
    write_origins = frozenset({own_origin, *cfg.trusted_origins})
    redirect_uri = f"{base_url}{cfg.routes_prefix}/callback"
    router = APIRouter(prefix=cfg.routes_prefix, include_in_schema=False)
    warned_no_audience: list[bool] = []

    @router.get("/login")
    async def login(request: Request) -> Response:
        params = request.query_params
        return_to = safe_return_to(params.get("returnTo"), default=cfg.default_return_to)
        if len(json.dumps(return_to)) > _MAX_STORED_RETURN_TO:  # escaped: non-ASCII counts 6x
            return_to = cfg.default_return_to
        ask = login_ask(params, cfg)
        audience, scope = ask.audience, ask.scope
        extra = dict(ask.extra)
        if ask.max_age is not None:
            extra["max_age"] = str(ask.max_age)
        if ask.acr_values is not None:
            extra["acr_values"] = ask.acr_values
        if audience is None and not warned_no_audience:
            warned_no_audience.append(True)
            logger.warning(
                "login without an audience: the provider may issue opaque access tokens that your "
                "API cannot validate. Set OIDC_AUDIENCE to your API's identifier."
            )
        metadata = await guard.discovery.get()
        txn = Transaction(
            state=random_token(), nonce=random_token(), code_verifier=random_token(48),
            return_to=return_to, audience=audience, scope=scope, created_at=cfg.clock(),
            max_age=ask.max_age, acr_values=ask.acr_values,
        )  # fmt: skip
        url = flows.authorization_url(
            metadata, client_id=client_id, redirect_uri=redirect_uri, scope=scope,
            state=txn.state, nonce=txn.nonce, code_challenge=code_challenge(txn.code_verifier),
            audience=audience, audience_param=cfg.audience_param, extra=extra,
        )  # fmt: skip
        response = RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})
        for header in transactions.start(request.cookies, txn):
            response.raw_headers.append((b"set-cookie", header))
        return response

    @router.get("/callback")
    async def callback(request: Request) -> Response:
        for name in ("state", "code", "iss", "error"):
            if len(request.query_params.getlist(name)) > 1:
                raise InvalidRequest(f"callback with {name!r} repeated")
        state = request.query_params.get("state")
        if not state or len(state) > MAX_PARAM:
            raise InvalidRequest("callback without state")
        txn = transactions.open(request.cookies, state)
        if txn is None or not hmac.compare_digest(txn.state.encode(), state.encode()):
            raise InvalidRequest("no login transaction for this state (expired or replayed)")
        try:
            response: Response = await _finish_login(request, txn)
        except OIDCGuardError as err:
            level = logging.ERROR if isinstance(err, SessionTooLarge) else logging.INFO
            logger.log(level, "login callback failed: %s: %s", err.code, err)
            response = error_response(err)
        # The transaction is single-use: its cookie goes, whatever the outcome.
        response.raw_headers.append(
            (b"set-cookie", transactions.delete(transactions.name_for(state)))
        )
        return response

    async def _finish_login(request: Request, txn: Transaction) -> Response:
        params = request.query_params
        metadata = await guard.discovery.get()
        if "error" in params:
            raise AccessDenied("the provider answered the authorization request with an error")
        flows.check_callback_issuer(metadata, params.get("iss"))
        code = params.get("code")
        if not code or len(code) > 4096:
            raise InvalidRequest("callback without code")
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": txn.code_verifier,
            **flows.audience_params(txn.audience, cfg.audience_param),
        }
        try:
            document = await flows.token_request(
                guard.http_client(), metadata, guard.credentials, data
            )
        except TokenRequestFailed as err:
            if err.error in ("invalid_grant", "invalid_request"):  # a replayed or stale code
                raise InvalidRequest(f"code exchange refused: {err.error}") from err
            raise provider_refusal(err, what="code exchange") from err
        id_token = document.get("id_token")
        if not isinstance(id_token, str):
            raise InvalidRequest("token response without id_token (is 'openid' in the scope?)")
        now = cfg.clock()
        tokens = flows.token_set(document, now=now, audience=txn.audience, scope=None)
        try:
            claims = await guard.verifier.verify_id_token(
                id_token, nonce=txn.nonce, access_token=tokens.access_token
            )
        except InvalidToken as err:
            raise InvalidRequest(f"ID token rejected: {err}") from err
        auth_time = step_up.check_login(claims, max_age=txn.max_age, now=now, leeway=cfg.leeway)
        step_up.check_login_acr(claims, acr_values=txn.acr_values)
        if tokens.scope is None:  # never the scope the browser asked for
            tokens = tokens.model_copy(update={"scope": await _granted_scope(tokens)})
        refresh_token = document.get("refresh_token")
        session = SessionData(
            id=random_token(),
            sub=claims["sub"],
            sid=claims.get("sid") if isinstance(claims.get("sid"), str) else None,
            user=session_claims(claims),
            id_token=id_token,
            refresh_token=refresh_token if isinstance(refresh_token, str) else None,
            tokens={guard.tokens.key(txn.audience, None): tokens},  # the default token
            created_at=min(txn.created_at, now),  # when the login began: see sessions.revoke
            last_active=now,
            auth_time=auth_time,
            acr=claims.get("acr") if isinstance(claims.get("acr"), str) else None,
        )
        guard.tokens.diagnose(tokens.access_token, expected_audience=txn.audience)
        await sessions.get(request.scope)  # a previous session ends: it is replaced
        sessions.start(request.scope, session)
        return RedirectResponse(txn.return_to, status_code=302)

    async def _granted_scope(tokens: TokenSet) -> str:
        """What was granted when the token response says nothing: the verified access token's
        ``scope``/``scp``, else the configured scope (RFC 6749 5.1: unchanged from the request,
        and the request is the app's, not the browser's)."""
        if tokens.audience == cfg.audience and tokens.access_token.count(".") == 2:
            try:
                claims = await guard.verifier.verify_access_token(tokens.access_token)
            except InvalidToken:
                return cfg.scope
            granted = step_up.claimed_scopes(claims)
            if granted:
                return granted
        return cfg.scope

    @router.get("/logout")
    async def logout_page(request: Request) -> Response:
        """Logout by a link: only when the user started it on this origin; otherwise (a
        cross-site link, image or redirect) a confirmation page whose button POSTs."""
        return_to = safe_return_to(request.query_params.get("returnTo"), default="/")
        if same_origin_navigation(request.headers, own_origin=own_origin):
            return await _logout(request, return_to)
        return HTMLResponse(
            logout_confirmation(f"{cfg.routes_prefix}/logout", return_to),
            headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                     "Content-Security-Policy": "default-src 'none'; form-action 'self'; "
                                                "frame-ancestors 'none'"},
        )  # fmt: skip

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        """Logout (a form button): ends the session, revokes the refresh token and ends the
        provider's session. Refused (403) from another origin, like every cookie write."""
        form = await _small_form(request) or {}
        return_to = safe_return_to(
            form.get("returnTo") or request.query_params.get("returnTo"), default="/"
        )
        if not write_allowed(request.headers, allowed_origins=write_origins):
            raise CrossOriginRequest("logout POST from another origin")
        return await _logout(request, return_to)

    async def _logout(request: Request, return_to: str) -> Response:
        session = await sessions.get(request.scope)
        sessions.end(request.scope)
        if session is None:
            return RedirectResponse(return_to, status_code=302)
        try:
            metadata = await guard.discovery.get()
        except TemporarilyUnavailable:
            logger.warning("logout: provider unreachable; the session was ended locally only")
            return RedirectResponse(return_to, status_code=302)
        if session.refresh_token:
            await flows.revoke_token(
                guard.http_client(), metadata, guard.credentials, session.refresh_token,
                on_error=lambda message: logger.warning("logout: %s", message),
            )  # fmt: skip
        url = flows.logout_url(
            metadata,
            client_id=client_id,
            id_token_hint=session.id_token,
            post_logout_redirect_uri=base_url + return_to,
        )
        return RedirectResponse(url or return_to, status_code=302)

    @router.get("/access-token")
    async def access_token(request: Request) -> Response:
        token = await guard.access_token_for(request, audience=cfg.audience, scope=None)
        body = {"access_token": token.token, "token_type": token.token_type,
                "expires_at": token.expires_at, "scope": token.scope}  # fmt: skip
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    @router.post("/backchannel-logout")
    async def backchannel_logout(request: Request) -> Response:
        no_store = {"Cache-Control": "no-store"}
        form = await _small_form(request)
        token = form.get("logout_token") if form is not None else None
        try:
            if not isinstance(token, str):
                raise InvalidRequest("logout_token missing")
            claims = await guard.verifier.verify_logout_token(token)
        except (InvalidToken, InvalidRequest) as err:
            logger.info("back-channel logout refused: %s", err)
            return JSONResponse({"error": "invalid_request"}, status_code=400, headers=no_store)
        # Revoke first (idempotent: the time is the token's iat), then spend its jti: a store
        # failure in between (503) leaves the provider's retry able to end the session.
        sid, sub = claims.get("sid"), claims.get("sub")
        deleted = await sessions.revoke(sid=sid, sub=sub, at=float(claims["iat"]))
        if not await guard.first_logout_use(claims):
            logger.info("back-channel logout replayed (jti seen before); nothing more done")
            return JSONResponse({"error": "invalid_request"}, status_code=400, headers=no_store)
        logger.info("back-channel logout: %d stored sessions deleted", deleted)
        return Response(status_code=200, headers=no_store)

    @router.get("/profile")
    async def profile(request: Request) -> Response:
        user = await guard.session_user(request)
        if user is None:
            raise NotAuthenticated("no session")
        return JSONResponse(guard.public_profile(user), headers={"Cache-Control": "no-store"})

    return router
