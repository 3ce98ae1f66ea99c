"""``python -m example_app``: serve the example on http://127.0.0.1:8000 (``PORT`` to change)."""

from __future__ import annotations

import os

import uvicorn

from .app import create_app


def main() -> None:
    port = int(os.environ.get("PORT", "8000"))
    try:
        app, dev = create_app()
    except RuntimeError as err:  # half-configured: say why, without a traceback
        raise SystemExit(f"example_app: {err}") from None
    if dev is not None:
        token = dev.mint(sub="dev-user", email="dev@example.invalid", scope="openid")
        banner = "=" * 78
        print(
            f"{banner}\n  DEVELOPMENT ISSUER at http://127.0.0.1:{port}/_dev-issuer: not for "
            f"production.\n  Set OIDC_ISSUER (and the other OIDC_* variables) to use a real "
            f"provider.\n{banner}\n"
            f"  Open http://127.0.0.1:{port}/ and log in as any user name.\n"
            f"  Or call the API with a bearer token:\n"
            f"    curl -s -H 'Authorization: Bearer {token}' "
            f"http://127.0.0.1:{port}/api/protected\n{banner}",
            flush=True,
        )
    uvicorn.run(app, host="127.0.0.1", port=port)


if __name__ == "__main__":
    main()
