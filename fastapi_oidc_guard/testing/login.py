"""Run the real login flow against the fake issuer from a test client (no browser needed)."""

from __future__ import annotations

from typing import Any, Protocol

import httpx

from .issuer import FakeIssuer

__all__ = ["alogin", "login"]


class _SyncClient(Protocol):
    def get(self, url: str, **kwargs: Any) -> httpx.Response: ...


def _authorize(issuer: FakeIssuer, response: httpx.Response, user: dict[str, Any] | None) -> str:
    if response.status_code != 302:
        raise AssertionError(f"login route answered {response.status_code}, expected 302")
    return issuer.authorize(response.headers["location"], user=user)


def login(
    client: _SyncClient,
    issuer: FakeIssuer,
    *,
    user: dict[str, Any] | None = None,
    return_to: str = "/",
    login_path: str = "/auth/login",
    **params: str,
) -> httpx.Response:
    """Sign ``user`` in through ``/auth/login`` -> fake issuer -> ``/auth/callback``.

    Works with ``fastapi.testclient.TestClient``; returns the callback's response (a 302 to
    ``return_to`` with the session cookie set, now in the client's cookie jar). ``user`` is a
    claims dict with at least ``sub``.
    """
    start = client.get(login_path, params={"returnTo": return_to, **params}, follow_redirects=False)
    return client.get(_authorize(issuer, start, user), follow_redirects=False)


async def alogin(
    client: httpx.AsyncClient,
    issuer: FakeIssuer,
    *,
    user: dict[str, Any] | None = None,
    return_to: str = "/",
    login_path: str = "/auth/login",
    **params: str,
) -> httpx.Response:
    """:func:`login` for an ``httpx.AsyncClient`` (e.g. over ``httpx.ASGITransport``)."""
    start = await client.get(
        login_path, params={"returnTo": return_to, **params}, follow_redirects=False
    )
    return await client.get(_authorize(issuer, start, user), follow_redirects=False)
