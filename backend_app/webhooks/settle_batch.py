"""Delivery outcomes written together: one write per kind for the outcomes of the attempts finishing at once."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, TypeVar

from bson import ObjectId

from backend_app.core.db import MongoDatabase
from backend_app.events import service as events
from backend_app.webhooks import repository
from backend_app.webhooks.documents import AttemptRecord, DeliveryDocument

#: What one queue holds: an outcome to settle, or a first attempt's delivery to insert.
_Item = TypeVar("_Item", bound=Mapping[str, Any])

#: How long the first finished attempt waits for others to share its outcome's write, in seconds.
SETTLE_GATHER_S = 0.01


class SettleBatch:
    """Writes the outcomes of concurrent attempts together, and takes events out of the outbox when they are done.

    Two kinds of outcome share a round:

    - a later attempt's (the delivery exists, leased): one ``bulk_write`` of
      conditional updates (``repository.settle_many``);
    - a first attempt's (the delivery does not exist yet; the event's outbox
      lease covered the attempt): one ``insert_many`` of the new deliveries
      (``repository.record_first_outcomes``), then one ``update_many`` taking
      out of the outbox every event whose first attempts are all recorded.

    An event leaves the outbox only after every one of its deliveries exists,
    so a process dying in between leaves the event to be claimed again, and the
    claimer skips the pairs already recorded. Each caller waits until its own
    outcome is written, so batching changes the number of round trips, not what
    any caller may assume afterwards.
    """

    def __init__(self, db: MongoDatabase) -> None:
        self.db = db
        self._queue: list[tuple[dict[str, Any], asyncio.Future[bool]]] = []
        self._firsts: list[tuple[DeliveryDocument, asyncio.Future[bool]]] = []
        self._worker: asyncio.Task[None] | None = None
        #: Event id → first attempts not recorded yet; an event absent here is never taken out of the outbox.
        self._open: dict[ObjectId, int] = {}

    def expect(self, event_id: ObjectId, attempts: int) -> None:
        """Announce ``attempts`` first attempts of ``event_id``: the event leaves the outbox once all are recorded."""
        self._open[event_id] = attempts

    def abandon(self, event_id: ObjectId) -> None:
        """Leave ``event_id`` in the outbox (an attempt was not made or not recorded): it is claimed again later."""
        self._open.pop(event_id, None)

    def expected(self) -> int:
        """First attempts announced and not recorded yet (for draining)."""
        return sum(self._open.values())

    async def settle(
        self, *, delivery_id: Any, token: str, changes: dict[str, Any], attempt: AttemptRecord | None
    ) -> bool:
        """Queue one outcome (see ``repository.settle``) and wait until it is written; False if the lease was lost."""
        item = {"delivery_id": delivery_id, "token": token, "changes": changes, "attempt": attempt}
        return await self._enqueue(self._queue, item)

    async def record_first(self, document: DeliveryDocument) -> bool:
        """Queue a first attempt's delivery (``repository.first_outcome_document``) and wait until it is stored.

        Returns False when another process had already recorded that pair.
        """
        return await self._enqueue(self._firsts, document)

    async def _enqueue(self, queue: list[tuple[_Item, asyncio.Future[bool]]], item: _Item) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        queue.append((item, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        await asyncio.sleep(SETTLE_GATHER_S)  # let the attempts finishing together share one write
        while self._queue or self._firsts:
            if self._firsts:
                firsts, self._firsts = self._firsts, []
                await self._write(firsts, self._record_firsts)
            if self._queue:
                batch, self._queue = self._queue, []
                await self._write(batch, self._settle_many)

    async def _write(self, batch: list[tuple[_Item, asyncio.Future[bool]]], write: Any) -> None:
        try:
            written = await write([item for item, _f in batch])
        except BaseException as exc:
            for _item, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for (_item, future), ok in zip(batch, written, strict=True):
            if not future.done():
                future.set_result(ok)

    async def _settle_many(self, items: list[dict[str, Any]]) -> list[bool]:
        return await repository.settle_many(self.db, outcomes=items)

    async def _record_firsts(self, documents: list[DeliveryDocument]) -> list[bool]:
        try:
            refused = await repository.record_first_outcomes(self.db, documents=documents)
        except BaseException:
            for doc in documents:  # some may be stored: the event stays in the outbox, a claimer skips those
                self.abandon(doc["event_id"])
            raise
        done: list[ObjectId] = []
        for doc in documents:
            left = self._open.get(doc["event_id"])
            if left is None:
                continue
            if left <= 1:
                del self._open[doc["event_id"]]
                done.append(doc["event_id"])
            else:
                self._open[doc["event_id"]] = left - 1
        # An event whose outbox flag stays after a failure here is claimed again; its deliveries exist.
        await events.mark_fanned_out(self.db, event_ids=done)
        return [i not in refused for i in range(len(documents))]
