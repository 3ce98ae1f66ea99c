"""The fake issuer's own refusal: a request answered with 400 in place (never by a redirect)."""

from __future__ import annotations

__all__ = ["InvalidRequest"]


class InvalidRequest(ValueError):
    """A request answered with 400 by the issuer itself, never by redirecting anywhere."""
