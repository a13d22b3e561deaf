"""MongoDB access for ``webhook_endpoints`` and ``webhook_deliveries``: the only place building their filters.

Stored documents are :class:`~backend_app.webhooks.documents.EndpointDocument`
and :class:`~backend_app.webhooks.documents.DeliveryDocument` (how deliveries
are created and leased is told there).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypedDict, cast

from bson import ObjectId
from pymongo import ASCENDING, ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from backend_app.core.db import MongoDatabase
from backend_app.core.keyset import find_window
from backend_app.core.pagination import PageWindow, Row
from backend_app.events.documents import EventTimes
from backend_app.webhooks.documents import (
    AttemptRecord,
    ClaimedDelivery,
    DeliveryDocument,
    EndpointDocument,
    PublicEndpoint,
    SigningKey,
)

ENDPOINTS = "webhook_endpoints"
DELIVERIES = "webhook_deliveries"
#: ``lease_until`` of a delivery nobody holds.
NO_LEASE = datetime(1970, 1, 1, tzinfo=UTC)
#: Attempts kept per delivery (the newest).
MAX_ATTEMPTS_KEPT = 50
DUPLICATE_KEY = 11000
#: Never returned outside the dispatcher.
NO_SECRETS = {"signing_keys": 0}


def _endpoints(db: MongoDatabase, row: type[Row]) -> AsyncCollection[Row]:
    """``webhook_endpoints``, its documents typed as ``row`` (:class:`EndpointDocument`, or :class:`PublicEndpoint`
    when read with :data:`NO_SECRETS`)."""
    return cast("AsyncCollection[Row]", db[ENDPOINTS])


def _deliveries(db: MongoDatabase, row: type[Row]) -> AsyncCollection[Row]:
    """``webhook_deliveries``, its documents typed as ``row`` (:class:`DeliveryDocument`, or what a read projects)."""
    return cast("AsyncCollection[Row]", db[DELIVERIES])


async def ensure_indexes(db: MongoDatabase) -> None:
    """Create the webhook indexes (idempotent; start-up).

    - ``event_endpoint_unique`` ``{event_id, endpoint_id}``: one delivery per event and endpoint, so fan-out
      and replays by several processes never queue an event twice for one endpoint.
    - ``due`` ``{status, next_attempt_at}``: the dispatcher's claim of due pending deliveries, and the
      outbox lag (the oldest pending delivery: pending ones are few, read every few seconds).
    - ``by_endpoint`` ``{endpoint_id, _id}``: an endpoint's deliveries, newest first; deleting them with it.
    - the ``_id`` index: the retention sweep (an ObjectId starts with its creation second).

    Every index costs each delivery's writes (two or three per delivery), so there are no more than these.
    """
    deliveries = db[DELIVERIES]
    await deliveries.create_index(
        [("event_id", ASCENDING), ("endpoint_id", ASCENDING)], name="event_endpoint_unique", unique=True
    )
    await deliveries.create_index([("status", ASCENDING), ("next_attempt_at", ASCENDING)], name="due")
    await deliveries.create_index([("endpoint_id", ASCENDING), ("_id", ASCENDING)], name="by_endpoint")
    await db[ENDPOINTS].create_index([("status", ASCENDING), ("_id", ASCENDING)], name="by_status")


# --------------------------------------------------------------------------- endpoints


async def insert_endpoint(db: MongoDatabase, *, endpoint: EndpointDocument, session: AsyncClientSession) -> None:
    """Insert a new endpoint document (carrying its ``_id``)."""
    await _endpoints(db, EndpointDocument).insert_one(endpoint, session=session)


async def get_endpoint(
    db: MongoDatabase, *, endpoint_id: ObjectId, session: AsyncClientSession | None = None
) -> PublicEndpoint | None:
    """One endpoint without its signing keys, or ``None``."""
    return await _endpoints(db, PublicEndpoint).find_one({"_id": endpoint_id}, NO_SECRETS, session=session)


async def list_endpoints(db: MongoDatabase, *, window: PageWindow) -> list[PublicEndpoint]:
    """Up to ``window.fetch`` endpoints in ``_id`` order at the window's position, without signing keys."""
    return await find_window(_endpoints(db, PublicEndpoint), {}, window, projection=NO_SECRETS)


