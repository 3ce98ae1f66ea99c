"""Single flight: concurrent callers of one operation share one execution."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["SingleFlight"]

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Runs ``operation`` once for all callers that arrive while it is in flight.

    The operation runs in its own task, so a caller that is cancelled does not cancel the
    others' fetch. A task left over from another (closed) event loop is ignored.
    """

    def __init__(self, operation: Callable[[], Awaitable[T]]) -> None:
        self._operation = operation
        self._task: asyncio.Task[T] | None = None
        self.background: set[asyncio.Task[T]] = set()

    @property
    def in_flight(self) -> bool:
        task = self._task
        return task is not None and not task.done() and _is_current_loop(task)

    def start(self) -> asyncio.Task[T]:
        """Start the operation unless it is already running; return its task."""
        task = self._task
        if task is None or task.done() or not _is_current_loop(task):
            task = asyncio.ensure_future(self._operation())
            self._task = task
            # Keep a reference until it finishes, and retrieve an exception nobody awaited.
            self.background.add(task)
            task.add_done_callback(self._forget)
        return task

    async def run(self) -> T:
        """Join the flight in progress, or start one, and wait for its result."""
        return await asyncio.shield(self.start())

    def _forget(self, task: asyncio.Task[T]) -> None:
        self.background.discard(task)
        if not task.cancelled():
            task.exception()

    def cancel(self) -> None:
        for task in list(self.background):
            task.cancel()


def _is_current_loop(task: asyncio.Task[T]) -> bool:
    try:
        return task.get_loop() is asyncio.get_running_loop()
    except RuntimeError:
        return False
