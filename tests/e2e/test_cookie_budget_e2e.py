"""The default cookie budget (``max_cookie_bytes``: 12,000 bytes) and the cap on pending logins
(3, at most 1 KiB each) keep the browser's Cookie header within what a default uvicorn accepts:
h11 (uvicorn's HTTP parser) refuses a request head over 16 KiB once it arrives in more than one
read, as it does on a real network. A session over the budget is refused where it is set
(tests/test_session_attacks.py) instead of being written and lost."""

from __future__ import annotations

import h11
import httpx
import pytest

from fastapi_oidc_guard.testing import FakeClock, FakeIssuer

from ..web import web_app, web_guard
from ._server import ServedApp, free_socket

pytestmark = pytest.mark.e2e


CHROME_HEADERS = (
    b"Host: 127.0.0.1:8000\r\nConnection: keep-alive\r\n"
    b'sec-ch-ua: "Chromium";v="156", "Not)A;Brand";v="8"\r\nsec-ch-ua-mobile: ?0\r\n'
    b'sec-ch-ua-platform: "Linux"\r\nUpgrade-Insecure-Requests: 1\r\n'
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    b"Chrome/156.0.0.0 Safari/537.36\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    b"image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7\r\n"
    b"Sec-Fetch-Site: same-origin\r\nSec-Fetch-Mode: navigate\r\nSec-Fetch-User: ?1\r\n"
    b"Sec-Fetch-Dest: document\r\nReferer: http://127.0.0.1:8000/some/page?tab=2\r\n"
    b"Accept-Encoding: gzip, deflate, br, zstd\r\nAccept-Language: en-US,en;q=0.9,fr;q=0.8\r\n"
)


def test_the_worst_cookie_jar_an_attacker_can_cause_passes_a_default_uvicorn() -> None:
    """A session at the default budget plus the most pending-login cookies a hostile page can
    make the browser hold (3, each at the size cap, via long non-ASCII returnTo values), with a
    real browser's other headers, still fits uvicorn's 16 KiB request head when it arrives in
    MSS-sized reads; and the app answers it through a real uvicorn."""
    clock = FakeClock(1_800_000_000.0)
    issuer = FakeIssuer(clock=clock)
    sock = free_socket()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    guard = web_guard(issuer, clock, base_url=base)  # the default budget
    with ServedApp(web_app(guard), sock), httpx.Client(timeout=10) as browser:
        for bio in range(3_300, 1_000, -50):  # the largest session under the budget
            issuer.login_as("big", bio="x" * bio)
            browser.cookies.clear()
            start = browser.get(f"{base}/auth/login", follow_redirects=False)
            done = browser.get(issuer.authorize(start.headers["location"]), follow_redirects=False)
            if done.status_code == 302:
                break
        session = {c.name: c.value or "" for c in browser.cookies.jar}
        assert 11_000 < sum(len(v) for v in session.values()) <= 12_000
        for n in range(5):  # the hostile page starts logins: at most 3 stay pending
            browser.get(f"{base}/auth/login", params={"returnTo": f"/{n}" + "é" * 1000},
                        follow_redirects=False)  # fmt: skip
        jar = {c.name: c.value or "" for c in browser.cookies.jar}
        pending = [v for k, v in jar.items() if "_txn_" in k]
        assert len(pending) == 3 and all(len(v) <= 1024 for v in pending)
        assert browser.get(f"{base}/auth/profile").json()["bio"].startswith("xxx")
    cookie = "; ".join(f"{k}={v}" for k, v in jar.items()).encode()
    head = (
        b"GET /some/page?tab=3 HTTP/1.1\r\n" + CHROME_HEADERS + b"Cookie: " + cookie + b"\r\n\r\n"
    )
    assert len(head) < 16_384
    server = h11.Connection(h11.SERVER)
    event: object = h11.NEED_DATA
    for offset in range(0, len(head), 1460):
        server.receive_data(head[offset : offset + 1460])
        event = server.next_event()
        if isinstance(event, h11.Request):
            break
    assert isinstance(event, h11.Request)


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
