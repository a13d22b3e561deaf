"""Order rules: merging lines, allocating sizes, taking stock atomically, idempotency, status changes.

Contract: docs/contract.md §1, §5, §6.

Placing an order (issue 9; design and measurements in docs/orders-and-stock.md)
is a multi-document transaction committed with write concern majority +
journal. Each process combines the orders that arrive while a transaction
runs into the next one (:class:`OrderBatcher`), so concurrent buyers of a
hot product share one commit instead of conflicting, aborting and re-running
(which collapsed throughput); across processes and hosts the transaction
alone still guarantees correctness (a conflict is re-run).

Single points where an outcome is final (for metrics, issue 13):
:func:`_placed`, :func:`_refused`, :func:`_status_changed` (cancel/complete)
and :func:`_expired`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import BulkWriteError, DuplicateKeyError

from backend_app.audit import service as audit
from backend_app.core import metrics
from backend_app.core.db import MongoDatabase, run_in_transaction
from backend_app.core.errors import DomainError, ForbiddenError, ServiceUnavailableError
from backend_app.core.pages import PageMeta
from backend_app.core.pagination import PageParams
from backend_app.core.types import from_bson_money, oid
from backend_app.events import service as events
from backend_app.idempotency import service as idempotency
from backend_app.idempotency.exceptions import IdempotencyInFlightError
from backend_app.orders import faults, repository
from backend_app.orders.exceptions import (
    InsufficientStockError,
    InvalidStatusTransitionError,
    OrderedProductNotFoundError,
    OrderNotFoundError,
    TooManyPendingOrdersError,
    UnknownSizeError,
)
from backend_app.orders.schemas import (
    OrderItemCreate,
    OrderLinePublic,
    OrderPublic,
    OrderStatus,
    ProductDetails,
    SettableStatus,
    SizeTaken,
)
from backend_app.products import repository as products_repository

logger = logging.getLogger(__name__)

#: Cursor scope of the order lists (a cursor of another list is foreign here).
LIST_SCOPE = "orders"
#: Legal status changes (docs/contract.md §5); anything else → 409.
TRANSITIONS: dict[str, frozenset[str]] = {"pending": frozenset({"completed", "cancelled"})}
#: Pending-order cap used when the caller passes none (``ORDER_MAX_PENDING``'s default).
DEFAULT_MAX_PENDING = 10
#: Orders expired per sweep round at most (the next round takes the rest).
EXPIRY_BATCH = 100
#: The transitions an order's owner may make without the admin role (docs/contract.md §3 table).
OWNER_TRANSITIONS: frozenset[str] = frozenset({"cancelled"})


@dataclass(slots=True)
class Line:
    """One merged order line: ``qty`` units of ``product_id`` (of ``size``, or any size)."""

    product_id: ObjectId
    size: str | None
    qty: int


def merge_lines(items: list[OrderItemCreate]) -> list[Line]:
    """Merge duplicate ``(productId, size)`` lines, keeping first-seen order (docs/contract.md §5)."""
    merged: dict[tuple[str, str | None], Line] = {}
    for item in items:
        key = (item.productId.lower(), item.size)
        if key in merged:
            merged[key].qty += item.qty
        else:
            merged[key] = Line(product_id=ObjectId(item.productId), size=item.size, qty=item.qty)
    return list(merged.values())


def allocate(lines: list[Line], products: dict[ObjectId, dict[str, Any]]) -> list[dict[str, int]]:
    """Decide which sizes each line takes from (docs/contract.md §5).

    Lines naming a size take from it; then a line without a size takes from a
    single-size product's only size, or across the sizes in listed order from
    what the sized lines left.

    Returns:
        For each of ``lines``, in order, the units it takes per size: ``{size: units}``.

    Raises:
        UnknownSizeError: a line names a size the product does not have (422).
        InsufficientStockError: one or more lines are short, each listed (409).
    """
    remaining = {pid: {s["size"]: s["quantity"] for s in doc.get("sizes", [])} for pid, doc in products.items()}
    short: list[dict[str, Any]] = []
    taken: list[dict[str, int]] = [{} for _ in lines]
    sized_first = sorted(range(len(lines)), key=lambda i: lines[i].size is None)
    for i in sized_first:
        line = lines[i]
        stock = remaining[line.product_id]
        if line.size is not None:
            if line.size not in stock:
                raise UnknownSizeError(str(line.product_id), line.size)
            available = stock[line.size]
            if available < line.qty:
                short.append(_short(line, available))
                continue
            stock[line.size] -= line.qty
            taken[i] = {line.size: line.qty}
            continue
        available = sum(stock.values())
        if available < line.qty:
            short.append(_short(line, available))
            continue
        needed = line.qty
        for size, qty in stock.items():
            take = min(qty, needed)
            if take:
                taken[i][size] = take
                stock[size] -= take
                needed -= take
            if not needed:
                break
    if short:
        raise InsufficientStockError(short)
    return taken


def _short(line: Line, available: int) -> dict[str, Any]:
    return {"productId": str(line.product_id), "size": line.size, "requested": line.qty, "available": available}


def _available(product: dict[str, Any], size: str | None) -> int:
    sizes = {s["size"]: s["quantity"] for s in product.get("sizes", [])}
    return sizes.get(size, 0) if size is not None else sum(sizes.values())


def _units_by_product(
    lines: Iterable[tuple[ObjectId, Iterable[tuple[str, int]]]],
) -> dict[ObjectId, dict[str, int]]:
    """Sum ``(product_id, [(size, units), ...])`` lines into ``{product_id: {size: units}}``, empty products left out."""
    units: dict[ObjectId, dict[str, int]] = {}
    for product_id, per_line in lines:
        per_size = units.setdefault(product_id, {})
        for size, qty in per_line:
            per_size[size] = per_size.get(size, 0) + qty
    return {product_id: sizes for product_id, sizes in units.items() if sizes}


@dataclass(slots=True)
class _Request:
    """One order waiting for its batch: what to place, and the future its caller awaits."""

    user_id: str
    lines: list[Line]
    claim: idempotency.Claim | None
    max_pending: int
    future: asyncio.Future[ObjectId]


@dataclass(slots=True)
class _Accepted:
    """An order of a batch that passed every check: its document and the stock it takes."""

    request: _Request
    document: dict[str, Any]
    takes: dict[ObjectId, dict[str, int]]


class BatchAborted(Exception):
    """A batch's conditional writes found a state its snapshot did not show; its orders are re-placed one by one."""


