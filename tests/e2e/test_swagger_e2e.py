"""Swagger UI's Authorize button, end to end in headless Chromium (issue #15): the example app
in development mode, /docs, Authorize (the docs page's public client, PKCE, the audience sent),
the development issuer's login page, then "Try it out" on a protected route answers 200.

Swagger UI's files come from the npm package ``swagger-ui-dist`` (installed with the e2e
provider's lockfile), served in place of FastAPI's CDN URLs: nothing is downloaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from example_app.app import create_app

from ._server import ServedApp, free_socket
from .test_browser_e2e import browser_page  # noqa: F401 (the fixture)

pytestmark = pytest.mark.e2e

DIST = Path(__file__).resolve().parent / "provider" / "node_modules" / "swagger-ui-dist"
CDN = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/"


def serve_swagger_locally(context: Any) -> None:
    if not (DIST / "swagger-ui-bundle.js").exists():
        pytest.fail(f"swagger-ui-dist missing: run `npm ci` in {DIST.parent.parent}")

    def local(route: Any) -> None:
        name = route.request.url.removeprefix(CDN).split("?")[0]
        kind = "text/css" if name.endswith(".css") else "application/javascript"
        route.fulfill(status=200, body=(DIST / name).read_bytes(), content_type=kind)

    context.route(CDN + "*", local)
    context.route("https://fastapi.tiangolo.com/**", lambda route: route.abort())


def test_swagger_authorize_then_try_it_out(browser_page: Any) -> None:  # noqa: F811
    page = browser_page
    serve_swagger_locally(page.context)
    sock = free_socket()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app, _ = create_app({}, base_url=base)
    with ServedApp(app, sock):
        page.goto(base + "/docs")
        page.click("button.authorize")
        # The OpenID Connect scheme's flow (discovery read by Swagger UI): the client id is
        # filled in from initOAuth; no secret.
        dialog = page.locator(".auth-container").filter(has_text="authorization_code").first
        dialog.wait_for()
        with page.expect_popup() as popup_info:
            dialog.locator("button.authorize").click()
        popup = popup_info.value
        popup.wait_for_selector("text=Development issuer")
        popup.fill("#login", "swagger-sam")
        popup.click("#submit")
        popup.wait_for_event("close", timeout=15_000)
        page.wait_for_selector("button.btn-done")
        page.click("button.btn-done")

        operation = page.locator("#operations-default-protected_api_protected_get")
        operation.locator(".opblock-summary").click()
        operation.locator("button.try-out__btn").click()
        operation.locator("button.execute").click()
        status = operation.locator(".live-responses-table tbody .response-col_status").first
        status.wait_for()
        assert status.inner_text().strip() == "200"
        body = operation.locator(".live-responses-table .microlight").first.inner_text()
        assert '"userId": "swagger-sam"' in body