async def update_endpoint(
    db: MongoDatabase,
    *,
    endpoint_id: ObjectId,
    changes: dict[str, Any],
    session: AsyncClientSession,
    only_if_status: list[str] | None = None,
) -> PublicEndpoint | None:
    """Set ``changes`` on an endpoint (optionally only while its status is one of ``only_if_status``).

    Returns the endpoint after the change (no signing keys), or ``None`` when nothing matched.
    """
    query: dict[str, Any] = {"_id": endpoint_id}
    if only_if_status is not None:
        query["status"] = {"$in": only_if_status}
    return await _endpoints(db, PublicEndpoint).find_one_and_update(
        query, {"$set": changes}, projection=NO_SECRETS, return_document=ReturnDocument.AFTER, session=session
    )


async def signing_keys(
    db: MongoDatabase, *, endpoint_id: ObjectId, session: AsyncClientSession
) -> list[SigningKey] | None:
    """An endpoint's signing keys (for a rotation), or ``None`` when it does not exist."""
    doc = await _endpoints(db, EndpointDocument).find_one({"_id": endpoint_id}, {"signing_keys": 1}, session=session)
    return None if doc is None else list(doc.get("signing_keys", []))


async def set_signing_keys(
    db: MongoDatabase, *, endpoint_id: ObjectId, keys: list[SigningKey], now: datetime, session: AsyncClientSession
) -> PublicEndpoint | None:
    """Replace an endpoint's signing keys; returns the endpoint (no keys) or ``None``."""
    return await _endpoints(db, PublicEndpoint).find_one_and_update(
        {"_id": endpoint_id},
        {"$set": {"signing_keys": keys, "updated_at": now}},
        projection=NO_SECRETS,
        return_document=ReturnDocument.AFTER,
        session=session,
    )


async def delete_endpoint(db: MongoDatabase, *, endpoint_id: ObjectId, session: AsyncClientSession) -> bool:
    """Delete an endpoint and its deliveries; False when it did not exist."""
    result = await db[ENDPOINTS].delete_one({"_id": endpoint_id}, session=session)
    if result.deleted_count:
        await db[DELIVERIES].delete_many({"endpoint_id": endpoint_id}, session=session)
    return bool(result.deleted_count)


async def endpoints_for_dispatch(db: MongoDatabase) -> list[EndpointDocument]:
    """Every endpoint that is not disabled, signing keys included (the dispatcher's only read of them)."""
    cursor = _endpoints(db, EndpointDocument).find({"status": {"$in": ["enabled", "failing"]}})
    return await cursor.to_list(length=None)


async def endpoints_by_ids(db: MongoDatabase, *, endpoint_ids: list[ObjectId]) -> list[EndpointDocument]:
    """The endpoints among ``endpoint_ids``, signing keys included (the dispatcher, for the deliveries it claimed)."""
    cursor = _endpoints(db, EndpointDocument).find({"_id": {"$in": endpoint_ids}})
    return await cursor.to_list(length=None)


# --------------------------------------------------------------------------- deliveries


class _NewDeliveryFields(TypedDict):
    """What every new delivery starts with, however it is created."""

    event_type: str
    event_created_at: datetime
    attempts: list[AttemptRecord]
    created_at: datetime
    lease_until: datetime
    lease_token: str | None
    delivered_at: datetime | None


def _new_delivery_fields(event: EventTimes, now: datetime) -> _NewDeliveryFields:
    return {
        "event_type": event["type"],
        "event_created_at": event["created_at"],
        "attempts": [],
        "created_at": now,
        "lease_until": NO_LEASE,
        "lease_token": None,
        "delivered_at": None,
    }


def _unflagged_errors(exc: BulkWriteError) -> list[dict[str, Any]]:
    return [e for e in exc.details.get("writeErrors", []) if e.get("code") != DUPLICATE_KEY]


def first_outcome_document(
    *,
    delivery_id: ObjectId,
    event: EventTimes,
    endpoint_id: ObjectId,
    changes: Mapping[str, Any],
    attempt: AttemptRecord,
    now: datetime,
) -> DeliveryDocument:
    """The delivery recording a first attempt's outcome (``changes`` as :func:`settle` takes them), lease-free."""
    # ``changes`` (an outcome's fields, ``webhooks.outcomes.decide``) is a plain mapping over some of these fields,
    # so the whole is asserted to be a delivery.
    return cast(DeliveryDocument, {
        "_id": delivery_id, "endpoint_id": endpoint_id, "event_id": event["_id"],
        **_new_delivery_fields(event, now),
        "status": "pending", "next_attempt_at": None, "schedule_step": 0,
        **changes,
        "attempts": [attempt], "updated_at": now,
    })  # fmt: skip


