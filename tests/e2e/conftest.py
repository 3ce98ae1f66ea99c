"""Fixtures for end-to-end tests against a real OpenID Provider (panva/oidc-provider).

Without ``node`` or ``tests/e2e/provider/node_modules`` the tests are skipped, except
when the ``CI`` environment variable is set: then they fail, so CI never skips silently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ._provider import OIDCProviderProcess, missing_prerequisites
from ._server import require


def _require_provider() -> None:
    require("e2e OpenID Provider", missing_prerequisites())


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[OIDCProviderProcess]:
    """A provider shared by the whole session; don't rotate keys or reconfigure it."""
    _require_provider()
    with OIDCProviderProcess() as provider:
        yield provider


@pytest.fixture
def make_oidc_provider() -> Iterator[Callable[..., OIDCProviderProcess]]:
    """Factory for private providers (``OIDCProviderProcess`` kwargs), closed after the test."""
    _require_provider()
    started: list[OIDCProviderProcess] = []

    def make(overrides: dict[str, Any] | None = None, **kwargs: Any) -> OIDCProviderProcess:
        provider = OIDCProviderProcess(overrides, **kwargs)
        started.append(provider)
        return provider.start()

    yield make
    for provider in started:
        provider.close()
