"""The fake issuer's authorization server: authorize, token, userinfo, end-session, revocation.

It follows the rules a real provider enforces, so the library's own flow is exercised for real:
registered client and secret, registered redirect and post-logout redirect URIs (exact match),
PKCE S256 required, single-use codes bound to the redirect URI, refresh-token rotation with reuse
detection (reuse revokes the whole grant), JWT access tokens only when an audience/resource is
asked (opaque otherwise: the classic trap, reproduced). A request it cannot answer by redirecting
raises ``InvalidRequest``, which the HTTP side (``_pages``) turns into a 400 answer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from ._errors import InvalidRequest


class _Signer(Protocol):
    """What the OAuth side needs of the issuer (no import of ``issuer``: no cycle)."""

    issuer: str
    client_id: str
    client_secret: str
    clock: Callable[[], float]
    redirect_uris: tuple[str, ...] | None
    post_logout_redirect_uris: tuple[str, ...] | None
    public_clients: dict[str, tuple[str, ...]]

    def sign(
        self,
        payload: dict[str, Any] | bytes,
        *,
        header: dict[str, Any] | None = None,
    ) -> str: ...

    def mint(self, *, header: dict[str, Any] | None = None, **claims: Any) -> str: ...


__all__ = ["AuthorizationServer", "Grant", "registration"]

_PROFILE = ("name", "given_name", "family_name", "nickname", "preferred_username", "picture",
            "locale", "updated_at")  # fmt: skip
_EMAIL = ("email", "email_verified")


def registration(uris: Sequence[str] | None) -> tuple[str, ...] | None:
    """Registered URIs, checked: absolute http(s), no fragment (RFC 6749 section 3.1.2)."""
    if uris is None:
        return None
    if isinstance(uris, str):
        raise TypeError("register a sequence of URIs, not one string")
    for uri in uris:
        parts = urlsplit(uri)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
            raise ValueError(f"not a registrable redirect URI: {uri!r}")
    return tuple(uris)


def _registered(uri: str, registered: tuple[str, ...] | None) -> bool:
    """Exact string match against the registration; ``None`` (nothing registered) accepts any."""
    return registered is None or uri in registered


@dataclass
class Grant:
    """One login (or client-credentials grant): who, for what, and its refresh-token family."""

    user: dict[str, Any]
    scope: str
    audience: str | None
    sid: str
    nonce: str | None = None
    code_challenge: str | None = None
    redirect_uri: str | None = None
    auth_time: int = 0
    revoked: bool = False
    refresh_tokens: list[str] = field(default_factory=list)
    client_id: str | None = None  # who the code was issued to (None: the confidential client)


def _half_hash(value: str) -> str:
    digest = hashlib.sha256(value.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


class AuthorizationServer:
    """State and endpoints of the fake issuer's OAuth side (see the module docstring)."""

    def __init__(self, issuer: _Signer) -> None:
        self.issuer = issuer
        self.next_user: dict[str, Any] = {
            "sub": "user-1",
            "name": "Test User",
            "email": "user-1@example.test",
            "email_verified": True,
        }
        self.access_token_ttl = 3600
        self.id_token_ttl = 3600
        self.issue_refresh_tokens = True
        self.codes: dict[str, Grant] = {}
        self.used_codes: set[str] = set()
        self.refresh: dict[str, Grant] = {}
        self.used_refresh: dict[str, Grant] = {}
        self.opaque: dict[str, Grant] = {}
        #: What the introspection endpoint answers for a token (RFC 7662): the claims of the
        #: tokens ``mint_opaque`` made; an entry may be any JSON to script crafted answers.
        self.introspected: dict[str, Any] = {}
        self.revoked_tokens: set[str] = set()
        self.ended_sessions: list[str] = []
        self.grants: Counter[str] = Counter()
        self.fail_next_token: tuple[int, dict[str, Any]] | None = None
        #: False: refresh tokens are not rotated (Glewlwyd's and LemonLDAP::NG's default): the
        #: refresh response has no new refresh token and the old one stays valid.
        self.rotate_refresh_tokens = True
        #: Rewrites successful token responses: ``shape(grant_type, body) -> body``, to script
        #: what real providers send (no ``scope``, huge ``expires_in``, lower-case bearer...).
        self.shape: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None
        #: Scopes this provider grants (None: whatever is asked); ID-token claim overrides
        #: (``None`` removes one, e.g. ``{"auth_time": None}``), applied to every ID token.
        self.grantable_scopes: set[str] | None = None
        self.id_token_claims: dict[str, Any] = {}

    # -- authorize ----------------------------------------------------------------------------

    def check_client(self, params: dict[str, str]) -> str:
        """The request's redirect URI, once the client and that URI are known to be registered.

        Raises :class:`InvalidRequest`: such a request must never be redirected (RFC 6749
        section 4.1.2.1), since the redirect target is exactly what cannot be trusted.
        """
        redirect_uri = params.get("redirect_uri", "")
        client_id = params.get("client_id", "")
        public = self.issuer.public_clients.get(client_id)
        if client_id != self.issuer.client_id and public is None:
            raise InvalidRequest("unknown client_id")
        if not redirect_uri:
            raise InvalidRequest("missing redirect_uri")
        registered = public if public is not None else self.issuer.redirect_uris
        if not _registered(redirect_uri, registered):
            raise InvalidRequest("redirect_uri is not registered for this client")
        return redirect_uri

    def authorize(self, url: str, *, user: dict[str, Any] | None = None) -> str:
        """Answer an authorization request URL; return where the browser is redirected."""
        return self.authorize_params(dict(parse_qsl(urlsplit(url).query)), user=user)

    def authorize_params(
        self, params: dict[str, str], *, user: dict[str, Any] | None = None
    ) -> str:
        """Answer an authorization request's parameters; return the redirect target.

        ``user`` (claims, ``sub`` required) signs in; default ``next_user``. Raises
        :class:`InvalidRequest` for an unknown client or an unregistered redirect URI.
        """
        redirect_uri = self.check_client(params)
        state = params.get("state")

        def back(**values: str) -> str:
            extra = {"state": state} if state is not None else {}
            query = urlencode({**values, **extra, "iss": self.issuer.issuer})
            return f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{query}"

        scope = params.get("scope", "")
        if params.get("response_type") != "code" or "openid" not in scope.split():
            return back(error="invalid_request")
        if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
            return back(error="invalid_request", error_description="PKCE S256 is required")
        code = secrets.token_urlsafe(24)
        if self.grantable_scopes is not None:
            scope = " ".join(s for s in scope.split() if s in self.grantable_scopes)
        self.codes[code] = Grant(
            user=dict(user or self.next_user), scope=scope,
            audience=params.get("resource") or params.get("audience"),
            sid=secrets.token_hex(8), nonce=params.get("nonce"),
            code_challenge=params["code_challenge"], redirect_uri=redirect_uri,
            auth_time=int(self.issuer.clock()),
            client_id=params["client_id"] if params["client_id"] != self.issuer.client_id else None,
        )  # fmt: skip
        return back(code=code)

    # -- token --------------------------------------------------------------------------------

    def _public_client(self, form: dict[str, str], authorization: str | None) -> str | None:
        """The public client (no secret, PKCE) calling the token endpoint, if it is one."""
        client_id = form.get("client_id", "")
        public = client_id in self.issuer.public_clients
        return client_id if public and not authorization and "client_secret" not in form else None

    def _client_ok(self, form: dict[str, str], authorization: str | None) -> bool:
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:], validate=True).decode()
            except ValueError:  # binascii.Error, UnicodeDecodeError, non-ASCII input
                return False
            client_id, _, secret = (unquote(p) for p in decoded.partition(":"))
        return client_id == self.issuer.client_id and hmac.compare_digest(
            (secret or "").encode(), self.issuer.client_secret.encode()
        )

    def token(self, form: dict[str, str], authorization: str | None) -> tuple[int, dict[str, Any]]:
        """The token endpoint: ``(status, JSON body)``."""
        grant_type = form.get("grant_type", "")
        self.grants[grant_type] += 1
        if self.fail_next_token is not None:
            failure, self.fail_next_token = self.fail_next_token, None
            return failure
        public = self._public_client(form, authorization)
        if public is not None:  # a public client may only redeem its own codes and tokens
            if grant_type == "authorization_code":
                owned = self.codes.get(form.get("code", ""))
            elif grant_type == "refresh_token":
                owned = self.refresh.get(form.get("refresh_token", ""))
            else:
                return 400, {"error": "unauthorized_client"}
            if owned is None or owned.client_id != public:
                return 400, {"error": "invalid_grant"}
        elif not self._client_ok(form, authorization):
            return 401, {"error": "invalid_client"}
        elif grant_type == "refresh_token":
            owned = self.refresh.get(form.get("refresh_token", ""))
            if owned is not None and owned.client_id is not None:
                return 400, {"error": "invalid_grant"}  # a public client's refresh token
        if grant_type == "authorization_code":
            owner = self.codes.get(form.get("code", ""))
            if public is None and owner is not None and owner.client_id is not None:
                return 400, {"error": "invalid_grant"}  # a public client's code, by another
            status, body = self._code_grant(form)
        elif grant_type == "refresh_token":
            status, body = self._refresh_grant(form)
        elif grant_type == "client_credentials":
            client = {"sub": self.issuer.client_id}
            grant = Grant(user=client, scope=form.get("scope", ""), sid="",
                          audience=form.get("resource") or form.get("audience"))  # fmt: skip
            status, body = 200, self._tokens(grant, id_token=False)
        else:
            return 400, {"error": "unsupported_grant_type"}
        if status == 200 and self.shape is not None:
            body = self.shape(grant_type, body)
        return status, body

    def _code_grant(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        code = form.get("code", "")
        grant = self.codes.pop(code, None)
        if grant is None:
            if code in self.used_codes:  # code replay: revoke what it produced
                for g in list(self.refresh.values()):
                    g.revoked = True
            return 400, {"error": "invalid_grant"}
        self.used_codes.add(code)
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        if form.get("redirect_uri") != grant.redirect_uri or not hmac.compare_digest(
            challenge.rstrip(b"=").decode(), grant.code_challenge or ""
        ):
            return 400, {"error": "invalid_grant"}
        return 200, self._tokens(grant, id_token=True)

    def _refresh_grant(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        token = form.get("refresh_token", "")
        grant = self.refresh.get(token) if not self.rotate_refresh_tokens else None
        grant = grant or self.refresh.pop(token, None)
        if grant is None:
            reused = self.used_refresh.get(token)
            if reused is not None:  # reuse detection: the whole grant dies
                reused.revoked = True
            return 400, {"error": "invalid_grant"}
        if grant.revoked:
            return 400, {"error": "invalid_grant"}
        if self.rotate_refresh_tokens:
            self.used_refresh[token] = grant
        audience = form.get("resource") or form.get("audience") or grant.audience
        scope = form.get("scope") or grant.scope
        refreshed = Grant(
            user=grant.user, scope=scope, audience=audience, sid=grant.sid,
            auth_time=grant.auth_time, refresh_tokens=grant.refresh_tokens,
            client_id=grant.client_id,
        )  # fmt: skip
        body = self._tokens(refreshed, id_token=True, family=grant,
                            new_refresh=self.rotate_refresh_tokens)  # fmt: skip
        return 200, body

    def _tokens(
        self, grant: Grant, *, id_token: bool, family: Grant | None = None, new_refresh: bool = True
    ) -> dict[str, Any]:
        issuer, now = self.issuer, int(self.issuer.clock())
        user = grant.user
        if grant.audience:
            access = issuer.mint(sub=user["sub"], aud=grant.audience, scope=grant.scope or None,
                                 client_id=grant.client_id or issuer.client_id,
                                 exp=now + self.access_token_ttl, iat=now)  # fmt: skip
        else:
            access = secrets.token_urlsafe(32)  # opaque: no audience was asked
        self.opaque[access] = family or grant
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.access_token_ttl,
            "scope": grant.scope,
        }
        if id_token:
            body["id_token"] = self._id_token(grant, access, now)
        if new_refresh and self.issue_refresh_tokens and "offline_access" in grant.scope.split():
            refresh = secrets.token_urlsafe(32)
            target = family or grant
            self.refresh[refresh] = target
            target.refresh_tokens.append(refresh)
            body["refresh_token"] = refresh
        return body

    def _id_token(self, grant: Grant, access_token: str, now: int) -> str:
        scopes = grant.scope.split()
        claims: dict[str, Any] = {"sub": grant.user["sub"]}
        for names, needed in ((_PROFILE, "profile"), (_EMAIL, "email")):
            if needed in scopes:
                claims.update({k: grant.user[k] for k in names if k in grant.user})
        claims.update({k: v for k, v in grant.user.items() if k not in _PROFILE + _EMAIL})
        claims.update(
            iss=self.issuer.issuer, aud=grant.client_id or self.issuer.client_id, iat=now,
            exp=now + self.id_token_ttl, sid=grant.sid, auth_time=grant.auth_time,
            at_hash=_half_hash(access_token),
        )  # fmt: skip
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        claims.update(self.id_token_claims)
        claims = {k: v for k, v in claims.items() if v is not None}
        return self.issuer.sign(claims, header={"typ": "JWT"})

    # -- userinfo, end session, revocation ----------------------------------------------------

    def userinfo(self, authorization: str | None) -> tuple[int, dict[str, Any]]:
        token = (authorization or "")[7:] if (authorization or "").startswith("Bearer ") else ""
        grant = self.opaque.get(token)
        if grant is None or grant.revoked:
            return 401, {"error": "invalid_token"}
        return 200, dict(grant.user)

    def end_session(self, params: dict[str, str]) -> tuple[int, str]:
        """``(302, target)``, ``(200, "signed out")``, or ``(400, reason)`` without ending anything.

        A ``post_logout_redirect_uri`` is followed only when registered for this client (exact
        match, as OpenID Connect RP-Initiated Logout requires); ``state`` is passed back.
        """
        target = params.get("post_logout_redirect_uri")
        if target:
            if params.get("client_id", self.issuer.client_id) != self.issuer.client_id:
                return 400, "unknown client_id"
            if not _registered(target, self.issuer.post_logout_redirect_uris):
                return 400, "post_logout_redirect_uri is not registered for this client"
        self.ended_sessions.append(params.get("id_token_hint", ""))
        if not target:
            return 200, "signed out"
        if params.get("state") is not None:
            glue = "&" if "?" in target else "?"
            target = f"{target}{glue}{urlencode({'state': params['state']})}"
        return 302, target

    def revoke(self, form: dict[str, str], authorization: str | None) -> int:
        if not self._client_ok(form, authorization):
            return 401
        token = form.get("token", "")
        grant = self.refresh.get(token) or self.opaque.get(token)
        if grant is not None:
            grant.revoked = True
        self.revoked_tokens.add(token)
        return 200

    def introspect(self, form: dict[str, str], authorization: str | None) -> tuple[int, Any]:
        """RFC 7662: the app's client authenticates; an unknown, revoked or expired token is
        ``{"active": false}``; a scripted answer is sent as it is."""
        if not self._client_ok(form, authorization):
            return 401, {"error": "invalid_client"}
        token = form.get("token", "")
        answer = self.introspected.get(token)
        if answer is None or token in self.revoked_tokens:
            return 200, {"active": False}
        grant = self.opaque.get(token)
        if isinstance(answer, dict) and answer.get("active") is True:
            exp = answer.get("exp")
            expired = isinstance(exp, int | float) and exp <= self.issuer.clock()
            if expired or (grant is not None and grant.revoked):
                return 200, {"active": False}
        return 200, answer
