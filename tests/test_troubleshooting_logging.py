"""The logging block of docs/troubleshooting.md, run as written under uvicorn: a refused token's
detailed reason and the start-up summary reach the output (``setLevel`` alone showed nothing)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import httpx

from .e2e._server import AppProcess, free_port

DOC = Path(__file__).resolve().parents[1] / "docs" / "troubleshooting.md"

APP = """
from fastapi import Depends, FastAPI

from fastapi_oidc_guard import OIDCGuard, User, require_user
from fastapi_oidc_guard.testing import FakeIssuer

{snippet}

issuer = FakeIssuer()
guard = OIDCGuard(
    issuer=issuer.issuer, audience=issuer.audience, transport=issuer.transport,
    client_id="app", client_secret="never-logged-secret",
)
app = FastAPI(lifespan=guard.lifespan)
guard.install(app)


@app.get("/ready")
async def ready() -> str:
    return "ok"


@app.get("/wrong-audience-token")
async def wrong_audience_token() -> str:
    return issuer.mint(aud="https://other.example.com")


@app.get("/p")
async def protected(user: User = Depends(require_user)) -> str:
    return user.sub
"""


def documented_block() -> str:
    blocks = re.findall(r"```python no-run\n(.*?)```", DOC.read_text(), re.S)
    [block] = [b for b in blocks if "fastapi_oidc_guard" in b and "StreamHandler" in b]
    return block


def test_the_documented_logging_setup_shows_reasons_under_uvicorn(tmp_path: Path) -> None:
    (tmp_path / "logging_app.py").write_text(
        APP.format(snippet=textwrap.dedent(documented_block()))
    )
    port = free_port()
    root = str(Path(__file__).resolve().parents[1])
    server = AppProcess("logging_app:app", {"PYTHONPATH": f"{tmp_path}:{root}"}, port,
                        ready_path="/ready")  # fmt: skip
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            token = client.get("/wrong-audience-token").json()
            refused = client.get("/p", headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 401
        output = server.output()
    finally:
        server.stop()
    assert "invalid_token (InvalidAudience)" in output, output
    assert "https://other.example.com" in output  # what was found, in the log only
    assert "other.example.com" not in refused.text
    assert "fastapi_oidc_guard: issuer https://issuer.example.test; audiences" in output
    assert "never-logged-secret" not in output
