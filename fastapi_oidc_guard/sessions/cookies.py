"""Session cookie I/O: attributes, chunking above ~3.5 KB, removal of stale chunks.

A value longer than ``CHUNK_SIZE`` is written as ``<name>.0``, ``<name>.1``...; any chunk (or the
unchunked cookie) left from a previous, longer value is deleted in the same response, so a reader
never joins old and new parts. No single ``Set-Cookie`` exceeds 4 KB.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CHUNK_SIZE",
    "CookieSettings",
    "cookie_header",
    "present_names",
    "read_chunked",
    "write_chunked",
]

CHUNK_SIZE = 3500
MAX_CHUNKS = 20


@dataclass(frozen=True, kw_only=True)
class CookieSettings:
    """Attributes of the cookies the library sets."""

    name: str = "oidc_session"
    domain: str | None = None
    path: str = "/"
    secure: bool = True
    same_site: Literal["lax", "strict", "none"] = "lax"
    http_only: bool = True

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_\-]+", self.name):
            raise ValueError("cookie name may contain letters, digits, '_' and '-' only")
        if self.same_site == "none" and not self.secure:
            raise ValueError("SameSite=None cookies must be Secure")


def cookie_header(
    name: str, value: str, settings: CookieSettings, *, max_age: int, path: str | None = None
) -> bytes:
    """One ``Set-Cookie`` value; ``max_age=0`` deletes the cookie."""
    parts = [f"{name}={value}", f"Path={path or settings.path}", f"Max-Age={max(max_age, 0)}"]
    if max_age <= 0:
        parts.append("Expires=Thu, 01 Jan 1970 00:00:00 GMT")
    if settings.domain:
        parts.append(f"Domain={settings.domain}")
    if settings.secure:
        parts.append("Secure")
    if settings.http_only:
        parts.append("HttpOnly")
    parts.append(f"SameSite={settings.same_site.capitalize()}")
    return "; ".join(parts).encode("latin-1")


def _chunk_names(cookies: Mapping[str, str], name: str) -> list[str]:
    names = []
    for index in range(MAX_CHUNKS + 1):
        chunk = f"{name}.{index}"
        if chunk not in cookies:
            break
        names.append(chunk)
    return names


def read_chunked(cookies: Mapping[str, str], name: str) -> str | None:
    """The cookie's value, joined from chunks when it was split; ``None`` when absent."""
    value = cookies.get(name)
    if value is not None:
        return value
    chunks = _chunk_names(cookies, name)
    if not chunks:
        return None
    return "".join(cookies[chunk] for chunk in chunks)


def present_names(cookies: Mapping[str, str], name: str) -> list[str]:
    """The session cookie's names present in the request (unchunked and chunks)."""
    found = [name] if name in cookies else []
    prefix = f"{name}."
    found.extend(k for k in cookies if k.startswith(prefix) and k[len(prefix) :].isdigit())
    return found


def write_chunked(
    value: str | None,
    settings: CookieSettings,
    *,
    max_age: int,
    present: list[str],
) -> list[bytes]:
    """``Set-Cookie`` values that store ``value`` (or delete it when ``None``) and remove
    whatever names in ``present`` the new value does not use."""
    name = settings.name
    headers: list[bytes] = []
    written: set[str] = set()
    if value is not None:
        if len(value) <= CHUNK_SIZE:
            headers.append(cookie_header(name, value, settings, max_age=max_age))
            written.add(name)
        else:
            for index in range(0, len(value), CHUNK_SIZE):
                chunk = f"{name}.{index // CHUNK_SIZE}"
                part = value[index : index + CHUNK_SIZE]
                headers.append(cookie_header(chunk, part, settings, max_age=max_age))
                written.add(chunk)
    for stale in present:
        if stale not in written:
            headers.append(cookie_header(stale, "", settings, max_age=0))
    return headers
