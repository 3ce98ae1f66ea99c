"""The example app.

With ``OIDC_ISSUER`` set, it is configured from the ``OIDC_*`` variables against a real provider.
Without it, it runs against an in-process *development issuer* (the library's fake issuer) and
prints a ready-to-use bearer token: zero configuration, never for production.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from fastapi import Depends, FastAPI

from fastapi_oidc_guard import OIDCGuard, User, require_scopes, require_user
from fastapi_oidc_guard.testing import FakeIssuer

# Any of these means someone is configuring a real deployment: never fall back to development.
PRODUCTION_MARKERS = ("OIDC_CLIENT_SECRET", "OIDC_SESSION_SECRET", "OIDC_AUDIENCE")


def development_issuer(environ: Mapping[str, str]) -> FakeIssuer:
    """The development issuer, refused when any production setting is present."""
    present = [name for name in PRODUCTION_MARKERS if environ.get(name)]
    if present:
        raise RuntimeError(
            f"{', '.join(present)} set but OIDC_ISSUER is not: refusing to start the development "
            "issuer. Set OIDC_ISSUER to your provider's issuer URL."
        )
    return FakeIssuer("https://dev-issuer.invalid", audience="https://example-api.invalid")


def create_app(environ: Mapping[str, str] | None = None) -> tuple[FastAPI, FakeIssuer | None]:
    """Build the app; the second item is the development issuer, or ``None`` when configured."""
    env = os.environ if environ is None else environ
    dev: FakeIssuer | None = None
    if env.get("OIDC_ISSUER"):
        guard = OIDCGuard.from_env(env)
    else:
        dev = development_issuer(env)
        guard = OIDCGuard(issuer=dev.issuer, audience=dev.audience, transport=dev.transport)

    app = FastAPI(title="fastapi_oidc_guard example", lifespan=guard.lifespan)
    guard.install(app)

    @app.get("/api/public")
    async def public() -> dict[str, str]:
        return {"message": "Anyone can read this."}

    @app.get("/api/protected")
    async def protected(user: User = Depends(require_user)) -> dict[str, object]:
        return {"userId": user.sub, "email": user.email, "scopes": sorted(user.scopes)}

    @app.get("/api/admin")
    async def admin(user: User = Depends(require_scopes("admin"))) -> dict[str, str]:
        return {"message": f"Hello admin {user.sub}"}

    return app, dev
