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

import base64
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import jwt as pyjwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jose import JWTError
from jose import jwt as jose_jwt

from fastapi_oidc_guard import OIDCGuard, User, require_user

__all__ = [
    "guarded_app",
    "ideal_app",
    "ideal_dependency",
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


def ideal_app(guard: OIDCGuard, public_key: Any, *, audience: str, issuer: str) -> FastAPI:
    """A route with the hand-written ideal dependency (:func:`ideal_dependency`)."""
    return _claims_app(guard, ideal_dependency(public_key, audience=audience, issuer=issuer))


def ideal_dependency(
    public_key: Any, *, audience: str, issuer: str
) -> Callable[[Request], Awaitable[Claims]]:
    """The hand-written ideal: split the JWS, ``json.loads`` header and claims, one
    ``cryptography`` RS256 verify with a key loaded once, check ``exp``/``iss``/``aud``/``sub``;
    no cache, no model. What a careful developer writes for one provider and one key."""
    pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()

    def b64(segment: str) -> bytes:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))

    async def ideal_claims(request: Request) -> Claims:
        authorization = request.headers.get("authorization", "")
        if not authorization.startswith("Bearer "):
            raise HTTPException(status_code=401, detail="not authenticated")
        try:
            head, body, signature = authorization[7:].split(".")
            header, claims = json.loads(b64(head)), json.loads(b64(body))
            if header.get("alg") != "RS256":
                raise ValueError("alg")
            public_key.verify(b64(signature), f"{head}.{body}".encode(), pkcs1, sha256)
        except (ValueError, InvalidSignature) as err:
            raise HTTPException(status_code=401, detail="invalid token") from err
        aud = claims.get("aud")
        if (
            not isinstance(claims.get("exp"), int | float) or claims["exp"] <= time.time()
            or claims.get("iss") != issuer
            or not (aud == audience or (isinstance(aud, list) and audience in aud))
            or not isinstance(claims.get("sub"), str) or not claims["sub"]
        ):  # fmt: skip
            raise HTTPException(status_code=401, detail="invalid token")
        return claims  # type: ignore[no-any-return]

    return ideal_claims


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
