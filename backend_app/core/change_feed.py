"""A change stream as an invalidation signal: "these documents changed" plus "I have seen everything up to t".

One :class:`ChangeFeed` per process watches some collections of a database
(one database-level change stream filtered on ``ns.coll``) and calls
``on_change(collection, document_id)`` for every insert, update, replace or
delete, and ``on_reset()`` whenever it cannot say which documents changed: a
drop, rename or ``invalidate`` event, a stream (re)opened after an error, or
the driver resuming the stream on its own.

:meth:`ChangeFeed.caught_up` is the part a cache relies on. The stream is read
with ``getMore`` commands that wait at most ``max_await_ms`` for new events; a
``getMore`` sent at monotonic time ``t`` that comes back with fewer events than
``batch_size`` (none, or a short batch, once all of it is handled) proves that
every change committed before ``t`` has been handed to ``on_change``. That
``t`` is the *confirmation*; ``caught_up()`` is true only while the newest
confirmation is less than ``max_staleness_s`` old. So a change committed at
``T`` is reflected by every cache read after ``T + max_staleness_s``, whatever
happens to the stream: when it errors, hangs or the database fails over, no
new confirmation arrives and ``caught_up()`` turns false within the bound.

Works the same on MongoDB replica sets and Atlas (change streams need a
replica set there) and on SecantusDB. A change stream shows majority-committed
writes, so on a replica set the bound counts from the majority commit
(the default write concern since MongoDB 5.0 acknowledges exactly then).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from pymongo.errors import PyMongoError

from backend_app.core.db import MongoDatabase

logger = logging.getLogger(__name__)

#: Change events that name one document (``documentKey._id``); any other event resets the consumer.
DOCUMENT_EVENTS = frozenset({"insert", "update", "replace", "delete"})


class ChangeFeed:
    """Watch ``collections`` of ``db``; report each changed document and how current the report is.

    Args:
        db: the database to watch.
        collections: names of the watched collections.
        on_change: ``(collection, document _id)`` for each changed document.
        on_reset: called when changes may have been missed or cannot be
            attributed: the consumer must forget everything it derived.
        max_staleness_s: :meth:`caught_up` is false once the newest
            confirmation is this old (seconds).
        max_await_ms: how long one ``getMore`` waits for events (ms); must be
            well under ``max_staleness_s`` so that an idle stream confirms in time.
        batch_size: ``getMore`` batch size; a shorter batch means "caught up".
        retry_s: pause before reopening a stream that failed (seconds).
        operations: the document events reported (default all of :data:`DOCUMENT_EVENTS`); a
            consumer that only derives from existing documents can leave out ``insert``.
    """

    def __init__(
        self,
        db: MongoDatabase,
        collections: Sequence[str],
        *,
        on_change: Callable[[str, Any], None],
        on_reset: Callable[[], None],
        max_staleness_s: float,
        max_await_ms: int = 200,
        batch_size: int = 1000,
        retry_s: float = 0.25,
        operations: frozenset[str] = DOCUMENT_EVENTS,
    ) -> None:
        self._db = db
        self._collections = list(collections)
        self._on_change = on_change
        self._on_reset = on_reset
        self.max_staleness_s = max_staleness_s
        self._max_await_ms = max_await_ms
        self._batch_size = batch_size
        self._retry_s = retry_s
        self._operations = operations
        self._confirmed: float | None = None
        self._task: asyncio.Task[None] | None = None
        #: Streams opened so far (1 + reopenings after errors); for logs and tests.
        self.openings = 0

    def caught_up(self) -> bool:
        """Whether every change committed more than ``max_staleness_s`` ago has been reported."""
        confirmed = self._confirmed
        return confirmed is not None and time.monotonic() - confirmed < self.max_staleness_s

    def start(self) -> None:
        """Start watching in a background task of the running event loop."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="change-feed")

    async def stop(self) -> None:
        """Stop watching (the stream is closed)."""
        task, self._task = self._task, None
        self._confirmed = None
        if task is not None:
            task.cancel()
            # Bounded: a shutdown must not wait on a stream that is still closing on an unreachable server.
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(task, timeout=1.0)

    async def _run(self) -> None:
        failures = 0
        while True:
            opened = self.openings
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except PyMongoError as exc:
                # A standalone MongoDB has no change streams: the consumer simply never catches up.
                log = logger.warning if failures == 0 else logger.debug
                log("change stream on %s failed (%s); reopening", ",".join(self._collections), exc)
            except Exception:  # a bug here must not end invalidation for good: log, reset, reopen
                logger.exception("change stream consumer failed; reopening")
            self._confirmed = None
            self._on_reset()
            failures = 0 if self.openings > opened else failures + 1
            await asyncio.sleep(min(self._retry_s * 2 ** min(failures, 5), 5.0))

    async def _follow(self) -> None:
        pipeline = [{"$match": {"ns.coll": {"$in": self._collections}}}]
        async with await self._db.watch(
            pipeline, max_await_time_ms=self._max_await_ms, batch_size=self._batch_size
        ) as stream:
            self.openings += 1
            # Opened before the reset: every change after this point reaches on_change, so what the
            # consumer derives from reads made after the reset is invalidated in time.
            self._on_reset()
            cursor = stream._cursor  # the driver replaces it when it resumes on its own
            pending: float | None = None  # send time of the batch being handled, if it was a short one
            while True:
                buffered = _buffered(stream)
                sent = time.monotonic()
                change = await stream.try_next()
                if stream._cursor is not cursor:  # resumed by the driver: we cannot know what was missed
                    cursor = stream._cursor
                    self._confirmed = None
                    self._on_reset()
                    continue
                if change is None:
                    if not stream.alive:
                        # Closed by the server (e.g. its database was dropped): ``try_next`` would return
                        # ``None`` at once, forever, without yielding to the event loop. Reopen instead.
                        self._confirmed = None
                        return
                    self._confirmed = sent  # an empty getMore sent at ``sent``: nothing older is unreported
                    await asyncio.sleep(0)  # let a cancellation in even if the driver answered from memory
                    continue
                if buffered == 0:  # this call fetched a new batch
                    left = _buffered(stream)
                    pending = sent if left is not None and left + 1 < self._batch_size else None
                self._report(change)
                if pending is not None and _buffered(stream) == 0:
                    self._confirmed, pending = pending, None
                if change.get("operationType") == "invalidate":
                    return  # the stream is closed; reopen

    def _report(self, change: dict[str, Any]) -> None:
        kind = change.get("operationType")
        key = change.get("documentKey") or {}
        if kind in DOCUMENT_EVENTS and "_id" in key:
            if kind in self._operations:
                self._on_change(change.get("ns", {}).get("coll", ""), key["_id"])
        else:
            self._on_reset()


def _buffered(stream: Any) -> int | None:
    """Events the driver holds from the last batch, not handed out yet (``None``: unknown)."""
    data = getattr(getattr(stream, "_cursor", None), "_data", None)
    return len(data) if data is not None else None
