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
