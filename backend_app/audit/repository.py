"""MongoDB access for the ``audit_log`` collection: the only place that builds its filters.

Stored documents are :class:`~backend_app.audit.documents.AuditEntryDocument`,
only ever inserted (never updated or deleted by the app). Lists
are in ``at`` order (``_id`` breaks ties), so a time window and a cursor
position are one range on the sort key, which every index below ends with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, cast

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

from backend_app.audit.documents import AuditEntryDocument
from backend_app.core.db import MongoDatabase
from backend_app.core.keyset import find_window
from backend_app.core.pagination import PageWindow

COLLECTION = "audit_log"
#: The order of every audit list: ``at``, then ``_id``.
SORT_TOKEN = "at"  # noqa: S105 - a name, not a secret

#: ``(name, keys)`` of every audit index: an equality prefix per filter, then the sort key ``at`` and ``_id``.
INDEXES: list[tuple[str, list[tuple[str, int]]]] = [
    ("by_time", [("at", ASCENDING), ("_id", ASCENDING)]),
    ("by_entity_type", [("entity_type", ASCENDING), ("at", ASCENDING), ("_id", ASCENDING)]),
    ("by_entity", [("entity_type", ASCENDING), ("entity_id", ASCENDING), ("at", ASCENDING), ("_id", ASCENDING)]),
    ("by_actor", [("actor", ASCENDING), ("at", ASCENDING), ("_id", ASCENDING)]),
]


def _entries(db: MongoDatabase) -> AsyncCollection[AuditEntryDocument]:
    """The ``audit_log`` collection, its documents typed as stored."""
    return cast("AsyncCollection[AuditEntryDocument]", db[COLLECTION])


async def ensure_indexes(db: MongoDatabase) -> None:
    """Create the audit indexes (idempotent; run at start-up).

    - ``by_time``: the whole trail, and ``since``/``until`` alone.
    - ``by_entity_type``: every change to products, users or orders.
    - ``by_entity``: the history of one product, user or order.
    - ``by_actor``: what one admin did.
    """
    coll = db[COLLECTION]
    for name, keys in INDEXES:
        await coll.create_index(keys, name=name)


async def insert_entries(
    db: MongoDatabase, *, entries: list[AuditEntryDocument], session: AsyncClientSession | None
) -> None:
    """Insert audit entries (inside ``session``'s transaction when given): one ``insert_one``, or one ordered ``insert_many``."""
    if len(entries) == 1:
        await _entries(db).insert_one(entries[0], session=session)
    elif entries:
        await _entries(db).insert_many(entries, ordered=True, session=session)


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Filters of ``GET /audit``; ``since`` inclusive, ``until`` exclusive (UTC datetimes)."""

    actor: str | None = None
    entity_type: str | None = None
    entity_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def to_query(self) -> dict[str, Any]:
        """The MongoDB filter: one equality per given field, and the time window as a range on ``at``."""
        query: dict[str, Any] = {}
        if self.entity_type is not None:
            query["entity_type"] = self.entity_type
        if self.entity_id is not None:
            query["entity_id"] = self.entity_id
        if self.actor is not None:
            query["actor"] = self.actor
        at: dict[str, Any] = {}
        if self.since is not None:
            at["$gte"] = self.since
        if self.until is not None:
            at["$lt"] = self.until
        if at:
            query["at"] = at
        return query

    def fingerprint_fields(self) -> dict[str, Any]:
        """The filter values a cursor is bound to."""
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()}


async def list_entries(db: MongoDatabase, *, filters: AuditFilter, window: PageWindow) -> list[AuditEntryDocument]:
    """Up to ``window.fetch`` entries matching ``filters``, in ``(at, _id)`` order at the window's position."""
    return await find_window(_entries(db), filters.to_query(), window)
