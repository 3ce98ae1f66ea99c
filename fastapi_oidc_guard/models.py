"""Data crossing the library's boundaries, as Pydantic v2 models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from .principal import Principal, principal_kind

__all__ = ["AccessToken", "OfflineGrant", "ProviderMetadata", "SessionData", "TokenSet", "User"]


class User(BaseModel):
    """The signed-in user: the standard OpenID Connect claims, extra claims kept.

    Subclass it to declare your own fields (aliases reach namespaced claims)::

        class MyUser(User):
            roles: list[str] = Field(default=[], alias="https://example.com/roles")

    ``scopes`` and ``permissions`` read the ``scope`` (space-delimited string), ``scp`` (array or
    string) and ``permissions`` claims of a bearer token.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=False)

    sub: str = Field(min_length=1)
    name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    nickname: str | None = None
    preferred_username: str | None = None
    email: str | None = None
    email_verified: bool | None = None
    picture: str | None = None
    locale: str | None = None
    updated_at: int | str | None = None
    scope: str | None = None
    scp: list[str] | str | None = None
    permissions: list[str] | None = None

    @field_validator("scope", mode="before")
    @classmethod
    def _scope_array(cls, value: Any) -> Any:
        """Some providers send ``scope`` as a JSON array of strings (like ``scp``)."""
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return " ".join(value)
        return value

    @property
    def scopes(self) -> frozenset[str]:
        """Scopes granted to the token (``scope`` and ``scp`` claims)."""
        found: set[str] = set()
        if self.scope:
            found.update(self.scope.split())
        if isinstance(self.scp, str):
            found.update(self.scp.split())
        elif self.scp:
            found.update(self.scp)
        return frozenset(found)

    _principal: Principal | None = PrivateAttr(default=None)

    @property
    def principal(self) -> Principal:
        """``"service"`` for a token of the client credentials grant (no end user), else
        ``"user"`` (always for a browser session): see ``fastapi_oidc_guard.principal``."""
        return self._principal or principal_kind(self.claims)

    _via: str | None = PrivateAttr(default=None)

    @property
    def authenticated_by(self) -> str | None:
        """Which credential authenticated this request's user: ``"session"`` (the browser
        session cookie), ``"bearer"`` (an OIDC access token), ``"dpop"`` (one bound to a DPoP
        proof), or the name of an extra verifier (``"api_key"``); ``None`` for a user the app
        built itself (a test override)."""
        return self._via

    def as_session_user(self) -> User:
        """This user, marked as signed in with a browser session (always a ``"user"``)."""
        self._principal = "user"
        self._via = "session"
        return self

    def authenticated_with(self, via: str, principal: Principal | None = None) -> User:
        """This user, marked as authenticated by ``via`` (and, when given, as ``principal``)."""
        self._via = via
        if principal is not None:
            self._principal = principal
        return self

    @property
    def claims(self) -> dict[str, Any]:
        """Every claim, by its claim name (aliases applied), without unset standard fields."""
        return self.model_dump(by_alias=True, exclude_none=True)


class ProviderMetadata(BaseModel):
    """The parts of the discovery document the library uses; other fields are kept."""

    model_config = ConfigDict(extra="allow", frozen=True)

    issuer: str
    jwks_uri: str
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    userinfo_endpoint: str | None = None
    end_session_endpoint: str | None = None
    revocation_endpoint: str | None = None
    introspection_endpoint: str | None = None
    id_token_signing_alg_values_supported: list[str] | None = None
    code_challenge_methods_supported: list[str] | None = None
    authorization_response_iss_parameter_supported: bool = False
    backchannel_logout_supported: bool = False
    token_endpoint_auth_methods_supported: list[str] | None = None
    pushed_authorization_request_endpoint: str | None = None
    require_pushed_authorization_requests: bool = False


class TokenSet(BaseModel):
    """Tokens from the provider's token endpoint, for one (audience, scope)."""

    model_config = ConfigDict(extra="ignore")

    access_token: str
    token_type: str = "Bearer"
    expires_at: float | None = None
    scope: str | None = None
    audience: str | None = None


class AccessToken(BaseModel):
    """What ``access_token(...)`` gives a route: a token to send to another API."""

    model_config = ConfigDict(frozen=True)

    token: str
    token_type: str = "Bearer"
    expires_at: float | None = None
    scope: str | None = None
    audience: str | None = None

    @property
    def is_jwt(self) -> bool:
        """False for an opaque token (often: no audience was asked, see the docs)."""
        return self.token.count(".") == 2

    @property
    def authorization(self) -> str:
        """The ``Authorization`` header value, e.g. ``Bearer eyJ...`` (RFC 6750 spells the
        scheme ``Bearer``, whatever casing the provider used in ``token_type``)."""
        scheme = "Bearer" if self.token_type.lower() == "bearer" else self.token_type
        return f"{scheme} {self.token}"


class OfflineGrant(BaseModel):
    """A user's refresh token, kept by the app for background work
    (``guard.access_token_from_refresh_token(grant.refresh_token, sub=grant.sub)``). Its
    ``repr`` never shows the token."""

    model_config = ConfigDict(frozen=True)

    sub: str
    refresh_token: str = Field(repr=False)


class SessionData(BaseModel):
    """What a browser session holds. ``id`` changes at every login (no fixation).

    ``user`` holds the ID token's claims (protocol claims removed); ``tokens`` the access tokens
    per ``"<audience>|<scope>"``; ``created_at``/``last_active`` drive the absolute and
    inactivity limits of rolling sessions.
    """

    model_config = ConfigDict(extra="ignore")

    id: str
    sub: str
    sid: str | None = None
    user: dict[str, Any]
    id_token: str | None = None
    refresh_token: str | None = None
    tokens: dict[str, TokenSet] = Field(default_factory=dict)
    created_at: float
    last_active: float
    auth_time: float | None = None  # when the user authenticated (ID token), for step-up
    acr: str | None = None  # how (ID token's acr)

    def expires_at(self, *, inactivity: float, absolute: float) -> float:
        """When the session ends if nothing touches it."""
        return min(self.last_active + inactivity, self.created_at + absolute)
