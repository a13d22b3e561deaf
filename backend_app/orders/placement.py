"""Placing orders: one transaction per batch of the orders waiting in this process (group commit).

Design, measurements and failure cases: docs/architecture.md (Orders and stock) ("Placing an
order"). In short, each batch is one multi-document transaction, committed
with :data:`~backend_app.core.db.DURABLE` write concern, that

1. reads the products and the owners' holds documents;
2. checks each order in arrival order against what the orders before it
   left (product, size, available stock, the owner's pending orders and units);
3. allocates the stock (one conditional update per product), raises the
   owners' holds, inserts the orders, records an audit entry for each order
   placed for someone else, completes the Idempotency-Keys; then commits.

Every batch that places an order for an owner writes that owner's holds
document, so two batches (of any processes or hosts) placing for one owner
cannot both commit what they read: the second writer gets ``WriteConflict``
and runs again on fresh data. That makes the reservation caps race-safe.
"""

from __future__ import annotations

import asyncio

from bson import ObjectId
from cachetools import LRUCache
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import BulkWriteError, DuplicateKeyError

from backend_app.audit import service as audit
from backend_app.core.db import MongoDatabase, run_in_transaction
from backend_app.core.errors import DomainError, ServiceUnavailableError
from backend_app.events import service as events
from backend_app.idempotency import service as idempotency
from backend_app.idempotency.exceptions import IdempotencyInFlightError
from backend_app.orders import faults, holds_repository, repository
from backend_app.orders.allocation import units_by_product
from backend_app.orders.batch_checks import (
    AcceptedOrder,
    OrderToPlace,
    PendingOrder,
    check_batch,
    hold_changes,
)
from backend_app.orders.views import to_public as order_view
from backend_app.products import stock


class BatchAborted(Exception):
    """A batch found a state its checks did not foresee; its orders are placed again one by one."""


class AlreadyPlaced(Exception):
    """An order of the batch has an ``_id`` that is already stored: another process placed it (nothing was written)."""


