"""Checks beyond authentication: scopes, permissions, roles, custom rules, and ``auth_state``.

Every check runs on a user built from *verified* claims (``require_user`` first), so a forged
token with the right scopes is a 401, never a 403. Missing rights answer 403
``insufficient_scope`` with ``WWW-Authenticate: Bearer error="insufficient_scope", scope="..."``.

Where the rights come from:

- scopes: the ``scope`` (space-delimited) and ``scp`` (array or string) claims of a bearer token;
  for a session user, the ``scope`` granted with the session's default access token;
- permissions: the claim named by ``permissions_claim`` (default ``permissions``, Auth0's RBAC);
- roles: the claim named by ``roles_claim`` (default ``roles``).

Both are a claim name or a dotted path (``realm_access.roles``, ``resource_access.my-api.roles``;
a namespaced claim such as ``https://example.com/roles`` is read whole), or several separated
by commas; an array, a space-delimited string, or an object's keys (Zitadel) give the names
(``fastapi_oidc_guard.claim_paths``).
"""

from __future__ import annotations

import functools
import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal, TypeVar

from fastapi import Depends
from fastapi.requests import HTTPConnection
from pydantic import BaseModel, ConfigDict

from .claim_paths import names_at
from .config import GuardConfig
from .dependencies import installed, login_location, optional_user, require_user
from .errors import (
    InsufficientScope,
    InsufficientUserAuthentication,
    LoginRedirect,
    NotAuthenticated,
    OIDCGuardError,
    TokenBindingMismatch,
    WrongPrincipal,
)
from .models import User
from .principal import Principal
from .step_up import check_step_up

__all__ = [
    "AuthState",
    "auth_state",
    "require_dpop",
    "require_permissions",
    "require_principal",
    "require_roles",
    "require_rule",
    "require_scopes",
    "require_step_up",
    "roles_of",
]

logger = logging.getLogger("fastapi_oidc_guard.authorization")
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # RFC 6750 scope-token
Kind = Literal["scopes", "permissions", "roles"]
UserDependency = Callable[..., Awaitable[User]]


def roles_of(user: User, claim: str = "roles") -> frozenset[str]:
    """The user's roles from ``claim``: a claim name or dotted path (``realm_access.roles``),
    or several separated by commas; an array, a space-delimited string or an object's keys
    (see ``fastapi_oidc_guard.claim_paths``)."""
    return names_at(user.claims, claim)


def _granted(user: User, kind: Kind, config: GuardConfig) -> frozenset[str]:
    if kind == "scopes":
        return user.scopes
    if kind == "permissions":
        return names_at(user.claims, config.permissions_claim)
    return names_at(user.claims, config.roles_claim)


def _names(values: Iterable[str]) -> tuple[str, ...]:
    names = tuple(values)
    if not names or any(not _SCOPE_TOKEN.fullmatch(n) for n in names):
        raise ValueError("rights must be one or more names made of RFC 6750 scope characters")
    return names


@functools.cache
def _require(kind: Kind, names: tuple[str, ...], any_of: bool) -> UserDependency:
    async def dependency(request: HTTPConnection, user: User = Depends(require_user)) -> User:
        granted = _granted(user, kind, installed(request).config)
        ok = any(n in granted for n in names) if any_of else all(n in granted for n in names)
        if not ok:
            mode = "any of" if any_of else "all of"
            raise InsufficientScope(f"{kind}: needs {mode} {list(names)}", required=names)
        return user

    dependency.__name__ = f"require_{kind}({', '.join(names)}{', any_of' if any_of else ''})"
    dependency.oidc_guard_rights = (kind, names)  # type: ignore[attr-defined]  # read by openapi.py
    return dependency


def require_scopes(*scopes: str, any_of: bool = False) -> UserDependency:
    """A dependency requiring all (or, with ``any_of=True``, any) of ``scopes``.

    Memoised: the same arguments return the same object, so it can be a key of
    ``app.dependency_overrides``. ``Security(require_user, scopes=[...])`` works too.
    """
    return _require("scopes", _names(scopes), any_of)


