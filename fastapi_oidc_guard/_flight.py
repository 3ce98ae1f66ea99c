"""Single flight: concurrent callers of one operation share one execution.

The package's one mechanism for it: :class:`SingleFlight` for one operation (discovery, a JWKS
fetch), :class:`KeyedSingleFlight` for one per key (a refresh per refresh token, a
client-credentials grant per audience).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["KeyedSingleFlight", "SingleFlight"]

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


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


class KeyedSingleFlight(Generic[K, T]):
    """One flight per key: callers of ``run(key, operation)`` that arrive while that key's
    operation is in flight share it (and its outcome, an exception included). A finished
    flight is forgotten, so the next call starts a new one."""

    def __init__(self) -> None:
        self._tasks: dict[K, asyncio.Task[T]] = {}

    def in_flight(self, key: K) -> bool:
        task = self._tasks.get(key)
        return task is not None and not task.done() and _is_current_loop(task)

    async def run(self, key: K, operation: Callable[[], Awaitable[T]]) -> T:
        task = self._tasks.get(key)
        if task is None or task.done() or not _is_current_loop(task):
            task = asyncio.ensure_future(operation())
            self._tasks[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        return await asyncio.shield(task)

    def _forget(self, key: K, task: asyncio.Task[T]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if not task.cancelled():
            task.exception()

    def __len__(self) -> int:
        return len(self._tasks)


def _is_current_loop(task: asyncio.Task[T]) -> bool:
    try:
        return task.get_loop() is asyncio.get_running_loop()
    except RuntimeError:
        return False
