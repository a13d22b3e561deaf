"""MongoDB access for the ``audit_log`` collection: the only place that builds its filters.

Document shape::

    {_id: ObjectId, at: datetime (UTC), actor: str, action: str,
     entity_type: "product" | "user" | "order", entity_id: str,
     before: dict | null, after: dict | null}

Entries are only ever inserted (never updated or deleted by the app). ``_id``
is generated in the same process and instant as ``at``, so ``_id`` order is
time order and a time window is also an ``_id`` range, which every index
below ends with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession

from backend_app.core.db import MongoDatabase
from backend_app.core.pagination import PageWindow, find_window

COLLECTION = "audit_log"
#: Slack between ``at`` and the ``_id``'s embedded time (whole seconds, same process clock).
ID_TIME_SLACK = timedelta(seconds=2)

#: ``(name, keys)`` of every audit index: each filter is an equality prefix, then ``_id`` (order and time range).
INDEXES: list[tuple[str, list[tuple[str, int]]]] = [
    ("by_entity", [("entity_type", ASCENDING), ("entity_id", ASCENDING), ("_id", ASCENDING)]),
    ("by_actor", [("actor", ASCENDING), ("_id", ASCENDING)]),
]


async def ensure_indexes(db: MongoDatabase) -> None:
    """Create the audit indexes (idempotent; run at start-up).

    - ``by_entity``: ``entity_type`` (alone, or with ``entity_id``): the history of one product, user or order.
    - ``by_actor``: what one admin did.
    - the default ``_id`` index: the whole trail, and ``since``/``until`` alone.
    """
    coll = db[COLLECTION]
    for name, keys in INDEXES:
        await coll.create_index(keys, name=name)


async def insert_entry(db: MongoDatabase, *, entry: dict[str, Any], session: AsyncClientSession | None) -> ObjectId:
    """Insert one audit entry (inside ``session``'s transaction when given) and return its ``_id``."""
    result = await db[COLLECTION].insert_one(entry, session=session)
    return result.inserted_id


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Filters of ``GET /audit``; ``since`` inclusive, ``until`` exclusive (UTC datetimes)."""

    actor: str | None = None
    entity_type: str | None = None
    entity_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def to_query(self) -> dict[str, Any]:
        """The MongoDB filter: equalities, and the time window on ``at`` mirrored as an ``_id`` range.

        The ``_id`` range (widened by :data:`ID_TIME_SLACK`) gives the index
        bounds; the ``at`` condition keeps the window exact.
        """
        query: dict[str, Any] = {}
        if self.entity_type is not None:
            query["entity_type"] = self.entity_type
        if self.entity_id is not None:
            query["entity_id"] = self.entity_id
        if self.actor is not None:
            query["actor"] = self.actor
        at: dict[str, Any] = {}
        ids: dict[str, Any] = {}
        if self.since is not None:
            at["$gte"] = self.since
            ids["$gte"] = ObjectId.from_datetime(self.since - ID_TIME_SLACK)
        if self.until is not None:
            at["$lt"] = self.until
            ids["$lt"] = ObjectId.from_datetime(self.until + ID_TIME_SLACK)
        if ids:
            query["_id"] = ids
            query["at"] = at
        return query

    def fingerprint_fields(self) -> dict[str, Any]:
        """The filter values a cursor is bound to (spec §2)."""
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()}


async def list_entries(db: MongoDatabase, *, filters: AuditFilter, window: PageWindow) -> list[dict[str, Any]]:
    """Up to ``window.fetch`` entries matching ``filters``, in ``_id`` (time) order at the window's position."""
    return await find_window(db[COLLECTION], filters.to_query(), window)
