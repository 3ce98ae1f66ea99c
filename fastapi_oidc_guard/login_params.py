"""What a login asks the provider for, from ``/auth/login``'s query string and the settings.

The query string comes from the browser, so nothing in it may widen what the session gets:

- ``scope`` and ``audience`` are taken from the browser only when the app lists them in
  ``login_params``, and only within what the app allows (``OIDC_SCOPE`` plus ``login_scopes``;
  ``OIDC_AUDIENCE`` plus ``login_audiences``); otherwise they are dropped (DEBUG log) and the
  configured ones are asked. A session's scopes never come from this request anyway: they come
  from the token response, the verified access token, or the configured scope.
- Other parameters pass only when listed in ``login_params``, with values bounded; unknown ones
  are dropped with a DEBUG log.
- ``max_age`` (a whole number of seconds) and ``acr_values`` (space-separated printable tokens)
  always pass: they only make a login stricter, ``require_step_up`` sends them, and the callback
  checks what they asked (the ID token's ``auth_time`` / ``acr``), so dropping them from the URL
  gets nothing past ``require_step_up``.

Pure: no I/O, no FastAPI.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .config import GuardConfig
from .errors import InvalidRequest

__all__ = ["MAX_PARAM", "LoginAsk", "has_control_chars", "login_ask"]

logger = logging.getLogger("fastapi_oidc_guard.routes")

MAX_PARAM = 512
_MAX_AGE = re.compile(r"[0-9]{1,9}")
_ACR_VALUES = re.compile(r"[\x21-\x7e]+( [\x21-\x7e]+)*")
_OURS = frozenset({"returnTo"})


@dataclass(frozen=True)
class LoginAsk:
    """What goes into the authorization request (and into the login's transaction)."""

    scope: str
    audience: str | None
    max_age: int | None = None
    acr_values: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def has_control_chars(value: str) -> bool:
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)


def login_ask(params: Mapping[str, str], cfg: GuardConfig) -> LoginAsk:
    """The login's parameters; :class:`InvalidRequest` (400) for a value out of bounds."""
    allowed = {*cfg.login_params, "max_age", "acr_values"}
    dropped = sorted(k for k in params if k not in allowed and k not in _OURS)
    if dropped:
        logger.debug("login parameters not in login_params, dropped: %s", dropped)
    for name in allowed & set(params):
        value = params[name]
        if len(value) > MAX_PARAM or has_control_chars(value):
            raise InvalidRequest(f"login parameter {name!r} too long or with control characters")
    scope = _scope(params.get("scope") if "scope" in allowed else None, cfg)
    audience = cfg.audience
    if "audience" in allowed and params.get("audience"):
        audience = params["audience"]
        if audience not in {cfg.audience, *cfg.login_audiences}:
            raise InvalidRequest("audience not among OIDC_AUDIENCE and login_audiences")
    max_age = None
    if "max_age" in allowed and params.get("max_age") is not None:
        if not _MAX_AGE.fullmatch(params["max_age"]):
            raise InvalidRequest("max_age must be a whole number of seconds")
        max_age = int(params["max_age"])
    acr_values = None
    if "acr_values" in allowed and params.get("acr_values"):
        if len(params["acr_values"]) > 128 or not _ACR_VALUES.fullmatch(params["acr_values"]):
            raise InvalidRequest("acr_values must be space-separated printable tokens")
        acr_values = params["acr_values"]
    special = {"scope", "audience", "max_age", "acr_values"}
    extra = {k: params[k] for k in sorted(allowed - special) if k in params}
    return LoginAsk(scope=scope, audience=audience, max_age=max_age, acr_values=acr_values,
                    extra=extra)  # fmt: skip


def _scope(asked: str | None, cfg: GuardConfig) -> str:
    if not asked:
        return cfg.scope
    scopes = asked.split()
    if "openid" not in scopes:
        raise InvalidRequest("scope must include openid")
    permitted = {*cfg.scope.split(), *cfg.login_scopes}
    outside = sorted(set(scopes) - permitted)
    if outside:
        raise InvalidRequest(f"scopes {outside} are not among OIDC_SCOPE and login_scopes")
    return " ".join(dict.fromkeys(scopes))
