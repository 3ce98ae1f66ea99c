"""The app run as separate uvicorn processes by test_instances_e2e.py (configured from OIDC_*)."""

from __future__ import annotations

from fastapi_oidc_guard import OIDCGuard

from ..web import web_app

app = web_app(OIDCGuard.from_env())
