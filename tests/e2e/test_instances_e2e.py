"""Two real app processes (uvicorn, two ports on 127.0.0.1) sharing one real Redis, against the
real provider: log in through A, use the session on B; 20 concurrent requests split across A and B
on an expired access token cause exactly one refresh at the provider; the provider's back-channel
logout (after RP-initiated logout through A) ends the session on B; Redis made unreachable during
a bounded burst gives only 503s and 200s, and the sessions work again afterwards; a WebSocket
open on B closes when the provider's back-channel logout reaches A."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from ..redis_server import RedisServer
from ._provider import OIDCProviderProcess, drive_login, drive_logout
from ._server import AppProcess, free_port

pytestmark = pytest.mark.e2e

TTL = 3
APP = "tests.e2e.multi_app:app"


@pytest.fixture
def redis_for_e2e() -> Iterator[RedisServer]:
    import shutil

    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server missing in CI")
        pytest.skip("redis-server is not on PATH")
    with RedisServer() as server:
        yield server


def start_pair(
    make_oidc_provider: Callable[..., OIDCProviderProcess], redis_url: str, **extra: str
) -> tuple[OIDCProviderProcess, AppProcess, AppProcess]:
    """The provider and two app processes A and B on one Redis (A receives back-channel)."""
    port_a, port_b = free_port(), free_port()
    base = f"http://127.0.0.1:{port_a}"
    provider = make_oidc_provider({
        "client": {"redirect_uris": [f"{base}/auth/callback"],
                   "post_logout_redirect_uris": [f"{base}/"],
                   "backchannel_logout_uri": f"{base}/auth/backchannel-logout"},
        "api": {"access_token_ttl": TTL},
    })  # fmt: skip
    env = {
        "OIDC_ISSUER": provider.issuer, "OIDC_AUDIENCE": provider.api_identifier,
        "OIDC_CLIENT_ID": provider.client_id, "OIDC_CLIENT_SECRET": provider.client_secret,
        "OIDC_BASE_URL": base, "OIDC_SESSION_SECRET": "m" * 48,
        "OIDC_SESSION_BACKEND": "redis", "OIDC_REDIS_URL": redis_url, **extra,
    }  # fmt: skip
    a = AppProcess(APP, env, port_a)
    try:
        b = AppProcess(APP, env, port_b)
    except RuntimeError:
        a.stop()
        raise
    return provider, a, b


def test_backchannel_logout_on_a_while_b_holds_a_request(
    make_oidc_provider: Callable[..., OIDCProviderProcess], redis_for_e2e: RedisServer
) -> None:
    """Attack (issue #10, case 2): B has loaded the session and is due a touch; the provider's
    back-channel logout reaches A; B then saves. B must not bring the session back."""
    provider, a, b = start_pair(make_oidc_provider, redis_for_e2e.url, E2E_TOUCH_INTERVAL="0")
    try:
        with httpx.Client(timeout=15) as browser:
            callback = drive_login(browser, f"{a.url}/auth/login?prompt=consent", login="gina")
            browser.get(callback, follow_redirects=False)
            cookie = {"oidc_session": browser.cookies.get("oidc_session", path="/") or ""}
            assert httpx.get(f"{b.url}/api/protected", cookies=cookie).status_code == 200

            async def interleave() -> httpx.Response:
                async with httpx.AsyncClient(timeout=30, cookies=cookie) as tab:
                    held = asyncio.ensure_future(tab.get(f"{b.url}/held"))
                    assert (await tab.get(f"{b.url}/held/loaded")).status_code == 200
                    # The provider's own logout (no RP logout through A): back-channel to A.
                    end_session = provider.discovery()["end_session_endpoint"]
                    await asyncio.to_thread(drive_logout, browser, end_session)
                    assert provider.counters().get("backchannel_logout", 0) >= 1
                    await tab.post(f"{b.url}/held/release")
                    return await held

            late = asyncio.run(interleave())
            assert late.status_code == 200  # it started signed in
            renewed = [c for c in late.headers.get_list("set-cookie")
                       if c.startswith("oidc_session=") and "Max-Age=0" not in c]  # fmt: skip
            assert not renewed, "B brought the session back"
            for app in (a, b):
                gone = httpx.get(f"{app.url}/api/protected", cookies=cookie, timeout=10)
                assert gone.status_code == 401
    finally:
        a.stop()
        b.stop()


def test_two_processes_share_sessions_refresh_and_logout(
    make_oidc_provider: Callable[..., OIDCProviderProcess], redis_for_e2e: RedisServer
) -> None:
    provider, a, b = start_pair(make_oidc_provider, redis_for_e2e.url)
    base = a.url
    try:
        with httpx.Client(timeout=15) as browser:
            callback = drive_login(browser, f"{base}/auth/login?prompt=consent", login="frank")
            browser.get(callback, follow_redirects=False)
            assert browser.get(f"{a.url}/api/protected").json()["userId"] == "frank"
            # Cookies are per host, not per port: the browser sends the same cookie to B.
            assert browser.get(f"{b.url}/api/protected").json()["userId"] == "frank"

            provider.reset_counters()
            time.sleep(TTL + 1)
            cookie = {"oidc_session": browser.cookies.get("oidc_session", path="/") or ""}

            async def burst(paths: list[str]) -> list[httpx.Response]:
                async with httpx.AsyncClient(timeout=15, cookies=cookie) as tab:
                    return await asyncio.gather(*(tab.get(p) for p in paths))

            urls = [f"{(a if n % 2 else b).url}/api/short-token" for n in range(20)]
            responses = asyncio.run(burst(urls))
            assert [r.status_code for r in responses] == [200] * 20, [r.text for r in responses]
            assert len({r.json()["token"] for r in responses}) == 1
            assert provider.counters().get("token_refresh_token") == 1, provider.counters()

            # Redis unreachable during a bounded burst: only 503s and 200s, nothing half-written.
            redis_for_e2e.pause()
            during = asyncio.run(burst([f"{b.url}/api/protected"] * 10))
            redis_for_e2e.resume()
            assert {r.status_code for r in during} <= {200, 503}
            assert 503 in {r.status_code for r in during}
            assert browser.get(f"{b.url}/api/protected").status_code == 200  # still valid

            logout = browser.post(f"{a.url}/auth/logout", follow_redirects=False)
            drive_logout(browser, logout.headers["location"])
            assert provider.counters().get("backchannel_logout", 0) >= 1
            # B never saw the logout request: the back-channel logout reached A, and Redis
            # carried it. Present the old cookie to B directly:
            gone = httpx.get(f"{b.url}/api/protected", cookies=cookie, timeout=10)
            assert gone.status_code == 401
    finally:
        a.stop()
        b.stop()


def test_socket_on_b_closes_when_the_back_channel_logout_reaches_a(
    make_oidc_provider: Callable[..., OIDCProviderProcess], redis_for_e2e: RedisServer
) -> None:
    """Issue #12: a live socket on B, authenticated by the session cookie, is closed (1008,
    ``session_ended``) when the provider's back-channel logout reaches A: the end travels
    through Redis, B's check sees it. Another socket opened afterwards is refused."""
    from websockets.exceptions import ConnectionClosed, InvalidStatus
    from websockets.sync.client import connect

    provider, a, b = start_pair(make_oidc_provider, redis_for_e2e.url)
    try:
        with httpx.Client(timeout=15) as browser:
            callback = drive_login(browser, f"{a.url}/auth/login?prompt=consent", login="hana")
            browser.get(callback, follow_redirects=False)
            cookie = browser.cookies.get("oidc_session", path="/") or ""
            headers = {"Cookie": f"oidc_session={cookie}", "Origin": a.url}
            ws_url = f"ws://127.0.0.1:{b.port}/ws/live"
            with connect(ws_url, additional_headers=headers, open_timeout=10) as socket:
                assert socket.recv(timeout=10) == "hello hana"
                socket.send("ping")
                assert socket.recv(timeout=10) == "ping"
                end_session = provider.discovery()["end_session_endpoint"]
                drive_logout(browser, end_session)  # the provider's logout: back-channel to A
                assert provider.counters().get("backchannel_logout", 0) >= 1
                with pytest.raises(ConnectionClosed) as closed:
                    socket.recv(timeout=10)  # the check runs every 0.2 s
                assert closed.value.rcvd is not None
                assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "session_ended")
            with pytest.raises(InvalidStatus) as refused:  # closed before accept: HTTP 403
                connect(ws_url, additional_headers=headers, open_timeout=10)
            assert refused.value.response.status_code == 403
    finally:
        a.stop()
        b.stop()
