"""Order rules: merging lines, allocating sizes, taking stock atomically, idempotency, status changes (spec §1, §5, §6).

Placing an order (issue 9; design and measurements in docs/orders-and-stock.md)
is one multi-document transaction committed with write concern majority +
journal, run while this process holds an in-process lock on each product
the order touches. The lock turns concurrent buyers of one hot product into
a queue inside each process instead of transactions that conflict, abort and
re-run (which collapsed throughput); across processes and hosts the
transaction alone still guarantees correctness (a conflict is re-run).

Single points where an outcome is final (for metrics, issue 13):
:func:`_placed`, :func:`_refused`, :func:`_status_changed` (cancel/complete)
and :func:`_expired`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession

from backend_app.auth.exceptions import ForbiddenError
from backend_app.core.db import MongoDatabase, run_in_transaction
from backend_app.core.pagination import PageMeta, PageParams
from backend_app.core.types import from_bson_money, oid, to_decimal128
from backend_app.core.errors import DomainError
from backend_app.idempotency import service as idempotency
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
    SettableStatus,
    ProductDetails,
    SizeTaken,
)
from backend_app.products import repository as products_repository

logger = logging.getLogger(__name__)

#: Cursor scope of the order lists (a cursor of another list is foreign here).
LIST_SCOPE = "orders"
#: Legal status changes (spec §5); anything else → 409.
TRANSITIONS: dict[str, frozenset[str]] = {"pending": frozenset({"completed", "cancelled"})}
#: Pending-order cap used when the caller passes none (``ORDER_MAX_PENDING``'s default).
DEFAULT_MAX_PENDING = 10
#: Orders expired per sweep round at most (the next round takes the rest).
EXPIRY_BATCH = 100
#: The transitions an order's owner may make without the admin role (spec §3 table).
OWNER_TRANSITIONS: frozenset[str] = frozenset({"cancelled"})


@dataclass(slots=True)
class Line:
    """One merged order line: ``qty`` units of ``product_id`` (of ``size``, or any size)."""

    product_id: ObjectId
    size: str | None
    qty: int


def merge_lines(items: list[OrderItemCreate]) -> list[Line]:
    """Merge duplicate ``(productId, size)`` lines, keeping first-seen order (spec §5)."""
    merged: dict[tuple[str, str | None], Line] = {}
    for item in items:
        key = (item.productId.lower(), item.size)
        if key in merged:
            merged[key].qty += item.qty
        else:
            merged[key] = Line(product_id=ObjectId(item.productId), size=item.size, qty=item.qty)
    return list(merged.values())


def allocate(lines: list[Line], products: dict[ObjectId, dict[str, Any]]) -> list[dict[str, int]]:
    """Decide which sizes each line takes from (spec §5).

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


class ProductLocks:
    """In-process FIFO locks keyed by product id; entries vanish when no coroutine holds or awaits them.

    :meth:`hold` takes the locks of several products in ascending id order, so
    two orders sharing products can never wait for each other in a cycle.
    """

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[ObjectId, asyncio.Lock] = weakref.WeakValueDictionary()

    @contextlib.asynccontextmanager
    async def hold(self, product_ids: Iterable[ObjectId]) -> AsyncIterator[None]:
        """Hold the lock of every product in ``product_ids`` for the body."""
        locks = []
        for product_id in sorted(set(product_ids)):
            lock = self._locks.get(product_id)
            if lock is None:
                lock = self._locks[product_id] = asyncio.Lock()
            locks.append(lock)
        async with contextlib.AsyncExitStack() as stack:
            for lock in locks:
                await stack.enter_async_context(lock)
            yield


#: This process's product locks (one event loop per process serves all requests).
PRODUCT_LOCKS = ProductLocks()


def _placed(order_id: ObjectId, *, user_id: str, lines: int) -> None:
    """The single point where an order is known placed (committed durably)."""
    logger.info("order placed", extra={"order_id": str(order_id), "owner": user_id, "lines": lines})


def _refused(error: DomainError, *, user_id: str) -> None:
    """The single point where placing an order is refused with a domain error (404/409/422)."""
    logger.info("order refused", extra={"code": error.code, "owner": user_id})


def _status_changed(order_id: ObjectId, *, status: str) -> None:
    """The single point where an admin or owner completed or cancelled an order (committed)."""
    logger.info("order status changed", extra={"order_id": str(order_id), "status": status})


def _expired(order_id: ObjectId) -> None:
    """The single point where the sweep expired an order and returned its stock (committed)."""
    logger.info("order expired", extra={"order_id": str(order_id)})


