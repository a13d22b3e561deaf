"""MongoDB access for ``order_holds``: what each owner's pending orders hold.

Each owner with pending orders has a *holds* document in ``order_holds``
(:class:`~backend_app.orders.documents.HoldsDocument`): the number of their
pending orders and the units those hold. Every transaction that places an order for
the owner or moves one out of ``pending`` changes it, so two concurrent
transactions for one owner cannot both commit what they read (the second
writer gets ``WriteConflict`` and runs again): that makes the reservation caps
race-safe on every host (docs/architecture.md (Orders and stock), "Reservations").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from pymongo import UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from backend_app.core.db import MongoDatabase
from backend_app.orders.documents import HoldsDocument

#: The owners' pending-order holds (module docstring).
HOLDS = "order_holds"


def _holds(db: MongoDatabase) -> AsyncCollection[HoldsDocument]:
    """The ``order_holds`` collection, its documents typed as stored."""
    return cast("AsyncCollection[HoldsDocument]", db[HOLDS])


async def ensure_holds(db: MongoDatabase, *, user_ids: list[str]) -> None:
    """Create the holds document of each owner that has none, outside any transaction (one ``bulk_write``).

    Outside, because on the embedded server a transaction that *inserts* a
    document (an upsert that creates one included) makes every other
    transaction inserting into that collection conflict until it ends; updates
    of existing documents conflict only on those documents.
    """
    if not user_ids:
        return
    await db[HOLDS].bulk_write(
        [UpdateOne({"_id": user_id}, {"$setOnInsert": {"orders": 0, "units": 0}}, upsert=True) for user_id in user_ids],
        ordered=False,
    )


async def find_holds(
    db: MongoDatabase, *, user_ids: list[str], session: AsyncClientSession | None = None
) -> dict[str, tuple[int, int]]:
    """``{user_id: (pending orders, units they hold)}`` for ``user_ids`` (``(0, 0)`` when none), by ``_id``."""
    found = {
        doc["_id"]: (int(doc.get("orders", 0)), int(doc.get("units", 0)))
        async for doc in _holds(db).find({"_id": {"$in": user_ids}}, session=session)
    }
    return {user_id: found.get(user_id, (0, 0)) for user_id in user_ids}


async def change_holds(
    db: MongoDatabase, *, changes: Mapping[str, tuple[int, int]], session: AsyncClientSession
) -> None:
    """Add ``(orders, units)`` to each owner's holds (negative to release), in ``session``'s transaction.

    The documents exist (:func:`ensure_holds`).
    """
    if not changes:
        return
    await db[HOLDS].bulk_write(
        [
            UpdateOne({"_id": user_id}, {"$inc": {"orders": orders, "units": units}})
            for user_id, (orders, units) in changes.items()
        ],
        ordered=True,
        session=session,
    )


async def insert_holds_if_missing(db: MongoDatabase, *, holds: Mapping[str, tuple[int, int]]) -> None:
    """Create the holds document of each owner in ``holds`` that has none (existing ones are left as they are)."""
    if not holds:
        return
    documents: list[HoldsDocument] = [{"_id": u, "orders": o, "units": n} for u, (o, n) in holds.items()]
    try:
        await _holds(db).insert_many(documents, ordered=False)
    except BulkWriteError as exc:
        if any(error.get("code") != 11000 for error in exc.details.get("writeErrors", [])):
            raise
