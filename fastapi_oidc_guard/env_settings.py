"""Settings from the environment: one ``<prefix><SETTING>`` variable per setting of
:class:`~fastapi_oidc_guard.config.GuardConfig` (``OIDC_ISSUER``, ``OIDC_LEEWAY``...), an optional
``.env`` file, and a warning with a "did you mean" for a variable under the prefix that names no
setting (``OIDC_ISSUER_URL``).

Every field is read the same way, by its type: strings as given, numbers parsed (a bad one names
the variable), booleans from ``true/false/1/0/yes/no/on/off``, lists comma-separated. Only
``clock`` (code) and ``audiences`` (derived from ``audience``) have no variable.

The ``.env`` reader is deliberately small (``KEY=value`` lines, ``#`` comments, optional
``export``, single or double quotes): pydantic-settings is the ecosystem's tool for this, but it
would be a new required dependency for one file format, and the variables keep their names.
Values already in the environment win over the file, as with python-dotenv and pydantic-settings.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import Field
from pathlib import Path
from typing import Any

from .errors import ConfigurationError

__all__ = [
    "DEFAULT_PREFIX", "log_unknown", "read_dotenv", "settings_from_env", "split_list",
    "unknown_variables",
]  # fmt: skip

logger = logging.getLogger("fastapi_oidc_guard.config")

DEFAULT_PREFIX = "OIDC_"
NOT_FROM_ENV = frozenset({"clock", "audiences"})
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
_LIST_AUDIENCE = "audience"  # a string or a list: comma-separated in the environment
_MAX_DOTENV_BYTES = 1024 * 1024


def variable(prefix: str, name: str) -> str:
    return f"{prefix}{name.upper()}"


def split_list(value: str) -> tuple[str, ...]:
    """A comma-separated setting as a tuple, blanks dropped (``"a, b,"`` -> ``("a", "b")``)."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _convert(field: Field[Any], var: str, raw: str) -> Any:
    kind = str(field.type).replace(" ", "")
    if field.name == _LIST_AUDIENCE:
        return split_list(raw) or raw
    if kind.startswith("tuple[str"):
        return split_list(raw)
    if kind in ("bool", "bool|None"):
        flag = raw.strip().lower()
        if flag not in _TRUE + _FALSE:
            raise ConfigurationError(f"{var} must be true or false")
        return flag in _TRUE
    if kind == "int":
        try:
            return int(raw.strip())
        except ValueError:
            raise ConfigurationError(f"{var} must be a whole number") from None
    if kind == "float":
        try:
            number = float(raw.strip())
        except ValueError:
            raise ConfigurationError(f"{var} must be a number of seconds") from None
        if not math.isfinite(number):
            raise ConfigurationError(f"{var} must be a finite number")
        return number
    return raw  # str, str | None and the Literal names: GuardConfig checks the values


def settings_from_env(
    config_fields: Iterable[Field[Any]], environ: Mapping[str, str], *, prefix: str
) -> dict[str, Any]:
    """The settings named by ``<prefix><NAME>`` variables; an empty variable is unset."""
    values: dict[str, Any] = {}
    for field in config_fields:
        if field.name in NOT_FROM_ENV:
            continue
        var = variable(prefix, field.name)
        raw = environ.get(var)
        if raw is not None and raw.strip():
            values[field.name] = _convert(field, var, raw)
    return values


def unknown_variables(
    config_fields: Iterable[Field[Any]],
    environ: Mapping[str, str],
    *,
    prefix: str,
    other_prefixes: Iterable[str] = (),
) -> list[str]:
    """One warning line per ``<prefix>*`` variable that names no setting, with the closest
    setting's variable when one is near (``OIDC_ISSUER_URL``: did you mean ``OIDC_ISSUER``?).
    Variables under a longer prefix another guard of this process reads are not ours."""
    known = {variable(prefix, f.name) for f in config_fields if f.name not in NOT_FROM_ENV}
    longer = [p for p in other_prefixes if p != prefix and p.startswith(prefix)]
    lines = []
    for name in sorted(environ):
        if not name.startswith(prefix) or name in known:
            continue
        if any(name.startswith(p) for p in longer):
            continue
        near = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
        hint = f"; did you mean {near[0]}?" if near else ""
        lines.append(f"{name} is not a fastapi_oidc_guard setting and is ignored{hint}")
    return lines


def read_dotenv(path: str | os.PathLike[str]) -> dict[str, str]:
    """``KEY=value`` pairs of a ``.env`` file. A missing file is a ``ConfigurationError`` (it
    was asked for by name); a line that is not an assignment names its line number, never its
    content (it may hold a secret)."""
    file = Path(path)
    try:
        if file.stat().st_size > _MAX_DOTENV_BYTES:
            raise ConfigurationError(f"{file}: larger than 1 MiB, not a .env file")
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigurationError(
            f"cannot read the .env file {file}: {type(err).__name__}"
        ) from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        stripped = stripped.removeprefix("export ").lstrip()
        key, sep, value = stripped.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key.replace("_", "").isalnum():
            raise ConfigurationError(f"{file}, line {number}: expected KEY=value")
        if value[:1] in ("'", '"'):
            # A quoted value ends at its closing quote; only a comment may follow it.
            end = value.find(value[0], 1)
            rest = value[end + 1 :].strip() if end > 0 else "?"
            if end < 0 or (rest and not rest.startswith("#")):
                raise ConfigurationError(f"{file}, line {number}: unterminated or trailing quote")
            value = value[1:end]
        elif " #" in value:  # an unquoted value ends at an inline comment
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values


def log_unknown(lines: Iterable[str]) -> None:
    for line in lines:
        logger.warning("%s", line)