async def place_order(
    db: MongoDatabase,
    *,
    user_id: str,
    items: list[OrderItemCreate],
    claim: idempotency.Claim | None = None,
    max_pending: int = DEFAULT_MAX_PENDING,
) -> str:
    """Place an order for ``user_id`` and return its id (brief ``POST /orders``).

    One multi-document transaction, committed with :data:`~backend_app.core.db.DURABLE`
    write concern: read the products, take every line's stock with one
    conditional update per product, count the order against its owner's
    pending-order cap, insert the order and, with an idempotency ``claim``,
    complete the key. All of it commits or none of it does (spec §5), so a
    process that dies at any step leaves nothing half-placed. The transaction
    runs while this process holds each product's lock (see
    :class:`ProductLocks`). Unit prices and names are captured from the
    database at order time; ``total`` = Σ qty × unit price, exact (spec §6).

    Raises:
        OrderedProductNotFoundError: a product is unknown or soft-deleted (404).
        UnknownSizeError: a line names a size the product lacks (422).
        InsufficientStockError: some lines are short (409).
        TooManyPendingOrdersError: ``user_id`` holds ``max_pending`` pending orders (409).
        DatabaseUnavailableError: the database is unreachable (503).
    """
    lines = merge_lines(items)
    product_ids = list(dict.fromkeys(line.product_id for line in lines))

    async def work(session: AsyncClientSession) -> ObjectId:
        products = await products_repository.find_live_by_ids(db, product_ids=product_ids, session=session)
        faults.reach("products_read")
        missing = [str(pid) for pid in product_ids if pid not in products]
        if missing:
            raise OrderedProductNotFoundError(missing)
        taken = allocate(lines, products)
        takes_by_product = _units_by_product(
            (line.product_id, line_taken.items()) for line, line_taken in zip(lines, taken, strict=True)
        )
        for product_id, takes in takes_by_product.items():
            if not await products_repository.take_stock(db, product_id=product_id, takes=takes, session=session):
                # The conditional update found less than the snapshot showed.
                raise InsufficientStockError(
                    [
                        _short(line, _available(products[product_id], line.size))
                        for line in lines
                        if line.product_id == product_id
                    ]
                )
        faults.reach("stock_taken")
        if not await repository.hold_pending(db, user_id=user_id, max_pending=max_pending, session=session):
            raise TooManyPendingOrdersError(user_id, max_pending)
        faults.reach("hold_counted")
        order = _order_document(user_id=user_id, lines=lines, taken=taken, products=products)
        order_id = await repository.insert_order(db, order=order, session=session)
        faults.reach("order_inserted")
        if claim is not None:
            await idempotency.complete(db, claim=claim, response={"id": str(order_id)}, session=session)
            faults.reach("key_completed")
        return order_id

    try:
        async with PRODUCT_LOCKS.hold(product_ids):
            try:
                order_id = await run_in_transaction(db.client, work)
            except TooManyPendingOrdersError:
                # Two first orders of one user can race to create the count document (duplicate
                # key, not a conflict): if the committed count is below the cap, that was the
                # race, and the placement is run once more.
                if await repository.pending_count(db, user_id=user_id) >= max_pending:
                    raise
                order_id = await run_in_transaction(db.client, work)
    except (OrderedProductNotFoundError, UnknownSizeError, InsufficientStockError, TooManyPendingOrdersError) as exc:
        _refused(exc, user_id=user_id)
        raise
    faults.reach("committed")
    _placed(order_id, user_id=user_id, lines=len(lines))
    return str(order_id)


def _order_document(
    *, user_id: str, lines: list[Line], taken: list[dict[str, int]], products: dict[ObjectId, dict[str, Any]]
) -> dict[str, Any]:
    now = datetime.now(UTC)
    total = Decimal(0)
    items = []
    for line, line_taken in zip(lines, taken, strict=True):
        product = products[line.product_id]
        unit_price = from_bson_money(product["price"])
        total += unit_price * line.qty
        items.append(
            {
                "productId": line.product_id,
                "name": product["name"],
                "size": line.size,
                "qty": line.qty,
                "unit_price": to_decimal128(unit_price),
                "taken": [{"size": size, "qty": qty} for size, qty in line_taken.items()],
            }
        )
    return {
        "userId": user_id,
        "status": "pending",
        "items": items,
        "total": to_decimal128(total),
        "created_at": now,
        "updated_at": now,
    }


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


async def create_order(
    db: MongoDatabase,
    *,
    caller: str,
    user_id: str,
    items: list[OrderItemCreate],
    idempotency_key: str | None = None,
    max_pending: int = DEFAULT_MAX_PENDING,
) -> tuple[str, bool]:
    """Place an order, honouring an ``Idempotency-Key`` (spec §5).

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
    db: MongoDatabase, *, user_id: str, order_id: str, status: SettableStatus, as_admin: bool
) -> OrderPublic:
    """Move an order to ``status`` (``PATCH /orders/{user_id}/{order_id}``; spec §5).

    ``pending → completed`` (admin) and ``pending → cancelled`` (owner or
    admin). Cancelling puts every unit taken back into its size, in the same
    transaction as the status change, so stock is restored exactly once even
    under concurrent cancels.

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
        await repository.release_pending(db, user_id=user_id, session=session)
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

    One transaction: a conditional ``pending → expired`` update, the stock
    returned, the owner's pending count released. Two sweepers (workers or
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
        await repository.release_pending(db, user_id=order["userId"], session=session)
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

    Serves ``GET /orders/{user_id}`` (brief) and ``GET /orders`` (spec §3).

    Raises:
        InvalidCursorError: the cursor is bad or was issued for other filters (400).
    """
    window = page.window(scope=LIST_SCOPE, filters={"user_id": user_id, "status": status})
    rows = await repository.list_orders(
        db, query=repository.order_filter(user_id=user_id, status=status), window=window
    )
    docs, meta = window.finish(rows)
    return [to_public(d) for d in docs], meta
