"""Event rules: one event per committed change, inside the change's own transaction (the outbox).

The write paths call one function each, passing their transaction's
``session``, exactly as they call ``audit.service.record``:

- :func:`orders_created`: every order of a placement batch (``order.created``);
- :func:`order_status_changed`: complete, cancel, expiry (``order.completed`` /
  ``order.cancelled`` / ``order.expired``);
- :func:`product_written`: a single catalog write (``product.created``,
  ``product.updated``, ``product.deleted``, ``product.stock_changed``);
- :func:`products_written`: a chunk of the bulk write (batch endpoint, import,
  demo load).

So an event exists if and only if its change committed: a transaction that
aborts takes its events with it, and a committed one cannot lack them. The
webhook dispatcher of the recording process receives them after the commit
(``events.outbox``); any dispatcher claims those it never received.
Stock taken by an order shows in ``order.created`` (its lines' ``taken``),
and stock returned by a cancel or expiry in that order's event: no
``product.stock_changed`` per line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession

from backend_app.core.cursors import SortOrder
from backend_app.core.db import MongoDatabase
from backend_app.core.pages import PageMeta
from backend_app.core.pagination import PageParams
from backend_app.core.types import oid
from backend_app.events import entities, outbox, repository
from backend_app.events.documents import EventDocument, EventTimes, FeedEvent
from backend_app.events.exceptions import EventNotFoundError
from backend_app.events.repository import EventFilter
from backend_app.events.schemas import EventPublic

logger = logging.getLogger(__name__)

#: Cursor scope of ``GET /events``.
LIST_SCOPE = "events"
#: Events removed per sweep round at most.
SWEEP_BATCH = 1000
#: What a single catalog write (its audit ``action``) publishes; ``product.stock_changed`` is added to an
#: update whose sizes' quantities changed.
PRODUCT_ACTIONS = {
    "product.create": "product.created",
    "product.replace": "product.updated",
    "product.update": "product.updated",
    "product.delete": "product.deleted",
    "product.set_quantity": "product.stock_changed",
}


def new_event(
    *, type: str, entity_type: str, entity_id: str, version: int, data: Mapping[str, Any], now: datetime | None = None
) -> EventDocument:
    """The stored form of one event (``data`` thinned when the envelope would exceed 20 KB)."""
    created = now or datetime.now(UTC)
    doc: EventDocument = {
        "_id": ObjectId(),
        "type": type,
        # BSON dates hold milliseconds: the document handed to the local dispatcher must equal the stored one.
        "created_at": created.replace(microsecond=created.microsecond // 1000 * 1000),
        "entity_type": entity_type,
        "entity_id": entity_id,
        "entity_version": version,
        "data": dict(data),
    }
    doc["data"] = entities.fit(envelope(doc))["data"]
    doc["pending_fanout"] = True
    return doc


def envelope(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The public envelope of a stored event: ``{"id", "type", "created_at", "entity", "data"}`` (JSON values)."""
    created = doc["created_at"]
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return {
        "id": str(doc["_id"]),
        "type": doc["type"],
        "created_at": created.isoformat().replace("+00:00", "Z"),
        "entity": {"type": doc["entity_type"], "id": doc["entity_id"], "version": doc["entity_version"]},
        "data": doc["data"],
    }


# --------------------------------------------------------------------------- hooks of the write paths


async def orders_created(
    db: MongoDatabase, *, orders: Sequence[Mapping[str, Any]], view: entities.View, session: AsyncClientSession
) -> None:
    """Record ``order.created`` for each just-inserted order (documents carrying their ``_id``), in ``session``.

    ``view`` is the orders' public mapping (``orders.service.to_public``).

    One ``insert_many`` for the whole placement batch. An order's creation is
    its version 1; its one terminal change (complete, cancel or expiry) is 2.
    """
    now = datetime.now(UTC)
    await outbox.insert(
        db,
        [
            new_event(
                type="order.created", entity_type="order", entity_id=str(o["_id"]), version=1,
                data=entities.order_data(o, view=view), now=now,
            )
            for o in orders
        ],
        session,
    )  # fmt: skip


async def order_status_changed(
    db: MongoDatabase, *, order: Mapping[str, Any], status: str, view: entities.View, session: AsyncClientSession
) -> None:
    """Record ``order.<status>`` (``completed``, ``cancelled``, ``expired``) for ``order`` as stored before the change.

    Called after the conditional status update, inside its transaction; the
    conditional update guarantees one terminal change per order, so it is version 2.
    """
    now = datetime.now(UTC)
    data = entities.order_data(order, view=view, status=status, updated_at=now)
    event = new_event(
        type=f"order.{status}", entity_type="order", entity_id=str(order["_id"]), version=2, data=data, now=now
    )
    await outbox.insert(db, [event], session)


