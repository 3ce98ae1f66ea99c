"""The example app in a real headless Chromium (Debian's, driven by Playwright; nothing is
downloaded): log in through the development issuer's page, see the protected page, see the fetch
result and the bundled API's answer, open the live page's WebSocket and see it closed (1008
session_ended) when another tab logs out, log in again, log out with the page's POST form."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from example_app.app import create_app

from ._server import ServedApp, free_socket

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser_page() -> Iterator[Any]:
    missing = []
    if not os.path.exists(CHROMIUM):
        missing.append("Debian chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing.append("playwright (pip)")
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"browser test prerequisites missing in CI: {missing}", pytrace=False)
        pytest.skip(f"browser test prerequisites missing: {missing}")
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=FLAGS
        )
        try:
            page = context.new_page()
            page.set_default_timeout(15_000)
            yield page
        finally:
            context.close()
    shutil.rmtree(profile, ignore_errors=True)


def login_again(page: Any, base: str) -> None:
    page.goto(base + "/")
    page.click("#login")
    page.wait_for_selector("text=Development issuer")
    page.fill("#login", "carol")
    page.click("#submit")
    page.wait_for_selector("#greeting")


def test_example_app_in_headless_chromium(browser_page: Any) -> None:
    page = browser_page
    sock = free_socket()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app, _ = create_app({}, base_url=base)
    with ServedApp(app, sock):
        page.goto(base + "/")
        assert "development issuer" in page.inner_text("body")
        page.click("#login")
        page.wait_for_selector("text=Development issuer")
        page.fill("#login", "carol")
        page.click("#submit")
        page.wait_for_selector("#greeting")
        assert page.inner_text("#greeting") == "Hello, carol!"

        page.goto(base + "/profile")
        assert page.inner_text("#profile") == "Profile of carol"

        page.goto(base + "/fetch-demo")
        page.wait_for_function("document.getElementById('result').textContent.startsWith('200')")
        assert '"userId":"carol"' in page.inner_text("#result")
        page.click("#external-button")
        page.wait_for_function("document.getElementById('external').textContent.length > 0")
        assert "Secret data for carol" in page.inner_text("#external")
        page.screenshot(path=os.path.join(tempfile.gettempdir(), "example-fetch-demo.png"))

        # A socket that lives as long as the session: logging out in another tab closes it.
        page.goto(base + "/live")
        page.wait_for_function("document.getElementById('log').textContent.includes('carol:')")
        other_tab = page.context.new_page()
        other_tab.goto(base + "/")
        other_tab.click("form[method='post'][action='/auth/logout'] button[type='submit']")
        other_tab.wait_for_selector("#login")
        page.wait_for_function("document.getElementById('closed').textContent.length > 0")
        assert page.inner_text("#closed") == "1008 session_ended"
        other_tab.close()
        login_again(page, base)

        page.goto(base + "/")
        # Logging out is a form POST (Chromium sends Origin: same-origin), not a link
        page.click("form[method='post'][action='/auth/logout'] button[type='submit']")
        page.wait_for_selector("#login")  # back on the registered post-logout page, signed out
        assert page.url.startswith(base + "/?state=")  # the logout's state comes back
        response = page.goto(base + "/api/protected")
        assert response is not None and response.status == 401
        page.goto(base + "/profile")
        page.wait_for_selector("text=Development issuer")  # a page redirects to login again
