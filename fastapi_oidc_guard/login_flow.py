"""The browser login and logout, as steps the ``/auth`` routes call.

- :meth:`LoginFlow.begin`: a login transaction (state, nonce, PKCE verifier, where to come back,
  what was asked) in its own sealed cookie, and the redirect to the provider;
- :meth:`LoginFlow.finish`: the callback: transaction checked and spent, code exchanged, ID token
  verified (nonce, ``at_hash``, step-up), the session started (``sessions.start``, the only place
  a session is created);
- :meth:`LoginFlow.logout`: the session ended here, its refresh token revoked, and the redirect to
  the provider's end-session endpoint.

The grant verbs are ``flows``; the routes decide nothing but HTTP shapes (``routes.py``).
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from . import flows, step_up
from .config import GuardConfig
from .errors import (
    AccessDenied,
    InvalidRequest,
    InvalidToken,
    OIDCGuardError,
    SessionTooLarge,
    StaleCallback,
    TemporarilyUnavailable,
    TokenRequestFailed,
)
from .http_errors import error_response
from .login_params import MAX_PARAM, login_ask
from .models import SessionData, TokenSet
from .paths import mount_path
from .pkce import code_challenge, random_token
from .provider import Provider
from .sessions.manager import SessionManager
from .token_sets import Handout, provider_refusal
from .tokens import TokenService
from .transactions import Transaction, TransactionStore
from .verify import TokenVerifier

__all__ = ["LoginFlow", "OnError", "session_claims"]

logger = logging.getLogger("fastapi_oidc_guard.routes")

_MAX_STORED_RETURN_TO = 300
OnError = Callable[[OIDCGuardError, str], Awaitable[Response]]
# Protocol claims of the ID token that are not about the user: not kept in the session.
_PROTOCOL_CLAIMS = frozenset(
    {"iss", "aud", "exp", "iat", "nbf", "nonce", "at_hash", "c_hash", "azp", "jti", "sid"}
)


def session_claims(claims: dict[str, Any]) -> dict[str, Any]:
    """The user's claims from a verified ID token, protocol claims removed."""
    return {k: v for k, v in claims.items() if k not in _PROTOCOL_CLAIMS}