class OrderBatcher:
    """Places the orders of one process in batches: one transaction for all orders waiting at the time.

    While a batch's transaction runs, new orders queue; the next batch takes
    all of them (up to :attr:`max_batch`). A batch of *k* orders costs the
    same seven round trips as one order (read products, read pending counts,
    decrement stock, raise pending counts, insert orders, complete idempotency
    keys, commit) and ONE durable commit, instead of *k* transactions that
    conflict on a hot product and re-run. Each order is still checked on its
    own, first come first served: a refused order (404/409/422) fails alone
    and takes nothing; the others are placed together, all or nothing.

    Across processes and hosts, concurrent batches touching the same product
    or user conflict and the transaction re-runs (MongoDB's rule, also on the
    embedded server). If a batch's writes do not match its snapshot (only
    possible when another writer changed stock in between), the batch is
    aborted and each of its orders is placed in a batch of its own.
    """

    def __init__(self, *, max_batch: int = 64) -> None:
        self.max_batch = max_batch
        self._queue: list[_Request] = []
        self._worker: asyncio.Task[None] | None = None

    async def place(
        self,
        db: MongoDatabase,
        *,
        user_id: str,
        lines: list[Line],
        claim: idempotency.Claim | None,
        max_pending: int,
    ) -> ObjectId:
        """Queue one order and wait until its batch committed; returns the new order's ``_id``.

        Raises:
            the order's own refusal (see :func:`place_order`), or the batch's
            failure (e.g. ``DatabaseUnavailableError``).
        """
        future: asyncio.Future[ObjectId] = asyncio.get_running_loop().create_future()
        self._queue.append(_Request(user_id, lines, claim, max_pending, future))
        worker = self._worker
        if worker is None or worker.done() or worker.get_loop() is not asyncio.get_running_loop():
            self._worker = asyncio.create_task(self._drain(db))
        return await asyncio.shield(future)

    async def _drain(self, db: MongoDatabase) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            try:
                await self._run(db, batch)
            except BatchAborted:
                for request in batch:
                    await self._run_settled(db, [request])
            except BaseException as exc:  # noqa: BLE001 - every waiter gets the batch's failure
                _fail(batch, exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise

    async def _run_settled(self, db: MongoDatabase, batch: list[_Request], *, attempts: int = 3) -> None:
        """Run ``batch`` and settle every future, whatever happens (re-running an aborted batch)."""
        for _attempt in range(attempts):
            try:
                await self._run(db, batch)
            except BatchAborted:
                continue
            except BaseException as exc:  # noqa: BLE001
                _fail(batch, exc)
            return
        _fail(batch, ServiceUnavailableError("Stock kept changing while the order was placed; retry."))

    async def _run(self, db: MongoDatabase, batch: list[_Request]) -> None:
        """Place ``batch`` in one transaction, then resolve every request's future."""
        refusals: dict[int, DomainError] = {}

        async def work(session: AsyncClientSession) -> list[ObjectId]:
            refusals.clear()
            accepted = await _check_batch(db, batch, refusals, session=session)
            faults.reach("products_read")
            takes = _units_by_product((pid, t.items()) for a in accepted for pid, t in a.takes.items())
            if not await products_repository.take_stock_many(db, takes_by_product=takes, session=session):
                raise BatchAborted()
            faults.reach("stock_taken")
            if not accepted:
                return []
            try:
                order_ids = await repository.insert_orders(db, orders=[a.document for a in accepted], session=session)
            except (BulkWriteError, DuplicateKeyError) as exc:
                # A pending slot was taken by another process after our snapshot (write conflicts are
                # re-run by run_in_transaction; a duplicate key is not): place these orders anew.
                raise BatchAborted() from exc
            await events.orders_created(db, orders=[a.document for a in accepted], view=to_public, session=session)
            faults.reach("order_inserted")
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
            return order_ids

        order_ids = iter(await run_in_transaction(db.client, work))
        for i, request in enumerate(batch):
            if request.future.done():
                continue
            if i in refusals:
                request.future.set_exception(refusals[i])
            else:
                request.future.set_result(next(order_ids))


def _fail(batch: list[_Request], exc: BaseException) -> None:
    """Settle every unsettled future of ``batch`` with ``exc`` (cancelled, if ``exc`` is a cancellation)."""
    for request in batch:
        if request.future.done():
            continue
        if isinstance(exc, asyncio.CancelledError):
            request.future.cancel()
        else:
            request.future.set_exception(exc)


async def _check_batch(
    db: MongoDatabase, batch: list[_Request], refusals: dict[int, DomainError], *, session: AsyncClientSession
) -> list[_Accepted]:
    """Check each order of ``batch`` in turn against the snapshot and the orders before it.

    Reads every product and every owner's pending orders once. An order is
    refused (its index → error in ``refusals``) when a product is missing, a
    size unknown, a line short of what earlier orders of the batch left, or
    its owner at the cap counting earlier orders of the batch. An accepted
    order gets its owner's lowest free ``pending_slot``.
    """
    product_ids = list(dict.fromkeys(line.product_id for request in batch for line in request.lines))
    products = await products_repository.find_live_by_ids(db, product_ids=product_ids, session=session)
    pending = await repository.pending_slots(
        db, user_ids=list(dict.fromkeys(r.user_id for r in batch)), session=session
    )
    remaining = {pid: {**doc, "sizes": [dict(s) for s in doc.get("sizes", [])]} for pid, doc in products.items()}
    accepted: list[_Accepted] = []
    for i, request in enumerate(batch):
        try:
            missing = list(dict.fromkeys(str(line.product_id) for line in request.lines if line.product_id not in remaining))
            if missing:
                raise OrderedProductNotFoundError(missing)
            taken = allocate(request.lines, remaining)
            held = pending.setdefault(request.user_id, [])
            if len(held) >= request.max_pending:
                raise TooManyPendingOrdersError(request.user_id, request.max_pending)
            slot = _lowest_free_slot(held)
        except (OrderedProductNotFoundError, UnknownSizeError, InsufficientStockError, TooManyPendingOrdersError) as exc:
            refusals[i] = exc
            continue
        held.append(slot)
        takes = _units_by_product(
            (line.product_id, line_taken.items()) for line, line_taken in zip(request.lines, taken, strict=True)
        )
        for pid, per_size in takes.items():
            for size in remaining[pid]["sizes"]:
                size["quantity"] -= per_size.get(size["size"], 0)
        document = _order_document(
            user_id=request.user_id, lines=request.lines, taken=taken, products=products, pending_slot=slot
        )
        accepted.append(_Accepted(request, document, takes))
    return accepted


def _lowest_free_slot(held: list[int | None]) -> int:
    """The smallest ``pending_slot`` ≥ 0 not in ``held`` (at most ``len(held)``)."""
    used = set(held)
    return next(slot for slot in range(len(held) + 1) if slot not in used)


#: This process's order batchers, one per database (one event loop per process serves all requests).
_BATCHERS: dict[tuple[int, str], OrderBatcher] = {}


def batcher_for(db: MongoDatabase) -> OrderBatcher:
    """The :class:`OrderBatcher` of ``db`` in this process (orders of one database share batches)."""
    key = (id(db.client), db.name)
    batcher = _BATCHERS.get(key)
    if batcher is None:
        batcher = _BATCHERS[key] = OrderBatcher()
    return batcher


def _placed(order_id: ObjectId, *, user_id: str, lines: int) -> None:
    """The single point where an order is known placed (committed durably)."""
    logger.debug("order placed", extra={"order_id": str(order_id), "owner": user_id, "lines": lines})
    metrics.order_event("placed")


def _refused(error: DomainError, *, user_id: str) -> None:
    """The single point where placing an order is refused with a domain error (404/409/422)."""
    logger.debug("order refused", extra={"code": error.code, "owner": user_id})
    metrics.order_refused(error.code)


def _status_changed(order_id: ObjectId, *, status: str) -> None:
    """The single point where an admin or owner completed or cancelled an order (committed)."""
    logger.debug("order status changed", extra={"order_id": str(order_id), "status": status})
    metrics.order_event(status)


def _expired(order_id: ObjectId) -> None:
    """The single point where the sweep expired an order and returned its stock (committed)."""
    logger.debug("order expired", extra={"order_id": str(order_id)})
    metrics.order_event("expired")


async def place_order(
    db: MongoDatabase,
    *,
    user_id: str,
    items: list[OrderItemCreate],
    claim: idempotency.Claim | None = None,
    max_pending: int = DEFAULT_MAX_PENDING,
) -> str:
    """Place an order for ``user_id`` and return its id (brief ``POST /orders``), once per call.

    No idempotency here: the route calls :func:`place_order_idempotently`, which
    calls this with the key's ``claim``.

    The order joins this process's next batch (:class:`OrderBatcher`): one
    multi-document transaction, committed with
    :data:`~backend_app.core.db.DURABLE` write concern, that reads the
    products and the owner's pending orders, takes every line's stock with
    one conditional update per product, inserts the order in a free pending
    slot of its owner (the race-safe cap) and, with an idempotency ``claim``, completes the key. All of
    it commits or none of it does (docs/contract.md §5), so a process that dies at any
    step leaves nothing half-placed. Unit prices and names are captured from
    the database at order time; ``total`` = Σ qty × unit price, exact (docs/contract.md §6).

    Raises:
        OrderedProductNotFoundError: a product is unknown or soft-deleted (404).
        UnknownSizeError: a line names a size the product lacks (422).
        InsufficientStockError: some lines are short (409).
        TooManyPendingOrdersError: ``user_id`` holds ``max_pending`` pending orders (409).
        DatabaseUnavailableError: the database is unreachable (503).
    """
    lines = merge_lines(items)
    try:
        order_id = await batcher_for(db).place(db, user_id=user_id, lines=lines, claim=claim, max_pending=max_pending)
    except (OrderedProductNotFoundError, UnknownSizeError, InsufficientStockError, TooManyPendingOrdersError) as exc:
        _refused(exc, user_id=user_id)
        raise
    faults.reach("committed")
    _placed(order_id, user_id=user_id, lines=len(lines))
    return str(order_id)


def _order_document(
    *,
    user_id: str,
    lines: list[Line],
    taken: list[dict[str, int]],
    products: dict[ObjectId, dict[str, Any]],
    pending_slot: int,
) -> dict[str, Any]:
    """The order to insert: unit prices and names captured now, ``total`` = Σ qty × unit price, exact (§6).

    The rule is here; the stored shape is ``repository.new_order_document``'s.
    """
    total = Decimal(0)
    new_lines = []
    for line, line_taken in zip(lines, taken, strict=True):
        product = products[line.product_id]
        unit_price = from_bson_money(product["price"])
        total += unit_price * line.qty
        new_lines.append(
            repository.NewOrderLine(
                product_id=line.product_id,
                name=product["name"],
                size=line.size,
                qty=line.qty,
                unit_price=unit_price,
                taken=line_taken,
            )
        )
    return repository.new_order_document(
        user_id=user_id, lines=new_lines, total=total, pending_slot=pending_slot, now=datetime.now(UTC)
    )


def to_public(doc: dict[str, Any]) -> OrderPublic:
    """Map an order joined by the repository's pipeline to its public form."""
    return OrderPublic(
        id=str(doc["_id"]),
        userId=doc["userId"],
        status=doc["status"],
        total=from_bson_money(doc["total"]),
        created_at=doc["created_at"],
        updated_at=doc.get("updated_at", doc["created_at"]),
        items=[
            OrderLinePublic(
                productDetails=ProductDetails(
                    id=str(item["productDetails"]["_id"]), name=item["productDetails"]["name"]
                ),
                qty=item["qty"],
                size=item.get("size"),
                unit_price=from_bson_money(item["unit_price"]),
                taken=[SizeTaken(**t) for t in item.get("taken", [])],
            )
            for item in doc["items"]
        ],
    )


async def place_order_idempotently(
    db: MongoDatabase,
    *,
    caller: str,
    user_id: str,
    items: list[OrderItemCreate],
    idempotency_key: str | None = None,
    max_pending: int = DEFAULT_MAX_PENDING,
) -> tuple[str, bool]:
    """:func:`place_order` behind an ``Idempotency-Key``: the entry point of ``POST /orders`` (docs/contract.md §5).

    Without a key it is :func:`place_order`. With one, a retry with the same
    key and body replays the first order's id instead of placing another.

    Args:
        caller: the authenticated username; idempotency keys are scoped to it.
        user_id: whose order it is (authorized by the router).
        items: the requested lines.
        idempotency_key: the header's value, if sent.
        max_pending: the owner's pending-order cap (``ORDER_MAX_PENDING``).

    Returns:
        ``(order_id, replayed)``: ``replayed`` is True when an earlier request
        with the same key and body already placed the order (no stock taken now).

    Raises:
        IdempotencyKeyReusedError: the key was used with another body (422).
        IdempotencyInFlightError: the first request with the key is still running (409).
        plus everything :func:`place_order` raises.
    """
    if idempotency_key is None:
        return await place_order(db, user_id=user_id, items=items, max_pending=max_pending), False
    fingerprint = idempotency.request_fingerprint(
        "POST /orders", {"userId": user_id, "items": [item.model_dump() for item in items]}
    )
    outcome = await idempotency.begin(db, owner=caller, key=idempotency_key, fingerprint=fingerprint)
    if isinstance(outcome, idempotency.Replay):
        return str(outcome.response["id"]), True
    faults.reach("key_claimed")
    try:
        order_id = await place_order(db, user_id=user_id, items=items, claim=outcome, max_pending=max_pending)
    except BaseException:
        await idempotency.release(db, claim=outcome)
        raise
    return order_id, False


async def change_status(
    db: MongoDatabase, *, user_id: str, order_id: str, status: SettableStatus, as_admin: bool, actor: str
) -> OrderPublic:
    """Move an order to ``status`` (``PATCH /orders/{user_id}/{order_id}``; docs/contract.md §5).

    ``pending → completed`` (admin) and ``pending → cancelled`` (owner or
    admin). Cancelling puts every unit taken back into its size, in the same
    transaction as the status change, so stock is restored exactly once even
    under concurrent cancels. A change made as admin is recorded in the audit
    trail (``order.status`` by ``actor``) in the same transaction.

    Raises:
        ForbiddenError: a non-admin asked for a transition other than cancelling (403).
        OrderNotFoundError: no such order of ``user_id`` (404).
        InvalidStatusTransitionError: not a legal transition from the current status (409).
    """
    if not as_admin and status not in OWNER_TRANSITIONS:
        raise ForbiddenError("Only an admin can set this status; you may cancel a pending order.")
    order_oid = oid(order_id)

    async def work(session: AsyncClientSession) -> None:
        order = await repository.get_order(db, user_id=user_id, order_id=order_oid, session=session)
        if order is None:
            raise OrderNotFoundError(order_id)
        current = order["status"]
        if status not in TRANSITIONS.get(current, frozenset()):
            raise InvalidStatusTransitionError(current, status)
        if not await repository.set_status(db, order_id=order_oid, current=current, status=status, session=session):
            raise InvalidStatusTransitionError(current, status)
        await events.order_status_changed(db, order=order, status=status, view=to_public, session=session)
        if as_admin:
            await audit.record(
                db,
                actor=actor,
                action="order.status",
                entity_type="order",
                entity_id=order_id,
                before={"status": current, "userId": user_id},
                after={"status": status, "userId": user_id},
                session=session,
            )
        if status == "cancelled":
            await _return_stock(db, order, session=session)

    await run_in_transaction(db.client, work)
    _status_changed(order_oid, status=status)
    return await get_order(db, user_id=user_id, order_id=order_id)


async def _return_stock(db: MongoDatabase, order: dict[str, Any], *, session: AsyncClientSession) -> None:
    """Put every unit ``order`` took back into its size, inside ``session``'s transaction."""
    returns_by_product = _units_by_product(
        (item["productId"], ((t["size"], t["qty"]) for t in item.get("taken", []))) for item in order["items"]
    )
    for product_id, returns in returns_by_product.items():
        await products_repository.return_stock(db, product_id=product_id, returns=returns, session=session)


async def expire_order(db: MongoDatabase, *, order_id: ObjectId) -> bool:
    """Move one pending order to ``expired`` and return its stock, exactly once; False if it is no longer pending.

    One transaction: a conditional ``pending → expired`` update (which also
    frees the owner's pending slot) and the stock returned. Two sweepers (workers or
    hosts) racing for one order: the transactions write the same order
    document, so one commits and the other re-runs, finds it ``expired`` and
    changes nothing.
    """

    async def work(session: AsyncClientSession) -> bool:
        order = await repository.get_by_id(db, order_id=order_id, session=session)
        if order is None or order["status"] != "pending":
            return False
        if not await repository.set_status(db, order_id=order_id, current="pending", status="expired", session=session):
            return False
        await events.order_status_changed(db, order=order, status="expired", view=to_public, session=session)
        await _return_stock(db, order, session=session)
        return True

    expired = bool(await run_in_transaction(db.client, work))
    if expired:
        _expired(order_id)
    return expired


async def expire_due_orders(
    db: MongoDatabase, *, ttl_seconds: int, now: datetime | None = None, batch: int = EXPIRY_BATCH
) -> int:
    """Expire pending orders created more than ``ttl_seconds`` before ``now`` (``ORDER_PENDING_TTL_SECONDS``).

    Returns the number this call expired (at most ``batch``); ``ttl_seconds``
    0 means never, and returns 0. Safe to run in every process at once
    (see :func:`expire_order`); no TTL index is involved (a TTL index would
    delete orders and could not return their stock).
    """
    if ttl_seconds <= 0:
        return 0
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=ttl_seconds)
    expired = 0
    for order_id in await repository.find_expired_ids(db, older_than=cutoff, limit=batch):
        if await expire_order(db, order_id=order_id):
            expired += 1
    return expired


