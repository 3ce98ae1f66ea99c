"""``python -m example_app``: serve the example on http://127.0.0.1:8000 (``PORT`` to change)."""

from __future__ import annotations

import os

import uvicorn

from .app import create_app, development_banner


def main() -> None:
    port = int(os.environ.get("PORT", "8000"))
    try:
        app, dev = create_app()
    except RuntimeError as err:  # half-configured: say why, without a traceback
        raise SystemExit(f"example_app: {err}") from None
    if dev is not None:
        print(development_banner(dev, str(port)), flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port)


if __name__ == "__main__":
    main()