async def record_first_outcomes(db: MongoDatabase, *, documents: list[DeliveryDocument]) -> set[int]:
    """Insert deliveries made by :func:`first_outcome_document` (one unordered ``insert_many``).

    One write per delivery whose first attempt decided it (the common case: a
    ``2xx``): the delivery exists only from its first outcome on, and the
    event's outbox lease covered it until then. Returns the indexes refused
    as duplicates on ``(event_id, endpoint_id)``: another process recorded
    that pair (it held the event after this process's lease ran out), and its
    record stands.
    """
    if not documents:
        return set()
    try:
        await _deliveries(db, DeliveryDocument).insert_many(documents, ordered=False)
    except BulkWriteError as exc:
        if _unflagged_errors(exc):
            raise
        return {int(e["index"]) for e in exc.details.get("writeErrors", [])}
    return set()


async def existing_pairs(db: MongoDatabase, *, event_ids: list[ObjectId]) -> set[tuple[ObjectId, ObjectId]]:
    """``(event_id, endpoint_id)`` of the deliveries that exist for ``event_ids`` (index ``event_endpoint_unique``)."""
    if not event_ids:
        return set()
    cursor = db[DELIVERIES].find({"event_id": {"$in": event_ids}}, {"event_id": 1, "endpoint_id": 1, "_id": 0})
    return {(doc["event_id"], doc["endpoint_id"]) async for doc in cursor}


async def requeue_deliveries(
    db: MongoDatabase,
    *,
    pairs: list[tuple[EventTimes, ObjectId]],
    now: datetime,
    session: AsyncClientSession | None = None,
) -> int:
    """Queue each ``(event, endpoint_id)`` for an attempt now: new ones created, existing ones reset.

    A delivery being sent right now (live lease) is left alone (it is being
    sent anyway). Returns how many were created or reset.
    """
    if not pairs:
        return 0
    ops = [
        UpdateOne(
            {"event_id": event["_id"], "endpoint_id": endpoint_id, "lease_until": {"$lte": now}},
            {
                "$set": {"status": "pending", "next_attempt_at": now, "schedule_step": 0, "updated_at": now},
                "$setOnInsert": _new_delivery_fields(event, now),
            },
            upsert=True,
        )
        for event, endpoint_id in pairs
    ]
    try:
        result = await db[DELIVERIES].bulk_write(ops, ordered=False, session=session)
    except BulkWriteError as exc:
        if _unflagged_errors(exc):
            raise
        details = exc.details
        return int(details.get("nMatched", 0)) + int(details.get("nUpserted", 0))
    return result.matched_count + result.upserted_count


async def insert_delivery(
    db: MongoDatabase, *, event: EventTimes, endpoint_id: ObjectId, now: datetime, session: AsyncClientSession
) -> DeliveryDocument:
    """Insert a pending delivery of ``event`` to ``endpoint_id``, due now; returns it."""
    doc: DeliveryDocument = {
        "_id": ObjectId(),
        "endpoint_id": endpoint_id,
        "event_id": event["_id"],
        **_new_delivery_fields(event, now),
        "status": "pending",
        "next_attempt_at": now,
        "schedule_step": 0,
        "updated_at": now,
    }
    await _deliveries(db, DeliveryDocument).insert_one(doc, session=session)
    return doc


async def get_delivery(db: MongoDatabase, *, delivery_id: ObjectId) -> DeliveryDocument | None:
    """One delivery, or ``None``."""
    return await _deliveries(db, DeliveryDocument).find_one({"_id": delivery_id})


async def list_deliveries(db: MongoDatabase, *, endpoint_id: ObjectId, window: PageWindow) -> list[DeliveryDocument]:
    """Up to ``window.fetch`` deliveries of one endpoint in the window's order (index ``by_endpoint``)."""
    return await find_window(_deliveries(db, DeliveryDocument), {"endpoint_id": endpoint_id}, window)


