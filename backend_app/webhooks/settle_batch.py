"""Delivery outcomes written together: one ``bulk_write`` for the outcomes of the attempts finishing at once."""

from __future__ import annotations

import asyncio
from typing import Any

from backend_app.core.db import MongoDatabase
from backend_app.webhooks import repository

#: How long the first finished attempt waits for others to share its outcome's write, in seconds.
SETTLE_GATHER_S = 0.01


class SettleBatch:
    """Writes the outcomes of concurrent attempts together: one ``bulk_write`` for all outcomes waiting.

    Each caller still waits until its own outcome is written (the lease is
    released only then), so batching changes the number of round trips, not
    what any caller may assume afterwards.
    """

    def __init__(self, db: MongoDatabase) -> None:
        self.db = db
        self._queue: list[tuple[dict[str, Any], asyncio.Future[bool]]] = []
        self._worker: asyncio.Task[None] | None = None

    async def settle(
        self, *, delivery_id: Any, token: str, changes: dict[str, Any], attempt: dict[str, Any] | None
    ) -> bool:
        """Queue one outcome (see ``repository.settle``) and wait until it is written; False if the lease was lost."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append(
            ({"delivery_id": delivery_id, "token": token, "changes": changes, "attempt": attempt}, future)
        )
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        await asyncio.sleep(SETTLE_GATHER_S)  # let the attempts finishing together share one write
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                written = await repository.settle_many(self.db, outcomes=[item for item, _f in batch])
            except BaseException as exc:
                for _item, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for (_item, future), ok in zip(batch, written, strict=True):
                if not future.done():
                    future.set_result(ok)
