"""Order rules: placing, status changes, expiry, reading.

Placing runs in batches (``orders.placement``); the pure line rules are in
``orders.allocation``; stock is reached through ``products.stock``. Design,
measurements and failure cases: docs/architecture.md (Orders and stock).

Single points where an outcome is final (for metrics and logs):
:func:`_placed`, :func:`_refused`, :func:`_status_changed` (cancel/complete)
and :func:`_expired`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession

from backend_app.audit import service as audit
from backend_app.core import metrics
from backend_app.core.db import MongoDatabase, run_in_transaction
from backend_app.core.errors import DomainError, ForbiddenError
from backend_app.core.pages import PageMeta
from backend_app.core.pagination import PageParams
from backend_app.core.types import oid
from backend_app.events import service as events
from backend_app.idempotency import service as idempotency
from backend_app.orders import faults, forwarding, history_repository, holds_repository, repository
from backend_app.orders.allocation import check_units_per_line, merge_lines, order_units
from backend_app.orders.batch_checks import DEFAULT_LIMITS, REFUSALS, Limits, OrderToPlace
from backend_app.orders.documents import OrderDocument
from backend_app.orders.exceptions import (
    InvalidStatusTransitionError,
    LineUnitsExceededError,
    OrderNotFoundError,
)
from backend_app.orders.placement import batcher_for, ensure_holds
from backend_app.orders.schemas import (
    OrderItemCreate,
    OrderPublic,
    OrderStatus,
    SettableStatus,
)
from backend_app.orders.views import to_public
from backend_app.products import stock

logger = logging.getLogger(__name__)

#: Cursor scope of the order lists (a cursor of another list is foreign here).
LIST_SCOPE = "orders"
#: Legal status changes; anything else → 409.
TRANSITIONS: dict[str, frozenset[str]] = {"pending": frozenset({"completed", "cancelled"})}
#: Orders expired per sweep round at most (the next round takes the rest).
EXPIRY_BATCH = 100
#: The transitions an order's owner may make without the admin role: ``pending → cancelled``.
OWNER_TRANSITIONS: frozenset[str] = frozenset({"cancelled"})
#: Name under which the conversion to the inventory model is recorded (``schema_migrations``).
INVENTORY_MIGRATION = "inventory-on-hand-allocated"


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
    placed_by: str | None = None,
    claim: idempotency.Claim | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> str:
    """Place an order for ``user_id`` and return its id (brief ``POST /orders``), once per call.

    No idempotency here: the route calls :func:`place_order_idempotently`, which
    calls this with the key's ``claim``.

    Lines are merged first; then the order joins this process's next batch
    (``orders.placement``): one multi-document transaction, committed with
    :data:`~backend_app.core.db.DURABLE` write concern, that allocates every
    line's stock, raises the owner's holds, inserts the order (with
    ``placed_by``, and an audit entry when someone else placed it) and, with an
    idempotency ``claim``, completes the key. All of it commits or none of it
    does. Unit prices and names are captured from the
    database at order time; ``total`` = Σ qty × unit price, exact.

    Args:
        placed_by: the username placing the order (default: ``user_id``).
        limits: the reservation limits (``Limits.from_settings``); the owner's
            caps count this order with those already pending.

    Raises:
        LineUnitsExceededError: a product's merged lines pass ``limits.max_units_per_line`` (422).
        OrderedProductNotFoundError: a product is unknown or soft-deleted (404).
        UnknownSizeError: a line names a size the product lacks (422).
        InsufficientStockError: some lines are short of what is available (409).
        TooManyPendingOrdersError: ``user_id`` holds ``limits.max_pending`` pending orders (409).
        TooManyPendingUnitsError: the order would make ``user_id`` hold more than ``limits.max_pending_units`` (409).
        DatabaseUnavailableError: the database is unreachable (503).
    """
    lines = merge_lines(items)
    try:
        check_units_per_line(lines, max_units=limits.max_units_per_line)
        order = OrderToPlace(ObjectId(), user_id, placed_by or user_id, lines, claim, limits)
        leader = forwarding.leader_for(db)
        order_id = await (leader.place(order) if leader is not None else batcher_for(db).place(db, order))
    except (*REFUSALS, LineUnitsExceededError) as exc:
        _refused(exc, user_id=user_id)
        raise
    faults.reach("committed")
    _placed(order_id, user_id=user_id, lines=len(lines))
    return str(order_id)


async def place_order_idempotently(
    db: MongoDatabase,
    *,
    caller: str,
    user_id: str,
    items: list[OrderItemCreate],
    idempotency_key: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> tuple[str, bool]:
    """:func:`place_order` behind an ``Idempotency-Key``: the entry point of ``POST /orders``.

    Without a key it is :func:`place_order`. With one, a retry with the same
    key and body replays the first order's id instead of placing another.

    Args:
        caller: the authenticated username: idempotency keys are scoped to it, and the order records
            it as ``placed_by``.
        user_id: whose order it is (authorized by the router).
        items: the requested lines.
        idempotency_key: the header's value, if sent.
        limits: the reservation limits (``Limits.from_settings``).

    Returns:
        ``(order_id, replayed)``: ``replayed`` is True when an earlier request
        with the same key and body already placed the order (no stock taken now).

    Raises:
        IdempotencyKeyReusedError: the key was used with another body (422).
        IdempotencyInFlightError: the first request with the key is still running (409).
        plus everything :func:`place_order` raises.
    """
    if idempotency_key is None:
        return await place_order(db, user_id=user_id, placed_by=caller, items=items, limits=limits), False
    fingerprint = idempotency.request_fingerprint(
        "POST /orders", {"userId": user_id, "items": [item.model_dump() for item in items]}
    )
    outcome = await idempotency.begin(db, owner=caller, key=idempotency_key, fingerprint=fingerprint)
    if isinstance(outcome, idempotency.Replay):
        return str(outcome.response["id"]), True
    faults.reach("key_claimed")
    try:
        order_id = await place_order(db, user_id=user_id, placed_by=caller, items=items, claim=outcome, limits=limits)
    except BaseException:
        await idempotency.release(db, claim=outcome)
        raise
    return order_id, False


async def change_status(
    db: MongoDatabase, *, user_id: str, order_id: str, status: SettableStatus, as_admin: bool, actor: str
) -> OrderPublic:
    """Move an order to ``status`` (``PATCH /orders/{user_id}/{order_id}``).

    ``pending → completed`` (admin) and ``pending → cancelled`` (owner or
    admin). Cancelling puts the order's allocated units back on sale;
    completing takes them off the shelf (``products.stock``); either releases
    the owner's holds, in the same transaction as the status change, so stock
    changes exactly once whoever races for the order. A change made as admin is
    recorded in the audit trail (``order.status`` by ``actor``) in the same
    transaction.

    Raises:
        ForbiddenError: a non-admin asked for a transition other than cancelling (403).
        OrderNotFoundError: no such order of ``user_id`` (404).
        InvalidStatusTransitionError: not a legal transition from the current status (409).
    """
    if not as_admin and status not in OWNER_TRANSITIONS:
        raise ForbiddenError("Only an admin can set this status; you may cancel a pending order.")
    order_oid = oid(order_id)
    seen = await repository.get_order(db, user_id=user_id, order_id=order_oid)
    if seen is None:
        raise OrderNotFoundError(order_id)

    async def audit_change(session: AsyncClientSession, current: str) -> None:
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

    await _leave_pending(db, order=seen, status=status, before_commit=audit_change)
    _status_changed(order_oid, status=status)
    return await get_order(db, user_id=user_id, order_id=order_id)


async def _leave_pending(
    db: MongoDatabase,
    *,
    order: OrderDocument,
    status: str,
    before_commit: Callable[[AsyncClientSession, str], Awaitable[None]] | None = None,
) -> bool:
    """Move ``order`` (as read before) from ``pending`` to ``status`` and settle its stock, exactly once.

    One transaction that re-reads the order, changes its status
    conditionally, releases (``cancelled``, ``expired``) or fulfils
    (``completed``) its allocated units, and lowers the owner's holds. Racing
    transitions write the same order document: one commits, the others run
    again, find it no longer ``pending`` and change nothing.
    ``before_commit(session, current_status)`` adds a write to the same
    transaction (the audit entry).

    Returns:
        True when this call made the change; False when the order had already
        left ``pending`` as ``status`` wanted it (expiry only: a sweeper lost the race).

    Raises:
        InvalidStatusTransitionError: the order is not ``pending`` (any transition but expiry).
    """
    units = order_units(order)
    owner = order["userId"]
    await ensure_holds(db, user_ids=[owner])

    async def work(session: AsyncClientSession) -> bool:
        current = await repository.get_by_id(db, order_id=order["_id"], session=session)
        faults.reach("transition_read")
        state = current["status"] if current is not None else "missing"
        if status not in TRANSITIONS.get(state, frozenset()) and not (status == "expired" and state == "pending"):
            if status == "expired":
                return False
            raise InvalidStatusTransitionError(state, status)
        if not await repository.set_status(
            db, order_id=order["_id"], current="pending", status=status, session=session
        ):
            raise InvalidStatusTransitionError(state, status)
        assert current is not None  # a missing order has no transition, refused above
        await events.order_status_changed(db, order=current, status=status, view=to_public, session=session)
        for product_id, per_size in units.items():
            settle = stock.fulfil if status == "completed" else stock.release
            if not await settle(db, product_id=product_id, units=per_size, session=session):
                logger.error(
                    "order's allocation not found on its product; stock left as it is",
                    extra={"order_id": str(order["_id"]), "product_id": str(product_id)},
                )
        units_held = sum(item["qty"] for item in order["items"])
        await holds_repository.change_holds(db, changes={owner: (-1, -units_held)}, session=session)
        if before_commit is not None:
            await before_commit(session, state)
        faults.reach("transition_settled")
        return True

    changed = bool(await run_in_transaction(db.client, work))
    if changed:
        faults.reach("transition_committed")
    return changed


async def expire_order(db: MongoDatabase, *, order_id: ObjectId) -> bool:
    """Move one pending order to ``expired`` and release its stock, exactly once; False if it is no longer pending.

    Two sweepers (workers or hosts) racing for one order write the same order
    document: one commits, the other runs again, finds it ``expired`` and
    changes nothing.
    """
    order = await repository.get_by_id(db, order_id=order_id, session=None)
    if order is None or order["status"] != "pending":
        return False
    expired = await _leave_pending(db, order=order, status="expired")
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
    delete orders and could not release their stock).
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


async def convert_to_inventory_model(db: MongoDatabase) -> None:
    """Start-up conversion of data stored before on-hand/allocated stock and owner holds; idempotent.

    Before, each size stored what was available, and the pending-order cap
    counted an owner's pending orders. This computes what pending orders hold,
    converts every product's sizes (``products.stock.convert_legacy_stock``),
    creates each owner's holds document, then records the conversion so later
    start-ups skip it with one read. Every process may run it at once: each
    product is converted once, and existing holds are left as they are. All
    processes must run this version (older ones write the old shape).
    """
    if await repository.migration_applied(db, name=INVENTORY_MIGRATION):
        return
    by_size, by_owner = await repository.pending_totals(db)
    converted = await stock.convert_legacy_stock(db, allocated=by_size)
    await holds_repository.insert_holds_if_missing(db, holds=by_owner)
    await repository.record_migration(db, name=INVENTORY_MIGRATION)
    if converted:
        logger.info("converted %d products to on-hand and allocated stock", converted)


async def get_order(db: MongoDatabase, *, user_id: str, order_id: str) -> OrderPublic:
    """One order of ``user_id`` with lines, status and timestamps (``GET /orders/{user_id}/{order_id}``).

    Raises:
        OrderNotFoundError: no such order of ``user_id`` (404).
    """
    doc = await history_repository.get_order_with_details(db, user_id=user_id, order_id=oid(order_id))
    if doc is None:
        raise OrderNotFoundError(order_id)
    return to_public(doc)


async def list_orders(
    db: MongoDatabase, *, user_id: str | None = None, status: OrderStatus | None = None, page: PageParams
) -> tuple[list[OrderPublic], PageMeta]:
    """One page of orders in ascending ``_id`` order, optionally of one user and/or one status.

    Serves ``GET /orders/{user_id}`` (brief) and ``GET /orders`` (a user's own orders, or everyone's for an admin).

    Raises:
        InvalidCursorError: the cursor is bad or was issued for other filters (400).
    """
    window = page.window(scope=LIST_SCOPE, filters={"user_id": user_id, "status": status})
    rows = await history_repository.list_orders(
        db, query=repository.order_filter(user_id=user_id, status=status), window=window
    )
    docs, meta = window.finish(rows)
    return [to_public(d) for d in docs], meta
