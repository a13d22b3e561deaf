"""MongoDB access for the ``idempotency_keys`` collection.

Stored documents are :class:`~backend_app.idempotency.documents.IdempotencyRecord`;
``(owner, key)`` is unique, so of two concurrent requests with one key exactly
one inserts the in-flight record.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from bson import ObjectId
from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

from backend_app.core.db import MongoDatabase
from backend_app.idempotency.documents import IdempotencyRecord

COLLECTION = "idempotency_keys"


def _records(db: MongoDatabase) -> AsyncCollection[IdempotencyRecord]:
    """The ``idempotency_keys`` collection, its documents typed as stored."""
    return cast("AsyncCollection[IdempotencyRecord]", db[COLLECTION])


async def ensure_indexes(db: MongoDatabase) -> None:
    """Unique ``{owner, key}`` and a TTL index on ``expires_at`` (idempotent)."""
    coll = db[COLLECTION]
    await coll.create_index([("owner", ASCENDING), ("key", ASCENDING)], unique=True, name="owner_key_unique")
    await coll.create_index([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expires_at_ttl")


async def insert_in_flight(
    db: MongoDatabase,
    *,
    owner: str,
    key: str,
    fingerprint: str,
    token: str,
    now: datetime,
    lease_expires_at: datetime,
    expires_at: datetime,
) -> ObjectId:
    """Insert the in-flight record of ``(owner, key)`` and return its ``_id``.

    Raises:
        pymongo.errors.DuplicateKeyError: a record for ``(owner, key)`` exists.
    """
    result = await _records(db).insert_one(
        {
            "owner": owner,
            "key": key,
            "fingerprint": fingerprint,
            "state": "in_flight",
            "token": token,
            "lease_expires_at": lease_expires_at,
            "response": None,
            "created_at": now,
            "expires_at": expires_at,
        }
    )
    return result.inserted_id


async def find(db: MongoDatabase, *, owner: str, key: str) -> IdempotencyRecord | None:
    """The record of ``(owner, key)``, or ``None``."""
    return await _records(db).find_one({"owner": owner, "key": key})


async def take_over(
    db: MongoDatabase, *, record_id: ObjectId, old_token: str, token: str, lease_expires_at: datetime
) -> bool:
    """Claim an abandoned in-flight record (its lease expired) if nobody else did first."""
    result = await db[COLLECTION].find_one_and_update(
        {"_id": record_id, "state": "in_flight", "token": old_token},
        {"$set": {"token": token, "lease_expires_at": lease_expires_at}},
        return_document=ReturnDocument.AFTER,
    )
    return result is not None


async def complete(
    db: MongoDatabase,
    *,
    record_id: ObjectId,
    token: str,
    response: dict[str, Any],
    expires_at: datetime,
    session: AsyncClientSession,
) -> bool:
    """Store ``response`` and mark the record completed, inside ``session``'s transaction.

    Returns False when the claim ``token`` no longer holds the record.
    """
    result = await db[COLLECTION].update_one(
        {"_id": record_id, "state": "in_flight", "token": token},
        {"$set": {"state": "completed", "response": response, "expires_at": expires_at}},
        session=session,
    )
    return result.modified_count == 1


async def release(db: MongoDatabase, *, record_id: ObjectId, token: str) -> None:
    """Delete an in-flight record this claim still holds (the request failed; the key may be retried)."""
    await db[COLLECTION].delete_one({"_id": record_id, "state": "in_flight", "token": token})
