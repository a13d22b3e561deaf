"""The catalog's metadata in ``catalog_meta``: its version token and the extent of its sort keys.

One document ``{_id: "catalog", version: int, epoch: ObjectId, oldest: {...}, newest: {...}}``.
``version`` is incremented after every catalog write (read by ``products.responses``, bumped by
``products.catalog_version``); ``epoch`` is set when the document is first created, so a dropped
and re-created database never repeats a token that an older cache entry was stored under.
``oldest``/``newest`` record the lowest and highest ``_id`` and ``created_at`` of the catalog,
which steer ``core.key_windows`` (how wide the first windows of a list are), never what a list
returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from bson import ObjectId

from backend_app.core.db import MongoDatabase

PRICE_KEY: Final = "price_cents"
CATALOG_META_COLLECTION = "catalog_meta"
CATALOG_META_ID = "catalog"
#: Version token of a catalog that has never been written through the API.
INITIAL_CATALOG_VERSION = "0"


async def recorded_extent(db: MongoDatabase, field: str) -> tuple[Any, Any] | None:
    """The oldest and newest ``field`` (``_id`` or ``created_at``) recorded by :func:`record_extent`, or ``None``."""
    meta = await db[CATALOG_META_COLLECTION].find_one(
        {"_id": CATALOG_META_ID}, {f"oldest.{field}": 1, f"newest.{field}": 1}
    )
    oldest = (meta or {}).get("oldest", {}).get(field)
    newest = (meta or {}).get("newest", {}).get(field)
    if oldest is None or newest is None:
        return None
    return oldest, newest


async def get_catalog_version(db: MongoDatabase) -> str:
    """The catalog's current version token, ``"<epoch>:<version>"``: one point read by ``_id``.

    Returns:
        :data:`INITIAL_CATALOG_VERSION` while no catalog write has been recorded.
    """
    doc = await db[CATALOG_META_COLLECTION].find_one({"_id": CATALOG_META_ID})
    if doc is None:
        return INITIAL_CATALOG_VERSION
    return f"{doc['epoch']}:{doc['version']}"


async def bump_catalog_version(db: MongoDatabase) -> None:
    """Atomically increment the catalog version: one ``$inc`` ``update_one``, upserting the document.

    Concurrent first bumps are safe: MongoDB (≥ 4.2) retries an upsert that
    loses an ``_id`` race itself, and the embedded server serialises them
    (16 concurrent first bumps always yield ``version`` 16).
    """
    await db[CATALOG_META_COLLECTION].update_one(
        {"_id": CATALOG_META_ID}, {"$inc": {"version": 1}, "$setOnInsert": {"epoch": ObjectId()}}, upsert=True
    )


#: Sort keys whose oldest and newest values ``catalog_meta`` records (``oldest.<key>``, ``newest.<key>``).
EXTENT_KEYS = ("_id", "created_at")


async def record_extent(db: MongoDatabase, documents: Sequence[Mapping[str, Any]]) -> None:
    """Widen the recorded extent of ``_id`` and ``created_at`` to cover ``documents`` (one ``$min``/``$max``).

    Called by every insert path after its write. The extent only steers
    ``core.key_windows`` (speed), never what a list returns, so a write that
    dies before this call costs at most a few extra windows.
    """
    if not documents:
        return
    update: dict[str, Any] = {"$min": {}, "$max": {}}
    for key in EXTENT_KEYS:
        values = [d[key] for d in documents if d.get(key) is not None]
        if values:
            update["$min"][f"oldest.{key}"] = min(values)
            update["$max"][f"newest.{key}"] = max(values)
    update["$setOnInsert"] = {"epoch": ObjectId(), "version": 0}
    await db[CATALOG_META_COLLECTION].update_one({"_id": CATALOG_META_ID}, update, upsert=True)
