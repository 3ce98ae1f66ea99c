"""Errors of the browser routes (login, callback, logout) as pages, for requests that prefer HTML.

A browser that follows a stale callback link, cancels the login at the provider, or meets the
provider down gets a small page with a way back (try again, keeping where it was going) instead
of a JSON dead end; API clients (``Accept: application/json``, ``*/*``) keep the JSON answer of
``http_errors``. The page carries the fixed description only (never a value from the request)
and the app can render its own: ``OIDCGuard(error_page=...)`` receives the request and a
:class:`BrowserError`.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from fastapi.requests import Request
from fastapi.responses import Response

from ._pages import PAGE_CSP, error_page
from .errors import OIDCGuardError, TemporarilyUnavailable
from .http_errors import describe, error_response, log_refusal

logger = logging.getLogger("fastapi_oidc_guard")

__all__ = ["BrowserError", "BrowserErrors", "ErrorPage", "prefers_html"]


@dataclass(frozen=True)
class BrowserError:
    """What an error page shows: the HTTP ``status``, the stable ``error`` code, its fixed
    ``description``, ``try_again`` (the login route with the original ``returnTo``) and
    ``home`` (where the browser was going, or the app's home)."""

    status: int
    error: str
    description: str
    try_again: str
    home: str
    exception: OIDCGuardError


ErrorPage = Callable[[Request, BrowserError], Response | Awaitable[Response]]


def _quality(item: str) -> tuple[str, float]:
    kind, *params = (part.strip() for part in item.split(";"))
    q = 1.0
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value)
            except ValueError:
                q = 0.0
    return kind.lower(), q


def prefers_html(headers: Mapping[str, str]) -> bool:
    """Whether ``Accept`` ranks ``text/html`` above JSON (a browser's navigation does; API
    clients send ``application/json`` or ``*/*``)."""
    accept = headers.get("accept", "")
    if len(accept) > 2048:
        return False
    ranks = dict(_quality(item) for item in accept.split(",") if item.strip())
    html = ranks.get("text/html", 0.0)
    return html > 0 and html >= ranks.get("application/json", 0.0)


class BrowserErrors:
    """Answers an error of a browser route: the app's page, the library's, or JSON."""

    def __init__(self, *, login_path: Callable[[Request], str], page: ErrorPage | None) -> None:
        self._login_path = login_path
        self._page = page

    async def answer(self, request: Request, err: OIDCGuardError, *, return_to: str) -> Response:
        log_refusal(request, err)
        if not prefers_html(request.headers):
            return error_response(err)
        status, description = describe(err)
        retry = f"{self._login_path(request)}?{urlencode({'returnTo': return_to})}"
        shown = BrowserError(status, err.code, description, retry, return_to, err)
        if self._page is not None:
            try:
                answer = self._page(request, shown)
                if inspect.isawaitable(answer):
                    answer = await answer
            except Exception:  # the app's hook failed: the library's page, never a 500
                logger.exception("error_page raised; the library's page is shown instead")
            else:
                if isinstance(answer, Response):
                    return answer
                logger.error("error_page returned %s, not a Response", type(answer).__name__)
        headers = {"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                   "Content-Security-Policy": PAGE_CSP}  # fmt: skip
        if isinstance(err, TemporarilyUnavailable):
            headers["Retry-After"] = str(err.retry_after)
        return Response(
            error_page(shown.description, try_again=shown.try_again, home=shown.home),
            status_code=status, media_type="text/html", headers=headers,
        )  # fmt: skip