async def reset_for_retry(db: MongoDatabase, *, delivery_id: ObjectId, now: datetime) -> DeliveryDocument | None:
    """Queue a delivery for an attempt now with a fresh schedule, unless it is being sent; returns it or ``None``."""
    return await _deliveries(db, DeliveryDocument).find_one_and_update(
        {"_id": delivery_id, "lease_until": {"$lte": now}},
        {"$set": {"status": "pending", "next_attempt_at": now, "schedule_step": 0, "updated_at": now}},
        return_document=ReturnDocument.AFTER,
    )


async def claim_due(
    db: MongoDatabase, *, now: datetime, lease_until: datetime, token: str, limit: int
) -> list[ClaimedDelivery]:
    """Claim up to ``limit`` due pending deliveries for this process (lease ``token`` until ``lease_until``).

    A candidate read, one conditional ``update_many`` (a delivery another
    process claimed meanwhile no longer matches: its lease is live), and a read
    of what this token won. Three round trips however many are claimed.
    """
    due = {"status": "pending", "next_attempt_at": {"$lte": now}, "lease_until": {"$lte": now}}
    cursor = (
        db[DELIVERIES].find(due, {"_id": 1}).sort([("status", ASCENDING), ("next_attempt_at", ASCENDING)]).limit(limit)
    )
    ids = [doc["_id"] async for doc in cursor]
    if not ids:
        return []
    await db[DELIVERIES].update_many(
        {**due, "_id": {"$in": ids}}, {"$set": {"lease_until": lease_until, "lease_token": token}}
    )
    claimed = _deliveries(db, ClaimedDelivery).find({"_id": {"$in": ids}, "lease_token": token}, {"attempts": 0})
    return await claimed.to_list(length=limit)


def _settle_update(changes: Mapping[str, Any], attempt: AttemptRecord | None) -> dict[str, Any]:
    """The update writing an outcome: ``changes``, the lease released, the attempt appended (the newest 50 kept)."""
    update: dict[str, Any] = {"$set": {**changes, "lease_until": NO_LEASE, "lease_token": None}}
    if attempt is not None:
        update["$push"] = {"attempts": {"$each": [attempt], "$slice": -MAX_ATTEMPTS_KEPT}}
    return update


async def settle(
    db: MongoDatabase,
    *,
    delivery_id: ObjectId,
    token: str,
    changes: Mapping[str, Any],
    attempt: AttemptRecord | None,
    session: AsyncClientSession | None = None,
) -> bool:
    """Write an attempt's outcome and release the lease, only if ``token`` still holds it; False if it was lost."""
    update = _settle_update(changes, attempt)
    result = await db[DELIVERIES].update_one({"_id": delivery_id, "lease_token": token}, update, session=session)
    return result.modified_count == 1


async def settle_many(db: MongoDatabase, *, outcomes: list[dict[str, Any]]) -> list[bool]:
    """:func:`settle` for several deliveries in one ``bulk_write`` (``delivery_id``, ``token``, ``changes``, ``attempt`` each).

    Returns, per outcome, whether it was written (False only when every
    outcome of the batch could not be told apart, i.e. some lease was lost).
    """
    if not outcomes:
        return []
    ops = [
        UpdateOne({"_id": o["delivery_id"], "lease_token": o["token"]}, _settle_update(o["changes"], o["attempt"]))
        for o in outcomes
    ]
    result = await db[DELIVERIES].bulk_write(ops, ordered=False)
    all_written = result.matched_count == len(ops)
    return [all_written] * len(ops)


async def oldest_undelivered(db: MongoDatabase) -> datetime | None:
    """``event_created_at`` of the oldest pending delivery, or ``None`` (the pending range of index ``due``)."""
    doc = await db[DELIVERIES].find_one(
        {"status": "pending"}, {"event_created_at": 1}, sort=[("event_created_at", ASCENDING)]
    )
    return doc["event_created_at"] if doc else None


async def delete_older_than(db: MongoDatabase, *, cutoff: datetime) -> int:
    """Delete deliveries created before ``cutoff`` (retention, with their events); returns how many.

    By ``_id`` (its ObjectId, given by the server or the driver when the delivery is created, starts with that second).
    """
    result = await db[DELIVERIES].delete_many({"_id": {"$lt": ObjectId.from_datetime(cutoff)}})
    return result.deleted_count