class OrderBatcher:
    """Places the orders of one process in batches: one transaction for all orders waiting at the time.

    While a batch's transaction runs, new orders queue; the next batch takes
    all of them (up to :attr:`max_batch`). Each order is still checked on its
    own, first come first served: a refused order (404/409/422) fails alone
    and takes nothing; the others are placed together, all or nothing.
    """

    def __init__(self, *, max_batch: int = 64) -> None:
        self.max_batch = max_batch
        self._queue: list[PendingOrder] = []
        self._worker: asyncio.Task[None] | None = None

    async def place(self, db: MongoDatabase, order: OrderToPlace) -> ObjectId:
        """Queue ``order`` and wait until its batch committed; returns its ``_id``.

        An order whose ``_id`` is already stored was placed by another process
        (``orders.forwarding``): it returns that ``_id`` and takes nothing.

        Raises:
            the order's own refusal (one of :data:`REFUSALS`), or the batch's
            failure (e.g. ``DatabaseUnavailableError``).
        """
        future: asyncio.Future[ObjectId] = asyncio.get_running_loop().create_future()
        self._queue.append(
            PendingOrder(order.order_id, order.user_id, order.placed_by, order.lines, order.claim, order.limits, future)
        )
        worker = self._worker
        if worker is None or worker.done() or worker.get_loop() is not asyncio.get_running_loop():
            self._worker = asyncio.create_task(self._drain(db))
        return await asyncio.shield(future)

    async def _drain(self, db: MongoDatabase) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            try:
                await _run(db, batch)
            except AlreadyPlaced:
                for request in await _settle_placed(db, batch):
                    await _run_settled(db, [request])
            except BatchAborted:
                for request in batch:
                    await _run_settled(db, [request])
            except BaseException as exc:
                _fail(batch, exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise


async def _run_settled(db: MongoDatabase, batch: list[PendingOrder], *, attempts: int = 3) -> None:
    """Run ``batch`` and settle every future, whatever happens (re-running an aborted batch)."""
    for _attempt in range(attempts):
        try:
            await _run(db, batch)
        except AlreadyPlaced:
            await _settle_placed(db, batch)
        except BatchAborted:
            continue
        except BaseException as exc:
            _fail(batch, exc)
        return
    _fail(batch, ServiceUnavailableError("The order could not be placed consistently; retry."))


async def _settle_placed(db: MongoDatabase, batch: list[PendingOrder]) -> list[PendingOrder]:
    """Resolve the requests whose order is already stored (placed by another process); return the others."""
    stored = await repository.existing_ids(db, order_ids=[r.order_id for r in batch])
    rest = []
    for request in batch:
        if request.order_id in stored:
            if not request.future.done():
                request.future.set_result(request.order_id)
        else:
            rest.append(request)
    return rest


#: Owners whose holds document this process knows exists (they are never deleted), per database.
_KNOWN_HOLDERS: LRUCache[tuple[int, str, str], bool] = LRUCache(maxsize=100_000)


async def ensure_holds(db: MongoDatabase, *, user_ids: list[str]) -> None:
    """Make sure these owners have a holds document before a transaction writes it (skips those known to have one)."""
    unknown = [u for u in user_ids if (id(db.client), db.name, u) not in _KNOWN_HOLDERS]
    if unknown:
        await holds_repository.ensure_holds(db, user_ids=unknown)
        for user_id in unknown:
            _KNOWN_HOLDERS[(id(db.client), db.name, user_id)] = True


async def _run(db: MongoDatabase, batch: list[PendingOrder]) -> None:
    """Place ``batch`` in one transaction, then resolve every request's future."""
    refusals: dict[int, DomainError] = {}
    owners = sorted({r.user_id for r in batch})
    product_ids = sorted({line.product_id for r in batch for line in r.lines})
    await ensure_holds(db, user_ids=owners)

    async def work(session: AsyncClientSession) -> list[ObjectId]:
        refusals.clear()
        products = await stock.find_orderable(db, product_ids=product_ids, session=session)
        holds = await holds_repository.find_holds(db, user_ids=owners, session=session)
        faults.reach("products_read")
        accepted = check_batch(batch, products, holds, refusals)
        units = units_by_product((pid, u.items()) for a in accepted for pid, u in a.units.items())
        if not await stock.allocate(db, units_by_product=units, session=session):
            raise BatchAborted()  # another writer changed stock after this transaction's snapshot
        faults.reach("stock_allocated")
        if not accepted:
            return []
        await holds_repository.change_holds(db, changes=hold_changes(accepted), session=session)
        try:
            order_ids = await repository.insert_orders(db, orders=[a.document for a in accepted], session=session)
        except (DuplicateKeyError, BulkWriteError) as exc:
            if _duplicate_id(exc):
                raise AlreadyPlaced() from exc
            raise
        await events.orders_created(db, orders=[a.document for a in accepted], view=order_view, session=session)
        faults.reach("order_inserted")
        await _audit_orders_placed_for_others(db, accepted, session=session)
        await _complete_keys(db, batch, accepted, order_ids, session=session)
        return order_ids

    order_ids = iter(await run_in_transaction(db.client, work))
    for i, request in enumerate(batch):
        if request.future.done():
            continue
        if i in refusals:
            request.future.set_exception(refusals[i])
        else:
            request.future.set_result(next(order_ids))


def _duplicate_id(exc: DuplicateKeyError | BulkWriteError) -> bool:
    """Whether the orders' insert was refused for an ``_id`` already stored (not another unique index)."""
    if isinstance(exc, BulkWriteError):
        errors = exc.details.get("writeErrors", [])
        return any(e.get("code") == 11000 and "_id" in (e.get("keyPattern") or {"_id": 1}) for e in errors)
    return "_id" in ((exc.details or {}).get("keyPattern") or {"_id": 1})


def _fail(batch: list[PendingOrder], exc: BaseException) -> None:
    """Settle every unsettled future of ``batch`` with ``exc`` (cancelled, if ``exc`` is a cancellation)."""
    for request in batch:
        if request.future.done():
            continue
        if isinstance(exc, asyncio.CancelledError):
            request.future.cancel()
        else:
            request.future.set_exception(exc)


async def _audit_orders_placed_for_others(
    db: MongoDatabase, accepted: list[AcceptedOrder], *, session: AsyncClientSession
) -> None:
    """Record ``order.place`` for each order placed by someone other than its owner (an admin), in the transaction."""
    entries = [
        audit.new_entry(
            actor=a.request.placed_by,
            action="order.place",
            entity_type="order",
            entity_id=str(a.document["_id"]),
            before=None,
            after={"userId": a.request.user_id, "placed_by": a.request.placed_by, "status": "pending"},
        )
        for a in accepted
        if a.request.placed_by != a.request.user_id
    ]
    if entries:
        await audit.record_many(db, entries=entries, session=session)


async def _complete_keys(
    db: MongoDatabase,
    batch: list[PendingOrder],
    accepted: list[AcceptedOrder],
    order_ids: list[ObjectId],
    *,
    session: AsyncClientSession,
) -> None:
    """Complete the Idempotency-Key of each accepted order that sent one, in the transaction."""
    for a, order_id in zip(accepted, order_ids, strict=True):
        if a.request.claim is None:
            continue
        try:
            await idempotency.complete(db, claim=a.request.claim, response={"id": str(order_id)}, session=session)
        except IdempotencyInFlightError:
            if len(batch) > 1:  # that key was taken over: only its own order must fail
                raise BatchAborted() from None
            raise
    if any(a.request.claim is not None for a in accepted):
        faults.reach("key_completed")


#: This process's order batchers, one per database (one event loop per process serves all requests).
_BATCHERS: dict[tuple[int, str], OrderBatcher] = {}


def batcher_for(db: MongoDatabase) -> OrderBatcher:
    """The :class:`OrderBatcher` of ``db`` in this process (orders of one database share batches)."""
    key = (id(db.client), db.name)
    batcher = _BATCHERS.get(key)
    if batcher is None:
        batcher = _BATCHERS[key] = OrderBatcher()
    return batcher


async def place_here(db: MongoDatabase, order: OrderToPlace) -> ObjectId:
    """Place ``order`` in this process's next batch (``orders.forwarding.PlaceLocally``)."""
    return await batcher_for(db).place(db, order)