class LoginFlow:
    """Login, callback and logout for one client at one provider."""

    def __init__(
        self,
        *,
        config: GuardConfig,
        provider: Provider,
        verifier: TokenVerifier,
        sessions: SessionManager,
        transactions: TransactionStore,
        tokens: TokenService,
        handout: Handout,
    ) -> None:
        assert config.client_id is not None and config.base_url is not None
        self._cfg = config
        self._client_id = config.client_id
        self._provider = provider
        self._verifier = verifier
        self._sessions = sessions
        self._transactions = transactions
        self._tokens = tokens
        self._handout = handout
        self.origin = config.origin or ""
        self._host_cookies = transactions.host_only
        self._warned_no_audience = False

    def mount(self, request: Request) -> str:
        """The prefix the app is served under (see ``fastapi_oidc_guard.paths``)."""
        return mount_path(self._cfg.app_path, request.scope)

    def redirect_uri(self, request: Request) -> str:
        """The callback URL (register it at the provider): the base URL, the prefix, /callback."""
        return f"{self.origin}{self.mount(request)}{self._cfg.routes_prefix}/callback"

    def _txn_path(self, request: Request) -> str | None:
        # A __Host- cookie must have Path=/; otherwise only the /auth routes receive it.
        return None if self._host_cookies else self.mount(request) + self._cfg.routes_prefix

    async def begin(self, request: Request, return_to: str) -> Response:
        cfg = self._cfg
        if len(json.dumps(return_to)) > _MAX_STORED_RETURN_TO:  # escaped: non-ASCII counts 6x
            return_to = cfg.default_return_to
        ask = login_ask(request.query_params, cfg)
        extra = dict(ask.extra)
        if ask.max_age is not None:
            extra["max_age"] = str(ask.max_age)
        if ask.acr_values is not None:
            extra["acr_values"] = ask.acr_values
        if ask.audience is None and not self._warned_no_audience:
            self._warned_no_audience = True
            logger.warning(
                "login without an audience: the provider may issue opaque access tokens that your "
                "API cannot validate. Set OIDC_AUDIENCE to your API's identifier."
            )
        txn = Transaction(
            state=random_token(), nonce=random_token(), code_verifier=random_token(48),
            return_to=return_to, audience=ask.audience, scope=ask.scope, created_at=cfg.clock(),
            max_age=ask.max_age, acr_values=ask.acr_values,
        )  # fmt: skip
        params = flows.authorization_params(
            client_id=self._client_id, redirect_uri=self.redirect_uri(request), scope=ask.scope,
            state=txn.state, nonce=txn.nonce, code_challenge=code_challenge(txn.code_verifier),
            audience=ask.audience, audience_param=cfg.audience_param, extra=extra,
        )  # fmt: skip
        url = await self._provider.authorization_url(params, push=cfg.use_par)
        response = RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})
        for header in self._transactions.start(request.cookies, txn, path=self._txn_path(request)):
            response.raw_headers.append((b"set-cookie", header))
        return response

    async def finish(self, request: Request, *, on_error: OnError | None = None) -> Response:
        """The callback: every outcome spends the transaction's cookie. A failure after the
        transaction was found is answered by ``on_error(err, return_to)`` (the login's
        ``returnTo``; default: the JSON error)."""
        for name in ("state", "code", "iss", "error"):
            if len(request.query_params.getlist(name)) > 1:
                raise InvalidRequest(f"callback with {name!r} repeated")
        state = request.query_params.get("state")
        if not state or len(state) > MAX_PARAM:
            raise InvalidRequest("callback without state")
        transactions = self._transactions
        txn = transactions.open(request.cookies, state)
        if txn is None or not hmac.compare_digest(txn.state.encode(), state.encode()):
            raise StaleCallback("no login transaction for this state (expired or replayed)")
        try:
            response: Response = await self._exchange(request, txn)
        except OIDCGuardError as err:
            level = logging.ERROR if isinstance(err, SessionTooLarge) else logging.INFO
            logger.log(level, "login callback failed: %s: %s", err.code, err)
            response = (
                error_response(err) if on_error is None else await on_error(err, txn.return_to)
            )
        # The transaction is single-use: its cookie goes, whatever the outcome.
        response.raw_headers.append(
            (
                b"set-cookie",
                transactions.delete(transactions.name_for(state), path=self._txn_path(request)),
            )
        )
        return response

    async def _exchange(self, request: Request, txn: Transaction) -> Response:
        cfg, params = self._cfg, request.query_params
        metadata = await self._provider.metadata()
        if "error" in params:
            raise AccessDenied("the provider answered the authorization request with an error")
        flows.check_callback_issuer(metadata, params.get("iss"))
        code = params.get("code")
        if not code or len(code) > 4096:
            raise InvalidRequest("callback without code")
        data = flows.code_grant(
            code, redirect_uri=self.redirect_uri(request), code_verifier=txn.code_verifier,
            audience=txn.audience, style=cfg.audience_param,
        )  # fmt: skip
        try:
            document = await self._provider.token(data)
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
            claims = await self._verifier.verify_id_token(
                id_token, nonce=txn.nonce, access_token=tokens.access_token
            )
        except InvalidToken as err:
            raise InvalidRequest(f"ID token rejected: {err}") from err
        auth_time = step_up.check_login(claims, max_age=txn.max_age, now=now, leeway=cfg.leeway)
        step_up.check_login_acr(claims, acr_values=txn.acr_values)
        if tokens.scope is None:  # never the scope the browser asked for
            tokens = tokens.model_copy(update={"scope": await self._granted_scope(tokens)})
        refresh_token = document.get("refresh_token")
        session = SessionData(
            id=random_token(),
            sub=claims["sub"],
            sid=claims.get("sid") if isinstance(claims.get("sid"), str) else None,
            user=session_claims(claims),
            id_token=id_token,
            refresh_token=refresh_token if isinstance(refresh_token, str) else None,
            tokens={self._tokens.key(txn.audience, None): tokens},  # the default token
            created_at=min(txn.created_at, now),  # when the login began: see sessions.revoke
            last_active=now,
            auth_time=auth_time,
            acr=claims.get("acr") if isinstance(claims.get("acr"), str) else None,
        )
        self._handout.diagnose(tokens.access_token, expected_audience=txn.audience)
        await self._sessions.get(request.scope)  # a previous session ends: it is replaced
        self._sessions.start(request.scope, session)
        return RedirectResponse(txn.return_to, status_code=302)

    async def _granted_scope(self, tokens: TokenSet) -> str:
        """What was granted when the token response says nothing: the verified access token's
        ``scope``/``scp``, else the configured scope (RFC 6749 5.1: unchanged from the request,
        and the request is the app's, not the browser's)."""
        cfg = self._cfg
        if tokens.audience == cfg.audience and tokens.access_token.count(".") == 2:
            try:
                claims = await self._verifier.verify_access_token(tokens.access_token)
            except InvalidToken:
                return cfg.scope
            granted = step_up.claimed_scopes(claims)
            if granted:
                return granted
        return cfg.scope

    async def logout(self, request: Request, return_to: str) -> Response:
        """End the session here, revoke its refresh token, then the provider's session."""
        sessions = self._sessions
        session = await sessions.get(request.scope)
        sessions.end(request.scope)
        if session is None:
            return RedirectResponse(return_to, status_code=302)
        try:
            metadata = await self._provider.metadata()
        except TemporarilyUnavailable:
            logger.warning("logout: provider unreachable; the session was ended locally only")
            return RedirectResponse(return_to, status_code=302)
        if session.refresh_token:
            await flows.revoke_token(
                self._provider.client(), metadata, self._provider.credentials,
                session.refresh_token,
                on_error=lambda message: logger.warning("logout: %s", message),
            )  # fmt: skip
        url = flows.logout_url(
            metadata,
            client_id=self._client_id,
            id_token_hint=session.id_token,
            post_logout_redirect_uri=self.origin + return_to,
        )
        return RedirectResponse(url or return_to, status_code=302)
