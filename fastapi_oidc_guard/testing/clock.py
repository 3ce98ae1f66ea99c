"""A clock that tests move by hand, shared by the guard and the fake issuer."""

from __future__ import annotations

import time

__all__ = ["FakeClock"]


class FakeClock:
    """Callable returning Unix time; ``advance`` moves it. Tests never sleep to pass time."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
