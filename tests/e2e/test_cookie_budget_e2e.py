"""The default cookie budget (``max_cookie_bytes``: 14,000 bytes, 4 chunks) is what a default
uvicorn accepts: a session at the budget works through a real uvicorn, and h11 (uvicorn's HTTP
parser) refuses a request head over 16 KiB once it arrives in more than one read, as it does on
a real network. A session far over the budget is therefore refused where it is set
(tests/test_session_attacks.py) instead of being written and lost."""

from __future__ import annotations

import h11
import httpx
import pytest

from fastapi_oidc_guard.testing import FakeClock, FakeIssuer

from ..web import web_app, web_guard
from ._server import ServedApp, free_socket

pytestmark = pytest.mark.e2e


def test_a_session_at_the_default_budget_passes_a_default_uvicorn() -> None:
    clock = FakeClock(1_800_000_000.0)
    issuer = FakeIssuer(clock=clock)
    sock = free_socket()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    guard = web_guard(issuer, clock, base_url=base)  # the default budget
    with ServedApp(web_app(guard), sock), httpx.Client(timeout=10) as browser:
        issuer.login_as("big", bio="x" * 3_300)
        start = browser.get(f"{base}/auth/login", follow_redirects=False)
        browser.get(issuer.authorize(start.headers["location"]), follow_redirects=False)
        jar = {c.name: c.value or "" for c in browser.cookies.jar if "_txn_" not in c.name}
        assert len(jar) == 4  # four chunks
        assert 10_000 < sum(len(v) for v in jar.values()) <= 14_000
        assert browser.get(f"{base}/auth/profile").json()["bio"] == "x" * 3_300


@pytest.mark.parametrize(("cookie_bytes", "accepted"), [(14_000, True), (18_000, False)])
def test_h11_refuses_a_head_over_16_kib_arriving_in_pieces(
    cookie_bytes: int, accepted: bool
) -> None:
    head = (
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Mozilla/5.0\r\n"
        + b"Cookie: s="
        + b"a" * cookie_bytes
        + b"\r\n\r\n"
    )
    server = h11.Connection(h11.SERVER)  # uvicorn's defaults: 16 KiB for an incomplete event
    try:
        for offset in range(0, len(head), 1460):  # what a network delivers: MSS-sized reads
            server.receive_data(head[offset : offset + 1460])
            event = server.next_event()
            if isinstance(event, h11.Request):
                break
        got_request = isinstance(event, h11.Request)
    except h11.RemoteProtocolError:
        got_request = False
    assert got_request is accepted
