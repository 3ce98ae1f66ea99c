"""The apps under measurement: one FastAPI app per variant, all built the same way.

Every app is ``FastAPI(lifespan=guard.lifespan)`` with the guard installed and exactly one route
``GET /p`` answering ``{"sub": ...}``; only the route's dependency differs. So routing, error
handlers, middleware and response serialisation cost the same in every variant, and the
difference to the unprotected app is the dependency alone.

Baselines ("the common way"):

- ``pyjwt``: ``HTTPBearer`` + ``jwt.decode`` with the key pre-loaded once from the JWK
  (``jwt.PyJWK(jwk).key``) -- PyJWT's best case, no ``PyJWKClient`` lookup per request;
- ``jose``: ``HTTPBearer`` + python-jose's naive ``jose.jwt.decode(token, jwk_dict, ...)``, which
  rebuilds the key object from the JWK on every call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import jwt as pyjwt
from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jose import JWTError
from jose import jwt as jose_jwt

from fastapi_oidc_guard import OIDCGuard, User, require_user

__all__ = [
    "guarded_app",
    "jose_app",
    "noop_app",
    "pyjwt_app",
    "unprotected_app",
]

_bearer = HTTPBearer()


def _base(guard: OIDCGuard) -> FastAPI:
    app = FastAPI(lifespan=guard.lifespan)
    guard.install(app)
    return app


def unprotected_app(guard: OIDCGuard) -> FastAPI:
    """The baseline request: a route with no dependency."""
    app = _base(guard)

    @app.get("/p")
    async def endpoint() -> dict[str, str]:
        return {"sub": "anonymous"}

    return app


async def noop() -> None:
    """The cheapest possible async dependency (FastAPI's own machinery only)."""
    return None


def noop_app(guard: OIDCGuard) -> FastAPI:
    """A route with an async no-op dependency: the reference cost of any dependency."""
    app = _base(guard)

    @app.get("/p")
    async def endpoint(_: None = Depends(noop)) -> dict[str, str]:
        return {"sub": "anonymous"}

    return app


def guarded_app(guard: OIDCGuard) -> FastAPI:
    """The library's way: ``Depends(require_user)``."""
    app = _base(guard)

    @app.get("/p")
    async def endpoint(user: User = Depends(require_user)) -> dict[str, str]:
        return {"sub": user.sub}

    return app


Claims = dict[str, Any]


def _claims_app(guard: OIDCGuard, dependency: Callable[..., Awaitable[Claims]]) -> FastAPI:
    app = _base(guard)

    @app.get("/p")
    async def endpoint(claims: Claims = Depends(dependency)) -> dict[str, str]:
        return {"sub": str(claims["sub"])}

    return app


def pyjwt_app(guard: OIDCGuard, jwk: dict[str, Any], *, audience: str, issuer: str) -> FastAPI:
    """Hand-written PyJWT dependency, key pre-loaded once (PyJWT's best case)."""
    key = pyjwt.PyJWK(jwk).key

    async def pyjwt_claims(
        credentials: HTTPAuthorizationCredentials = Depends(_bearer),
    ) -> Claims:
        try:
            claims: Claims = pyjwt.decode(
                credentials.credentials, key=key, algorithms=["RS256"],
                audience=audience, issuer=issuer,
            )  # fmt: skip
        except pyjwt.InvalidTokenError as err:
            raise HTTPException(status_code=401, detail="invalid token") from err
        return claims

    return _claims_app(guard, pyjwt_claims)


def jose_app(guard: OIDCGuard, jwk: dict[str, Any], *, audience: str, issuer: str) -> FastAPI:
    """Hand-written python-jose dependency, naive use: the JWK dict is passed on every call."""

    async def jose_claims(
        credentials: HTTPAuthorizationCredentials = Depends(_bearer),
    ) -> Claims:
        try:
            claims: Claims = jose_jwt.decode(
                credentials.credentials, jwk, algorithms=["RS256"],
                audience=audience, issuer=issuer,
            )  # fmt: skip
        except JWTError as err:
            raise HTTPException(status_code=401, detail="invalid token") from err
        return claims

    return _claims_app(guard, jose_claims)
