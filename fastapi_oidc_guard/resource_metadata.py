"""OAuth 2.0 Protected Resource Metadata (RFC 9728): how a client that only knows this API's
URL finds the authorization server to get a token from (MCP clients and other OAuth 2.1
clients do this by themselves).

- The resource identifier is ``GuardConfig.resource_identifier`` (``OIDC_RESOURCE``, else the
  first audience that is an https URL).
- Its metadata is served at the path RFC 9728 section 3.1 derives from it: the well-known
  prefix inserted between the host and the identifier's path (``https://api.example.com/v1``
  -> ``https://api.example.com/.well-known/oauth-protected-resource/v1``).
- Every 401 and 403 challenge of the bearer path names that URL (``resource_metadata=``,
  section 5.1; ``http_errors``).

The document is public (no credential) and the same for everyone: cacheable, and readable
cross-origin (browser-based clients fetch it from another origin).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from .openapi import declared_scopes

__all__ = ["WELL_KNOWN", "install_resource_metadata", "metadata_path", "metadata_url"]

WELL_KNOWN = "/.well-known/oauth-protected-resource"


def metadata_path(resource: str) -> str:
    """The path of ``resource``'s metadata (RFC 9728 section 3.1: a path of "/" alone is the
    terminating slash, removed)."""
    path = urlsplit(resource).path
    return WELL_KNOWN + ("" if path in ("", "/") else path)


def metadata_url(resource: str) -> str:
    """The absolute URL of ``resource``'s metadata document."""
    parts = urlsplit(resource)
    return urlunsplit((parts.scheme, parts.netloc, metadata_path(resource), "", ""))


def document(
    *,
    resource: str,
    authorization_servers: Iterable[str],
    scopes: list[str],
    dpop_algorithms: Iterable[str] = (),
    dpop_required: bool = False,
) -> dict[str, Any]:
    """The metadata (RFC 9728 section 2) of this API."""
    body: dict[str, Any] = {
        "resource": resource,
        "authorization_servers": list(dict.fromkeys(authorization_servers)),
        "bearer_methods_supported": ["header"],
    }
    if scopes:
        body["scopes_supported"] = scopes
    algorithms = list(dpop_algorithms)
    if algorithms:
        body["dpop_signing_alg_values_supported"] = algorithms
        body["dpop_bound_access_tokens_required"] = dpop_required
    return body


def install_resource_metadata(
    app: FastAPI,
    *,
    resource: str,
    authorization_servers: Iterable[str],
    dpop_algorithms: Iterable[str] = (),
    dpop_required: bool = False,
) -> None:
    """Serve ``resource``'s metadata on ``app`` (built on first request: every route, and so
    every declared scope, is known by then)."""
    servers = tuple(authorization_servers)
    algorithms = tuple(dpop_algorithms)
    built: list[dict[str, Any]] = []

    async def protected_resource_metadata() -> JSONResponse:
        if not built:
            built.append(document(
                resource=resource, authorization_servers=servers, scopes=declared_scopes(app),
                dpop_algorithms=algorithms, dpop_required=dpop_required,
            ))  # fmt: skip
        headers = {"Cache-Control": "public, max-age=3600", "Access-Control-Allow-Origin": "*"}
        return JSONResponse(built[0], headers=headers)

    app.add_api_route(
        metadata_path(resource), protected_resource_metadata, methods=["GET"],
        include_in_schema=False,
    )  # fmt: skip
