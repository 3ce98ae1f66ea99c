"""Benchmarks of ``fastapi_oidc_guard``: ``python -m benchmarks [--quick] [--rounds N] [--json]``.

Results are ratios to the "floor" (a raw ``cryptography`` RS256 verify), measured in one run
(targets: the README, "Benchmarks"). :func:`run` returns them as a dict, for a smoke test::

    results = run(quick=True)
    assert results["added_floors"]["require_user_new"] is not None
"""

from __future__ import annotations

from .asgi import BadResponse
from .runner import Settings, run, run_async, settings_for

__all__ = ["BadResponse", "Settings", "run", "run_async", "settings_for"]