def require_permissions(*permissions: str, any_of: bool = False) -> UserDependency:
    """Like :func:`require_scopes`, for the ``permissions`` claim (e.g. Auth0 RBAC)."""
    return _require("permissions", _names(permissions), any_of)


def require_roles(*roles: str, any_of: bool = False) -> UserDependency:
    """Like :func:`require_scopes`, for the roles claim (``roles_claim`` setting)."""
    return _require("roles", _names(roles), any_of)


async def require_dpop(user: User = Depends(require_user)) -> User:
    """A dependency accepting only callers whose access token is bound to a DPoP proof of this
    request (``Authorization: DPoP``, RFC 9449): a Bearer token, an extra verifier's credential
    or a browser session is 401 with a ``DPoP`` challenge. For the whole API, set
    ``OIDC_DPOP=required`` instead."""
    if user.authenticated_by != "dpop":
        raise TokenBindingMismatch(
            f"this route requires a DPoP-bound token (authenticated by {user.authenticated_by})"
        )
    return user


def require_principal(kind: Principal) -> UserDependency:
    """A dependency accepting only users (``"user"``: tokens with an end user, and browser
    sessions) or only services (``"service"``: client credentials tokens); 403
    ``wrong_principal`` otherwise. ``User.principal`` says which a token is (see
    ``fastapi_oidc_guard.principal``)."""
    if kind not in ("user", "service"):
        raise ValueError("require_principal takes 'user' or 'service'")
    return _require_principal(kind)


@functools.cache
def _require_principal(kind: Principal) -> UserDependency:
    async def dependency(user: User = Depends(require_user)) -> User:
        if user.principal != kind:
            raise WrongPrincipal(f"route for a {kind}, called by a {user.principal}")
        return user

    dependency.__name__ = f"require_principal({kind!r})"
    return dependency


U = TypeVar("U", bound=User)
Rule = Callable[[U], bool] | Callable[[U], Awaitable[bool]]


def require_rule(rule: Rule[U], *, name: str | None = None) -> UserDependency:
    """A dependency requiring ``rule(user)`` to be true (Clerk's ``has()``), e.g.::

        def is_org_admin(user: User) -> bool:
            return user.claims.get("org_role") == "admin"

        @app.delete("/org")
        async def delete_org(user: User = Depends(require_rule(is_org_admin))): ...

    ``rule`` may be a plain function or an ``async def`` (awaited); it must return a ``bool``:
    anything else (a coroutine that was not awaited, ``None``, a truthy string) refuses the
    request and is logged, it never lets the user in. A ``rule`` that is not callable is a
    ``TypeError`` here, at declaration. Memoised on ``rule`` (pass the same function object to
    override it in tests).
    """
    if not callable(rule):
        raise TypeError(f"require_rule needs a function of the user, got {type(rule).__name__}")
    return _rule_dependency(rule, name)


@functools.cache
def _rule_dependency(rule: Callable[[Any], Any], name: str | None) -> UserDependency:
    label = name or getattr(rule, "__name__", "rule")

    async def dependency(user: User = Depends(require_user)) -> User:
        verdict = rule(user)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        if verdict is not True:
            if not isinstance(verdict, bool):
                logger.error(
                    "require_rule(%s) returned %s, not a bool: the request is refused",
                    label, type(verdict).__name__,
                )  # fmt: skip
            raise InsufficientScope(f"rule {label} refused the user", required=())
        return user

    dependency.__name__ = f"require_rule({label})"
    return dependency


