"""``python -m benchmarks`` runs and measures what it claims (no timing assertions: ratios only
make sense on a quiet machine; this checks the harness, not the speed)."""

from __future__ import annotations

from benchmarks import run


def test_benchmark_quick_run_produces_ratios() -> None:
    results = run(quick=True, rounds=2)
    names = {v["name"] for v in results["variants"]}
    assert {"floor", "unprotected", "require_user_new", "require_user_hit", "pyjwt", "jose",
            "require_user_session"} <= names  # fmt: skip
    assert results["floor_us"] > 0
    assert all(isinstance(t["value_floors"], float) for t in results["targets"])


def test_scale_measurements_run_small(redis_server: object) -> None:
    """``python -m benchmarks.scale`` at toy sizes: one row per size, RSS samples taken."""
    import asyncio

    from benchmarks.scale import measure_rss, measure_sessions

    rows = asyncio.run(measure_sessions(redis_server.url, [50, 200], repeat=3))  # type: ignore[attr-defined]
    assert [row["sessions"] for row in rows] == [50, 200]
    assert all(row["read_ms"] > 0 and row["bytes_per_session"] > 0 for row in rows)
    samples = asyncio.run(measure_rss(40, every=20))
    assert [count for count, _ in samples] == [0, 20, 40]


def test_load_run_under_uvicorn_and_wrk() -> None:
    """``python -m benchmarks.load`` at its smallest: every variant answered 200 under wrk (a
    non-2xx or socket error raises), and the target ratios are computed and rendered."""
    import os
    import shutil

    import pytest

    from benchmarks.load import measure, render

    if shutil.which("wrk") is None:
        if os.environ.get("CI"):
            pytest.fail("wrk is not on PATH: CI must install the Debian package")
        pytest.skip("wrk (Debian package) not installed")
    result = measure(1, 1, warmup=0)
    assert set(result["ratios"]) == {"new", "repeated", "session"}
    assert all(value > 0 for value in result["rps"].values())
    assert render(result).count("target 6") == 3
