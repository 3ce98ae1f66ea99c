"""The ``/auth`` routes: HTTP shapes only, built from explicit collaborators.

``login``/``callback``/``logout`` call :class:`~fastapi_oidc_guard.login_flow.LoginFlow`,
``backchannel-logout`` calls :class:`~fastapi_oidc_guard.backchannel.BackchannelLogout`,
``access-token`` the :class:`~fastapi_oidc_guard.tokens.TokenService` and ``profile`` the
:class:`~fastapi_oidc_guard.authentication.Authenticator`. Mounted by ``OIDCGuard.install``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.datastructures import URLPath
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

from ._pages import PAGE_CSP, logout_confirmation
from .authentication import Authenticator
from .backchannel import BackchannelLogout
from .browser_errors import BrowserErrors, ErrorPage
from .config import GuardConfig
from .csrf import same_origin_navigation, write_allowed
from .errors import CrossOriginRequest, InvalidRequest, NotAuthenticated, OIDCGuardError
from .login_flow import LoginFlow
from .login_params import has_control_chars
from .tokens import TokenService

__all__ = ["PrefixedRoutes", "build_router", "safe_return_to"]

_MAX_RETURN_TO = 2048
_NO_STORE = {"Cache-Control": "no-store"}


class PrefixedRoutes(BaseRoute):
    """The ``/auth`` routes as one entry of the app's route list: a request whose path does not
    start with the prefix is told "no match" by one string comparison, instead of being matched
    against each route in turn (FastAPI's matching costs a few microseconds per route, on every
    request of every route declared after ``install``)."""

    def __init__(self, prefix: str, routes: list[BaseRoute]) -> None:
        self.prefix = prefix
        self.routes = routes

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        path = scope.get("path", "")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        if not (path == self.prefix or path.startswith(self.prefix + "/")):
            return Match.NONE, {}
        partial: tuple[BaseRoute, Scope] | None = None
        for route in self.routes:
            match, child = route.matches(scope)
            if match == Match.FULL:
                return Match.FULL, {**child, _ROUTE_KEY: route}
            if match == Match.PARTIAL and partial is None:
                partial = (route, child)
        if partial is not None:
            return Match.PARTIAL, {**partial[1], _ROUTE_KEY: partial[0]}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await scope[_ROUTE_KEY].handle(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        for route in self.routes:
            try:
                return route.url_path_for(name, **path_params)
            except NoMatchFound:
                continue
        raise NoMatchFound(name, path_params)


_ROUTE_KEY = "fastapi_oidc_guard.route"


def safe_return_to(value: str | None, *, default: str = "/") -> str:
    """``value`` if it is a same-origin relative path, else ``default``.

    Refused: absolute and scheme-relative URLs (``//evil``), backslashes (``/\\evil``), control
    characters (CR/LF header injection), encoded forms of those (``/%2F%2Fevil``) and values over
    2 KiB.
    """
    if not value or len(value) > _MAX_RETURN_TO:
        return default
    candidates = [value]
    decoded = value
    for _ in range(3):  # percent-decoding is not stable after one pass for nested encodings
        decoded = unquote(decoded)
        candidates.append(decoded)
    for candidate in candidates:
        if (
            not candidate.startswith("/")
            or candidate.startswith("//")
            or "\\" in candidate
            or has_control_chars(candidate)
        ):
            return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value


async def _small_form(request: Request, limit: int = 32 * 1024) -> dict[str, str] | None:
    """An ``application/x-www-form-urlencoded`` body of at most ``limit`` bytes, or ``None``."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    try:
        return dict(parse_qsl(body.decode("ascii"), max_num_fields=10))
    except (UnicodeDecodeError, ValueError):
        return None


def build_router(
    *,
    config: GuardConfig,
    login: LoginFlow,
    auth: Authenticator,
    tokens: TokenService,
    backchannel: BackchannelLogout,
    error_page: ErrorPage | None = None,
) -> APIRouter:
    """The ``/auth/*`` router (its prefix comes from the configuration). Errors of the browser
    routes (login, callback, logout) are pages for requests that prefer HTML (``error_page``,
    or the library's), JSON otherwise."""
    cfg = config
    own_origin = cfg.origin or ""
    router = APIRouter(prefix=cfg.routes_prefix, include_in_schema=False)

    def _home(request: Request, page: str = "/") -> str:
        """``page`` (a path of the app) as the browser sees it: under the app's prefix."""
        mount = login.mount(request)
        inside = page == mount or page.startswith(mount + "/")
        return mount + page if mount and not inside else page

    pages = BrowserErrors(
        login_path=lambda request: f"{login.mount(request)}{cfg.routes_prefix}/login",
        page=error_page,
    )

    def _login_return_to(request: Request) -> str:
        return safe_return_to(
            request.query_params.get("returnTo"), default=_home(request, cfg.default_return_to)
        )

    @router.get("/login")
    async def login_route(request: Request) -> Response:
        return_to = _login_return_to(request)
        try:
            return await login.begin(request, return_to)
        except OIDCGuardError as err:  # the provider down, a refused parameter
            return await pages.answer(request, err, return_to=return_to)

    @router.get("/callback")
    async def callback(request: Request) -> Response:
        async def on_error(err: OIDCGuardError, return_to: str) -> Response:
            return await pages.answer(request, err, return_to=safe_return_to(return_to))

        try:
            return await login.finish(request, on_error=on_error)
        except OIDCGuardError as err:  # no transaction: a stale or replayed callback
            return await pages.answer(request, err, return_to=_home(request, cfg.default_return_to))

    @router.get("/logout")
    async def logout_page(request: Request) -> Response:
        """Logout by a link: only when the user started it on this origin; otherwise (a
        cross-site link, image or redirect) a confirmation page whose button POSTs."""
        return_to = safe_return_to(request.query_params.get("returnTo"), default=_home(request))
        if same_origin_navigation(request.headers, own_origin=own_origin):
            try:
                return await login.logout(request, return_to)
            except OIDCGuardError as err:
                return await pages.answer(request, err, return_to=return_to)
        return HTMLResponse(
            logout_confirmation(f"{login.mount(request)}{cfg.routes_prefix}/logout", return_to),
            headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                     "Content-Security-Policy": PAGE_CSP},
        )  # fmt: skip

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        """Logout (a form button): ends the session, revokes the refresh token and ends the
        provider's session. Refused (403) from another origin, like every cookie write."""
        form = await _small_form(request) or {}
        return_to = safe_return_to(
            form.get("returnTo") or request.query_params.get("returnTo"), default=_home(request)
        )
        try:
            if not write_allowed(request.headers, allowed_origins=auth.write_origins):
                raise CrossOriginRequest("logout POST from another origin")
            return await login.logout(request, return_to)
        except OIDCGuardError as err:
            return await pages.answer(request, err, return_to=return_to)

    @router.get("/access-token")
    async def access_token(request: Request) -> Response:
        token = await tokens.access_token_for(request, audience=cfg.audience, scope=None)
        body = {"access_token": token.token, "token_type": token.token_type,
                "expires_at": token.expires_at, "scope": token.scope}  # fmt: skip
        return JSONResponse(body, headers=_NO_STORE)

    @router.post("/backchannel-logout")
    async def backchannel_logout(request: Request) -> Response:
        form = await _small_form(request)
        if not await backchannel.handle(form.get("logout_token") if form is not None else None):
            raise InvalidRequest("logout token refused or replayed")  # 400, the spec's answer
        return Response(headers=_NO_STORE)

    @router.get("/profile")
    async def profile(request: Request) -> Response:
        user = await auth.session_user(request)
        if user is None:
            raise NotAuthenticated("no session")
        return JSONResponse(auth.public_profile(user), headers=_NO_STORE)

    return router
