"""Security schemes in the app's OpenAPI document, so Swagger UI's Authorize button works.

Installed by ``OIDCGuard.install``: the document gets an ``OpenIdConnect`` scheme (the provider's
discovery URL; Swagger UI runs the authorization code flow with PKCE against it) and a
``BearerAuth`` scheme (paste a JWT); each operation protected by the library lists them, with the
OAuth scopes it requires. Nothing here runs per request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from .dependencies import optional_user, require_page_user, require_user
from .discovery import discovery_url

__all__ = ["declared_scopes", "install_openapi"]

OIDC_SCHEME = "OpenIdConnect"
BEARER_SCHEME = "BearerAuth"
_USER_DEPENDENCIES: set[Callable[..., Any]] = {require_user, require_page_user}
_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "description": {"type": "string"}},
    "required": ["error", "description"],
}
_ERROR_RESPONSES = {
    "401": "Not authenticated, or the token is invalid (`not_authenticated`, `invalid_token`)",
    "403": "Authenticated, without the rights this route requires (`insufficient_scope`)",
}


def _requirements(dependant: Dependant) -> tuple[bool, set[str]]:
    """Whether the dependency tree requires a user, and the OAuth scopes it requires."""
    protected, scopes = False, set[str]()
    for dep in dependant.dependencies:
        call = dep.call
        if call in _USER_DEPENDENCIES:
            protected = True
            for name in ("own_oauth_scopes", "parent_oauth_scopes", "security_scopes"):
                scopes.update(getattr(dep, name, None) or ())  # across FastAPI versions
        rights = getattr(call, "oidc_guard_rights", None)
        if rights is not None and rights[0] == "scopes":
            scopes.update(rights[1])
        sub_protected, sub_scopes = _requirements(dep)
        protected = protected or sub_protected
        scopes |= sub_scopes
    return protected, scopes


def declared_scopes(app: FastAPI) -> list[str]:
    """The OAuth scopes the app's routes require (``require_scopes``, ``Security(...)``),
    sorted: the metadata's ``scopes_supported``."""
    found: set[str] = set()
    for route in app.routes:
        if isinstance(route, APIRoute):
            found |= _requirements(route.dependant)[1]
    return sorted(found)


def _optional(dependant: Dependant) -> bool:
    return any(d.call is optional_user or _optional(d) for d in dependant.dependencies)


def install_openapi(
    app: FastAPI, *, issuer: str, client_id: str | None, scope: str, audience: str | None = None
) -> None:
    """Add the security schemes, per-operation requirements and the 401/403 answers to
    ``app.openapi()``, and Swagger UI's OAuth settings (``client_id``: the docs page's public
    client; ``audience`` sent with its authorization requests)."""
    original = app.openapi
    done: list[bool] = []

    def openapi() -> dict[str, Any]:
        schema = original()
        if done:
            return schema
        done.append(True)
        components = schema.setdefault("components", {})
        components.setdefault("securitySchemes", {}).update(
            {
                OIDC_SCHEME: {"type": "openIdConnect", "openIdConnectUrl": discovery_url(issuer)},
                BEARER_SCHEME: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            }
        )
        for route in app.routes:
            if not isinstance(route, APIRoute) or not route.include_in_schema:
                continue
            protected, scopes = _requirements(route.dependant)
            optional = _optional(route.dependant)
            if not (protected or optional):
                continue
            security: list[dict[str, list[str]]] = [
                {OIDC_SCHEME: sorted(scopes)},
                {BEARER_SCHEME: []},
            ]
            if optional and not protected:
                security.append({})  # anonymous callers allowed
            for method in route.methods or ():
                operation = schema.get("paths", {}).get(route.path_format, {}).get(method.lower())
                if operation is not None:
                    operation["security"] = security
                    if protected:
                        responses = operation.setdefault("responses", {})
                        for status, text in _ERROR_RESPONSES.items():
                            responses.setdefault(status, {
                                "description": text,
                                "content": {"application/json": {"schema": _ERROR_SCHEMA}},
                            })  # fmt: skip
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    if client_id:
        # Swagger UI is a public client (PKCE, no secret): the audience goes with the
        # authorization request, or the provider hands out an opaque token that every "Try it
        # out" would answer 401 invalid_token. Settings the app put there itself win.
        extra = {"audience": audience, "resource": audience} if audience else {}
        scopes = " ".join(s for s in scope.split() if s != "offline_access")
        app.swagger_ui_init_oauth = {
            "clientId": client_id,
            "usePkceWithAuthorizationCodeGrant": True,
            "scopes": scopes,
            "additionalQueryStringParams": extra,
            **(app.swagger_ui_init_oauth or {}),
        }
