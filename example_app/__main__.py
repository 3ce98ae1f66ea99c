"""``python -m example_app``: serve the example on http://127.0.0.1:8000 (``PORT`` to change)."""

from __future__ import annotations

import os

import uvicorn

from .app import create_app


def main() -> None:
    app, dev = create_app()
    port = int(os.environ.get("PORT", "8000"))
    if dev is not None:
        token = dev.mint(sub="dev-user", email="dev@example.invalid", scope="openid admin")
        banner = "=" * 78
        print(
            f"{banner}\n  DEVELOPMENT ISSUER: not for production. Set OIDC_ISSUER to use a real "
            f"provider.\n{banner}\n  Try:\n"
            f"    curl -s http://127.0.0.1:{port}/api/protected\n"
            f"    curl -s -H 'Authorization: Bearer {token}' "
            f"http://127.0.0.1:{port}/api/protected\n{banner}",
            flush=True,
        )
    uvicorn.run(app, host="127.0.0.1", port=port)


if __name__ == "__main__":
    main()
