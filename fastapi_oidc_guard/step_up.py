"""Step-up authentication (OIDC Core 3.1.2.1 ``max_age`` / ``acr_values``, RFC 9470): pure rules.

- At the callback, a login that asked ``max_age`` needs the ID token's ``auth_time`` (a bounded
  NumericDate) no older than ``max_age`` (leeway allowed): a provider that ignored ``max_age``, or a
  browser that dropped it from the authorization URL, does not sign the user in.
- On a route, ``require_step_up(max_age=..., acr=...)`` compares the credential's ``auth_time``
  and ``acr`` (the session's, recorded at login, or the bearer token's claims) with what the route
  needs; a credential without ``auth_time`` fails a ``max_age`` requirement.

No I/O, no FastAPI.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

from .errors import InsufficientUserAuthentication, InvalidRequest

__all__ = ["check_login", "check_login_acr", "check_step_up", "claimed_scopes", "numeric_date"]

_MAX_NUMERIC_DATE = 253_402_300_799.0  # 9999-12-31T23:59:59Z


def numeric_date(value: Any) -> float | None:
    """``value`` as a bounded, finite NumericDate, or ``None`` when it is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) and 0 <= number <= _MAX_NUMERIC_DATE else None


def check_login(
    claims: Mapping[str, Any], *, max_age: int | None, now: float, leeway: float
) -> float | None:
    """The ID token's ``auth_time`` (``None`` if absent); :class:`InvalidRequest` when the
    login asked ``max_age`` and ``auth_time`` is missing, malformed or too old."""
    raw = claims.get("auth_time")
    auth_time = numeric_date(raw)
    if raw is not None and auth_time is None:
        raise InvalidRequest("ID token auth_time is not a valid NumericDate")
    if auth_time is not None and auth_time > now + leeway:
        raise InvalidRequest("ID token auth_time is in the future")
    if max_age is None:
        return auth_time
    if auth_time is None:
        raise InvalidRequest("max_age was asked but the ID token has no auth_time")
    if now - auth_time > max_age + leeway:
        raise InvalidRequest(
            f"the authentication is {now - auth_time:.0f} s old, max_age {max_age}"
        )
    return auth_time


def check_login_acr(claims: Mapping[str, Any], *, acr_values: str | None) -> None:
    """A login that asked ``acr_values`` must come back with one of them in ``acr``: else the
    step-up would send the browser round the provider forever."""
    if acr_values and claims.get("acr") not in acr_values.split():
        raise InvalidRequest(f"acr {claims.get('acr')!r} is not among the asked {acr_values!r}")


def check_step_up(
    *,
    auth_time: Any,
    acr: Any,
    max_age: int | None,
    acr_values: Collection[str],
    now: float,
    leeway: float,
) -> None:
    """Raise :class:`InsufficientUserAuthentication` when the credential's authentication is
    older than ``max_age`` or its ``acr`` is not one of ``acr_values``."""
    required = " ".join(acr_values) or None
    if max_age is not None:
        when = numeric_date(auth_time)
        if when is None or now - when > max_age + leeway or when > now + leeway:
            age = "unknown" if when is None else f"{now - when:.0f} s"
            raise InsufficientUserAuthentication(
                f"authentication age {age}, route needs at most {max_age} s",
                max_age=max_age, acr_values=required,
            )  # fmt: skip
    if acr_values and acr not in acr_values:
        raise InsufficientUserAuthentication(
            f"acr {acr!r}, route needs one of {sorted(acr_values)}",
            max_age=max_age, acr_values=required,
        )  # fmt: skip


def claimed_scopes(claims: Mapping[str, Any]) -> str:
    """The scopes a verified access token grants (``scope``/``scp``, strings or arrays)."""
    found: list[str] = []
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            found.extend(value.split())
        elif isinstance(value, list):
            found.extend(item for item in value if isinstance(item, str))
    return " ".join(dict.fromkeys(found))
