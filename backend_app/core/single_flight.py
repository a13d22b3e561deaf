"""Single-flight: concurrent callers asking for the same key share one run of the work (per process)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class SingleFlight:
    """Concurrent callers asking for the same key share one run of the work (one per process).

    The work runs as its own task, so a caller that goes away (client hung up)
    does not cancel it for the others; every caller gets its result or its
    exception. The key is forgotten as soon as the work finishes, so a later
    call runs the work again (the page cache, not this, remembers results).
    """

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Task[Any]] = {}

    @property
    def in_flight(self) -> int:
        """Keys being computed now."""
        return len(self._running)

    async def run(self, key: str, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """``await work()`` once for all concurrent callers with ``key``; returns (or raises) its outcome.

        Callers sharing a key must ask for the same work: the first caller's runs.
        """
        task: asyncio.Task[T] | None = self._running.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(work())
            self._running[key] = task
            task.add_done_callback(functools.partial(self._forget, key))
        return await asyncio.shield(task)

    def _forget(self, key: str, task: asyncio.Task[Any]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # retrieved: a failure every caller already saw is not "never retrieved"