def require_step_up(
    max_age: int | None = None, acr: str | Iterable[str] | None = None
) -> UserDependency:
    """A dependency requiring an authentication at most ``max_age`` seconds old and/or with an
    ``acr`` among ``acr`` (a space-separated string or several values): step-up (RFC 9470).

    The credential's ``auth_time``/``acr`` are the session's (recorded from the ID token at login)
    or the bearer token's claims; one without ``auth_time`` fails a ``max_age`` requirement.
    API requests get ``401 insufficient_user_authentication`` with ``WWW-Authenticate: Bearer
    error="insufficient_user_authentication", error_description="...", max_age=...,
    acr_values="..."``. Page requests (a session ``GET`` that accepts ``text/html``) are sent to
    the login route with ``max_age``/``acr_values`` and come back to the page; the callback
    checks the new ID token's ``auth_time``. Memoised like :func:`require_scopes`.
    """
    if max_age is not None and (isinstance(max_age, bool) or not 0 <= int(max_age) < 10**9):
        raise ValueError("max_age must be a whole number of seconds, 0 to 999999999")
    values = tuple(acr.split()) if isinstance(acr, str) else tuple(acr or ())
    if max_age is None and not values:
        raise ValueError("require_step_up needs max_age, acr, or both")
    return _require_step_up(None if max_age is None else int(max_age), _names(values) if values
                            else ())  # fmt: skip


@functools.cache
def _require_step_up(max_age: int | None, acr_values: tuple[str, ...]) -> UserDependency:
    async def dependency(
        request: HTTPConnection, user: User | None = Depends(optional_user)
    ) -> User:
        guard = installed(request)
        bearer = guard.auth.uses_bearer(request)  # the credential that authenticated ``user``
        page = (
            not bearer and request.scope.get("method") == "GET"
            and "text/html" in request.headers.get("accept", "")
        )  # fmt: skip
        try:
            if user is None:
                raise NotAuthenticated("step-up needs a signed-in user")
            if bearer:
                auth_time, acr = user.claims.get("auth_time"), user.claims.get("acr")
            else:
                session = await guard.auth.session(request)
                auth_time, acr = (session.auth_time, session.acr) if session else (None, None)
            check_step_up(
                auth_time=auth_time, acr=acr, max_age=max_age, acr_values=acr_values,
                now=guard.config.clock(), leeway=guard.config.leeway,
            )  # fmt: skip
        except (NotAuthenticated, InsufficientUserAuthentication) as err:
            if not page:
                raise
            raise LoginRedirect("page needs a (more recent) login", location=_step_up_login(
                request, guard.config, max_age, acr_values)) from err  # fmt: skip
        return user

    dependency.__name__ = f"require_step_up(max_age={max_age}, acr={' '.join(acr_values)!r})"
    return dependency


def _step_up_login(
    request: HTTPConnection, config: GuardConfig, max_age: int | None, acr_values: tuple[str, ...]
) -> str:
    extra: dict[str, str] = {}
    if max_age is not None:
        extra["max_age"] = str(max_age)
    if acr_values:
        extra["acr_values"] = " ".join(acr_values)
    return login_location(request, config, extra)


class AuthState(BaseModel):
    """Who is calling, without ever raising (Clerk's ``auth()``).

    ``error`` is the error code when credentials were present but refused (``invalid_token``)
    or could not be checked (``temporarily_unavailable``).
    """

    model_config = ConfigDict(frozen=True)

    authenticated: bool
    method: Literal["bearer", "session"] | None = None
    user: User | None = None
    scopes: frozenset[str] = frozenset()
    error: str | None = None


async def auth_state(request: HTTPConnection) -> AuthState:
    """The request's :class:`AuthState`; for routes that serve both users and anonymous callers."""
    guard = installed(request)
    method: Literal["bearer", "session"] = (
        "bearer" if guard.auth.uses_bearer(request) else "session"
    )
    try:
        user = await guard.auth.authenticate(request)
    except NotAuthenticated:
        return AuthState(authenticated=False)
    except OIDCGuardError as err:
        return AuthState(authenticated=False, method=method, error=err.code)
    return AuthState(authenticated=True, method=method, user=user, scopes=user.scopes)
