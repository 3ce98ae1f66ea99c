"""Cross-site request forgery: which cookie-authenticated requests may change state.

``SameSite=Lax`` keeps the session cookie off cross-site POSTs, but not off requests from a
sibling subdomain (same *site*, another *origin*), nor off anything with ``SameSite=None``, nor
off a cross-site top-level ``GET`` (a link or a redirect to ``/auth/logout``). So:

- an unsafe request (any method but GET, HEAD, OPTIONS and TRACE) authenticated by the
  session cookie is refused when its ``Origin`` is another origin not listed in
  ``trusted_origins``, or, without ``Origin``, when ``Sec-Fetch-Site`` says ``same-site`` or
  ``cross-site``; ``Origin: null`` (a page with ``Referrer-Policy: no-referrer``, a sandbox)
  passes only with ``Sec-Fetch-Site: same-origin``; a request with neither header (a
  non-browser client) passes, as browsers send ``Origin`` on every cross-origin POST;
- a ``GET`` that would end the session (``/auth/logout``) does so only when the browser says the
  user started it here: ``Sec-Fetch-Site: same-origin`` or ``none`` (typed, bookmarked), or,
  for browsers without Fetch Metadata, a same-origin ``Referer``. Anything else gets a
  confirmation page whose button POSTs.

Pure functions over the request's headers; no FastAPI import.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

__all__ = ["SAFE_METHODS", "is_unsafe", "same_origin_navigation", "write_allowed"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def is_unsafe(method: str) -> bool:
    """Every method but the safe ones may change state (PURGE, PROPFIND, ... included)."""
    return method.upper() not in SAFE_METHODS


def write_allowed(headers: Mapping[str, str], *, allowed_origins: Collection[str]) -> bool:
    """May a cookie-authenticated unsafe request with these headers change state?"""
    origin = headers.get("origin")
    site = headers.get("sec-fetch-site")
    if origin == "null":  # opaque: only the browser's own word that it is same-origin counts
        return site == "same-origin"
    if origin is not None:
        return origin in allowed_origins
    return site is None or site in ("same-origin", "none")


def same_origin_navigation(headers: Mapping[str, str], *, own_origin: str) -> bool:
    """Did the user start this ``GET`` on this origin (or by typing / a bookmark)?"""
    origin = headers.get("origin")
    if origin is not None and origin != own_origin:
        return False
    site = headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    referer = headers.get("referer", "")
    return referer == own_origin or referer.startswith(own_origin + "/")