def _product_types(action: str, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[str]:
    """The event types of one catalog write: its own, plus ``product.stock_changed`` when an update changed stock."""
    first = PRODUCT_ACTIONS[action]
    types = [first]
    if first == "product.updated" and entities.stock_of(before) != entities.stock_of(after):
        types.append("product.stock_changed")
    return types


async def product_written(
    db: MongoDatabase,
    *,
    action: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    view: entities.View,
    session: AsyncClientSession,
) -> None:
    """Record the events of one catalog write (stored documents before and after; ``action`` as audited), in ``session``.

    ``view`` is the products' public mapping (``products.service.to_public``).

    ``product.create`` → ``product.created``; ``product.replace``/``product.update``
    → ``product.updated`` (+ ``product.stock_changed`` when a size's quantity
    changed); ``product.set_quantity`` → ``product.stock_changed``;
    ``product.delete`` → ``product.deleted`` (``data``: the product as it was).
    """
    product = after if after is not None else before
    assert product is not None
    product_id = str(product["_id"])
    types = _product_types(action, before, after)
    if action == "product.create":
        first = 1
    else:
        later = await repository.next_versions(db, counts={f"product:{product_id}": len(types)}, session=session)
        first = later[f"product:{product_id}"] - len(types) + 2
    data = entities.product_data(product, view=view)
    now = datetime.now(UTC)
    events = [
        new_event(type=t, entity_type="product", entity_id=product_id, version=first + i, data=data, now=now)
        for i, t in enumerate(types)
    ]
    await outbox.insert(db, events, session)


async def products_written(
    db: MongoDatabase,
    *,
    entries: Sequence[Mapping[str, Any]],
    documents: Mapping[ObjectId, Mapping[str, Any]],
    view: entities.View,
    session: AsyncClientSession,
) -> None:
    """Record the events of one chunk of the catalog's bulk write, in its transaction (one ``insert_many``).

    Args:
        entries: the chunk's audit entries (``product.create`` / ``product.update``,
            ``entity_id``; an update's ``after`` holds only the fields it changed).
        documents: every product the chunk writes, as it will stand, by ``_id``.
        view: the products' public mapping (``products.service.to_public``).
    """
    planned: list[tuple[str, str]] = []  # (product id, type)
    for entry in entries:
        product_id = entry["entity_id"]
        if entry["action"] == "product.create":
            planned.append((product_id, "product.created"))
            continue
        planned.append((product_id, "product.updated"))
        if "sizes" in (entry.get("after") or {}):
            planned.append((product_id, "product.stock_changed"))
    counts: dict[str, int] = {}
    created = {pid for pid, t in planned if t == "product.created"}
    for pid, _t in planned:
        if pid not in created:
            counts[f"product:{pid}"] = counts.get(f"product:{pid}", 0) + 1
    later = await repository.next_versions(db, counts=counts, session=session)
    next_of = dict.fromkeys(created, 1)
    for key, n in counts.items():
        next_of[key.split(":", 1)[1]] = later[key] - n + 2
    now = datetime.now(UTC)
    events = []
    for pid, t in planned:
        version = next_of[pid]
        next_of[pid] += 1
        doc = documents[ObjectId(pid)]
        events.append(
            new_event(
                type=t,
                entity_type="product",
                entity_id=pid,
                version=version,
                data=entities.product_data(doc, view=view),
                now=now,
            )
        )
    await outbox.insert(db, events, session)


# --------------------------------------------------------------------------- the feed


def to_public(doc: Mapping[str, Any]) -> EventPublic:
    """A stored event in its public form (the envelope)."""
    return EventPublic.model_validate(envelope(doc))


async def list_events(
    db: MongoDatabase, *, type: str | None = None, entity_id: str | None = None, page: PageParams
) -> tuple[list[EventPublic], PageMeta]:
    """One page of the feed, newest first (``created_at``, then ``_id``), filtered by ``type`` and/or ``entity_id``.

    Raises:
        InvalidCursorError: the cursor is bad or was issued for other filters (400).
    """
    filters = EventFilter(type=type, entity_id=entity_id)
    window = page.window(
        scope=LIST_SCOPE, filters=filters.fingerprint_fields(), sort=SortOrder.parse(repository.SORT_TOKEN)
    )
    docs, meta = window.finish(await repository.list_events(db, filters=filters, window=window))
    return [to_public(d) for d in docs], meta


async def get_event(db: MongoDatabase, *, event_id: str) -> EventPublic:
    """One event of the feed.

    Raises:
        EventNotFoundError: no such event, or removed after its retention (404).
    """
    doc = await repository.get_event(db, event_id=oid(event_id))
    if doc is None:
        raise EventNotFoundError(event_id)
    return to_public(doc)


# --------------------------------------------------------------------------- the outbox, for the dispatcher

#: Registers this process's dispatcher for the events it records (``events.outbox``).
consume_locally = outbox.consume_locally


async def claim_outbox(
    db: MongoDatabase, *, now: datetime, lease_until: datetime, token: str, limit: int
) -> list[EventDocument]:
    """Lease up to ``limit`` outbox events whose lease is over (their recorder died, or ran no dispatcher); returns them."""
    return await repository.claim_outbox(db, now=now, lease_until=lease_until, token=token, limit=limit)


async def mark_fanned_out(db: MongoDatabase, *, event_ids: list[ObjectId]) -> None:
    """Take events out of the outbox once the outcome of each of their first attempts is recorded."""
    await repository.mark_fanned_out(db, event_ids=event_ids)


async def release_fanout(db: MongoDatabase, *, event_ids: list[ObjectId], token: str) -> None:
    """Hand back ``token``'s outbox events (a dispatcher shutting down), so another may claim them at once."""
    await repository.release_fanout(db, event_ids=event_ids, token=token)


async def get_events(db: MongoDatabase, *, event_ids: list[ObjectId]) -> dict[ObjectId, FeedEvent]:
    """The stored events among ``event_ids`` still kept, by ``_id``."""
    return await repository.get_events(db, event_ids=event_ids)


async def oldest_pending_fanout(db: MongoDatabase) -> datetime | None:
    """``created_at`` of the oldest event still in the outbox, or ``None``."""
    return await repository.oldest_pending_fanout(db)


async def events_between(
    db: MongoDatabase, *, since: datetime, until: datetime, types: Sequence[str] | None, limit: int
) -> list[EventTimes]:
    """Stored events (``_id``, ``type``, ``created_at``) created in ``[since, until)``, oldest first, at most ``limit``."""
    return await repository.find_in_range(db, since=since, until=until, types=types, limit=limit)


async def record_ping(db: MongoDatabase, *, endpoint_id: str, url: str, session: AsyncClientSession) -> EventDocument:
    """Record a ``ping`` event for one endpoint's test delivery (kept out of the outbox: it goes to that endpoint only)."""
    version = 1 + await repository.next_version(db, key=f"webhook_endpoint:{endpoint_id}", session=session)
    event = new_event(
        type="ping", entity_type="webhook_endpoint", entity_id=endpoint_id, version=version,
        data={"endpoint_id": endpoint_id, "url": url, "message": "A test delivery from storefront."},
    )  # fmt: skip
    event.pop("pending_fanout")
    await repository.insert_events(db, events=[event], session=session)
    return event


# --------------------------------------------------------------------------- retention


async def remove_expired(db: MongoDatabase, *, retention_days: float, now: datetime | None = None) -> int:
    """Delete events older than ``retention_days`` (``EVENTS_RETENTION_DAYS``); returns how many.

    Deletes in rounds of :data:`SWEEP_BATCH` by the ``by_time`` index; safe in
    every process at once (two sweepers deleting one event: one deletes it, the other finds nothing).
    """
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    removed = 0
    while True:
        n = await repository.delete_older_than(db, cutoff=cutoff, limit=SWEEP_BATCH)
        removed += n
        if n < SWEEP_BATCH:
            return removed


async def run_retention_sweeper(
    db: MongoDatabase, *, retention_days: float, interval_s: float, also: Sequence[Callable[..., Any]] = ()
) -> None:
    """Background task of every process: :func:`remove_expired` (and each of ``also(db, cutoff=...)``) every ``interval_s``.

    ``also`` lets the webhooks package remove deliveries past the same retention
    without this package knowing them. Errors are logged and the loop goes on;
    it ends when cancelled. No TTL index is involved: TTL deletion timing is the
    server's, cannot be bounded by the app, and the embedded server has none.
    """
    while True:
        try:
            await remove_expired(db, retention_days=retention_days)
            cutoff = datetime.now(UTC) - timedelta(days=retention_days)
            for extra in also:
                await extra(db, cutoff=cutoff)
        except asyncio.CancelledError:
            raise
        except Exception:
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # the driver turned our cancellation into its own error
                raise asyncio.CancelledError from None
            logger.warning("event retention sweep failed; retrying in %.0fs", interval_s, exc_info=True)
        await asyncio.sleep(interval_s)