async def run_expiry_sweeper(db: MongoDatabase, *, ttl_seconds: int, interval_s: float) -> None:
    """Background task of every API process: :func:`expire_due_orders` at start-up, then every ``interval_s``.

    Errors (e.g. the database is down) are logged and the loop goes on; it
    ends only when cancelled (app shutdown). Does nothing when ``ttl_seconds`` is 0.
    """
    if ttl_seconds <= 0:
        return
    while True:
        try:
            while await expire_due_orders(db, ttl_seconds=ttl_seconds) == EXPIRY_BATCH:
                pass
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("order expiry sweep failed; retrying in %.0fs", interval_s, exc_info=True)
        await asyncio.sleep(interval_s)


async def get_order(db: MongoDatabase, *, user_id: str, order_id: str) -> OrderPublic:
    """One order of ``user_id`` with lines, status and timestamps (``GET /orders/{user_id}/{order_id}``).

    Raises:
        OrderNotFoundError: no such order of ``user_id`` (404).
    """
    doc = await repository.get_order_with_details(db, user_id=user_id, order_id=oid(order_id))
    if doc is None:
        raise OrderNotFoundError(order_id)
    return to_public(doc)


async def list_orders(
    db: MongoDatabase, *, user_id: str | None = None, status: OrderStatus | None = None, page: PageParams
) -> tuple[list[OrderPublic], PageMeta]:
    """One page of orders in ascending ``_id`` order, optionally of one user and/or one status.

    Serves ``GET /orders/{user_id}`` (brief) and ``GET /orders`` (docs/contract.md §3).

    Raises:
        InvalidCursorError: the cursor is bad or was issued for other filters (400).
    """
    window = page.window(scope=LIST_SCOPE, filters={"user_id": user_id, "status": status})
    rows = await repository.list_orders(
        db, query=repository.order_filter(user_id=user_id, status=status), window=window
    )
    docs, meta = window.finish(rows)
    return [to_public(d) for d in docs], meta
