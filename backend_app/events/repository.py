"""MongoDB access for ``events`` (outbox and feed) and ``event_versions``: the only place building their filters.

Stored documents are :class:`~backend_app.events.documents.EventDocument` (what
the outbox fields mean is told there) and
:class:`~backend_app.events.documents.VersionDocument`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, cast

from bson import ObjectId
from pymongo import ASCENDING, ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

from backend_app.core.db import MongoDatabase
from backend_app.core.keyset import find_window
from backend_app.core.pagination import PageWindow, Row
from backend_app.events.documents import EventDocument, EventTimes, FeedEvent, VersionDocument

COLLECTION = "events"
VERSIONS = "event_versions"
#: The feed's order: newest first (``created_at``, then ``_id``).
SORT_TOKEN = "-created_at"  # noqa: S105 - a name, not a secret


def _events(db: MongoDatabase, row: type[Row]) -> AsyncCollection[Row]:
    """The ``events`` collection, its documents typed as ``row`` (the whole :class:`EventDocument` or what a read projects)."""
    return cast("AsyncCollection[Row]", db[COLLECTION])


def _versions(db: MongoDatabase) -> AsyncCollection[VersionDocument]:
    """The ``event_versions`` collection, its documents typed as stored."""
    return cast("AsyncCollection[VersionDocument]", db[VERSIONS])


INDEXES: list[tuple[str, list[tuple[str, int]], dict[str, Any]]] = [
    ("by_time", [("created_at", ASCENDING), ("_id", ASCENDING)], {}),
    ("by_type", [("type", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)], {}),
    ("by_entity", [("entity_id", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)], {}),
    (
        "outbox",
        [("pending_fanout", ASCENDING), ("_id", ASCENDING)],
        {"partialFilterExpression": {"pending_fanout": True}},
    ),
]


async def ensure_indexes(db: MongoDatabase) -> None:
    """Create the event indexes (idempotent; start-up).

    - ``by_time``: the feed unfiltered, replays by time range, and the retention sweep.
    - ``by_type``, ``by_entity``: the feed's ``type`` and ``entity_id`` filters (equality, then the time range).
    - ``outbox``: events not yet fanned out to endpoints (partial: only those carry the flag).
    """
    coll = db[COLLECTION]
    for name, keys, options in INDEXES:
        await coll.create_index(keys, name=name, **options)


async def insert_events(db: MongoDatabase, *, events: list[EventDocument], session: AsyncClientSession | None) -> None:
    """Insert ``events`` (inside ``session``'s transaction): one ``insert_one``, or one ordered ``insert_many``."""
    if len(events) == 1:
        await _events(db, EventDocument).insert_one(events[0], session=session)
    elif events:
        await _events(db, EventDocument).insert_many(events, ordered=True, session=session)


async def next_versions(db: MongoDatabase, *, counts: dict[str, int], session: AsyncClientSession) -> dict[str, int]:
    """Reserve ``counts[key]`` more versions for each entity ``key``; returns each key's new ``later`` count.

    One ``bulk_write`` of upserted ``$inc`` and one ``find`` inside the change's
    transaction: two transactions changing one entity also write the entity
    itself, so they conflict and one re-runs; versions never repeat.
    """
    if not counts:
        return {}
    await db[VERSIONS].bulk_write(
        [UpdateOne({"_id": key}, {"$inc": {"later": n}}, upsert=True) for key, n in counts.items()],
        ordered=False,
        session=session,
    )
    if len(counts) == 1:
        key = next(iter(counts))
        doc = await _versions(db).find_one({"_id": key}, session=session)
        return {key: int(doc["later"])} if doc else {}
    cursor = _versions(db).find({"_id": {"$in": list(counts)}}, session=session)
    return {doc["_id"]: int(doc["later"]) async for doc in cursor}


async def next_version(db: MongoDatabase, *, key: str, session: AsyncClientSession) -> int:
    """Reserve one more version of entity ``key``; returns its new ``later`` count (one round trip)."""
    doc = await _versions(db).find_one_and_update(
        {"_id": key}, {"$inc": {"later": 1}}, upsert=True, return_document=ReturnDocument.AFTER, session=session
    )
    if doc is None:  # an upsert returning the document after it always has one
        raise RuntimeError(f"no version document for {key!r} after its upsert")
    return int(doc["later"])


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Filters of ``GET /events``."""

    type: str | None = None
    entity_id: str | None = None

    def to_query(self) -> dict[str, Any]:
        """One equality per given filter (each an index prefix)."""
        query: dict[str, Any] = {}
        if self.type is not None:
            query["type"] = self.type
        if self.entity_id is not None:
            query["entity_id"] = self.entity_id
        return query

    def fingerprint_fields(self) -> dict[str, Any]:
        """The filter values a cursor is bound to."""
        return asdict(self)


async def list_events(db: MongoDatabase, *, filters: EventFilter, window: PageWindow) -> list[FeedEvent]:
    """Up to ``window.fetch`` events matching ``filters`` in feed order at the window's position."""
    return await find_window(_events(db, FeedEvent), filters.to_query(), window, projection=OUTBOX_FIELDS)


async def get_event(db: MongoDatabase, *, event_id: ObjectId) -> FeedEvent | None:
    """One event by ``_id``, or ``None``."""
    return await _events(db, FeedEvent).find_one({"_id": event_id}, OUTBOX_FIELDS)


async def get_events(db: MongoDatabase, *, event_ids: list[ObjectId]) -> dict[ObjectId, FeedEvent]:
    """The events among ``event_ids`` that still exist, by ``_id``."""
    cursor = _events(db, FeedEvent).find({"_id": {"$in": event_ids}}, OUTBOX_FIELDS)
    return {doc["_id"]: doc async for doc in cursor}


#: ``fanout_lease_until`` of an event nobody holds (also what a missing lease means).
NO_LEASE = datetime(1970, 1, 1, tzinfo=UTC)
#: The outbox fields, left out of every read but the dispatcher's.
OUTBOX_FIELDS = {"pending_fanout": 0, "fanout_token": 0, "fanout_lease_until": 0}


async def claim_outbox(
    db: MongoDatabase, *, now: datetime, lease_until: datetime, token: str, limit: int
) -> list[EventDocument]:
    """Lease up to ``limit`` outbox events nobody holds (oldest first) to ``token`` until ``lease_until``; returns them.

    Candidates are read through the partial index ``outbox`` (only events not
    fanned out yet); one conditional ``update_many`` takes those whose lease is
    over or missing (an event another process claimed meanwhile no longer
    matches), and a read returns what this token won. Three round trips
    however many are claimed.
    """
    free = {"pending_fanout": True, "fanout_lease_until": {"$not": {"$gt": now}}}
    cursor = (
        db[COLLECTION].find(free, {"_id": 1}).sort([("pending_fanout", ASCENDING), ("_id", ASCENDING)]).limit(limit)
    )
    ids = [doc["_id"] async for doc in cursor]
    if not ids:
        return []
    await db[COLLECTION].update_many(
        {**free, "_id": {"$in": ids}}, {"$set": {"fanout_token": token, "fanout_lease_until": lease_until}}
    )
    claimed = _events(db, EventDocument).find({"_id": {"$in": ids}, "pending_fanout": True, "fanout_token": token})
    return await claimed.to_list(length=limit)


async def mark_fanned_out(db: MongoDatabase, *, event_ids: list[ObjectId]) -> None:
    """Take ``event_ids`` out of the outbox (every first attempt's outcome is recorded)."""
    if event_ids:
        await db[COLLECTION].update_many(
            {"_id": {"$in": event_ids}},
            {"$unset": {"pending_fanout": "", "fanout_token": "", "fanout_lease_until": ""}},
        )


async def release_fanout(db: MongoDatabase, *, event_ids: list[ObjectId], token: str) -> None:
    """End ``token``'s lease on ``event_ids`` still in the outbox, so any dispatcher may claim them at once."""
    if event_ids:
        await db[COLLECTION].update_many(
            {"_id": {"$in": event_ids}, "pending_fanout": True, "fanout_token": token},
            {"$set": {"fanout_lease_until": NO_LEASE}},
        )


async def oldest_pending_fanout(db: MongoDatabase) -> datetime | None:
    """``created_at`` of the oldest event not fanned out yet, or ``None``."""
    doc = await db[COLLECTION].find_one(
        {"pending_fanout": True}, {"created_at": 1}, sort=[("pending_fanout", ASCENDING), ("_id", ASCENDING)]
    )
    return doc["created_at"] if doc else None


async def find_in_range(
    db: MongoDatabase, *, since: datetime, until: datetime, types: Sequence[str] | None, limit: int
) -> list[EventTimes]:
    """Ids, types and times of up to ``limit`` events created in ``[since, until)``, oldest first (index ``by_time``)."""
    query: dict[str, Any] = {"created_at": {"$gte": since, "$lt": until}}
    if types:
        query["type"] = {"$in": list(types)}
    cursor = (
        _events(db, EventTimes)
        .find(query, {"type": 1, "created_at": 1})
        .sort([("created_at", ASCENDING), ("_id", ASCENDING)])
        .limit(limit)
    )
    return await cursor.to_list(length=limit)


async def delete_older_than(db: MongoDatabase, *, cutoff: datetime, limit: int) -> int:
    """Delete up to ``limit`` events created before ``cutoff`` (oldest first); returns how many."""
    cursor = (
        db[COLLECTION]
        .find({"created_at": {"$lt": cutoff}}, {"_id": 1})
        .sort([("created_at", ASCENDING), ("_id", ASCENDING)])
        .limit(limit)
    )
    ids = [doc["_id"] async for doc in cursor]
    if not ids:
        return 0
    result = await db[COLLECTION].delete_many({"_id": {"$in": ids}})
    return result.deleted_count
