"""MongoDB access for the ``users`` collection.

Document shape::

    {_id: ObjectId, username: str (unique), email: str (unique, lower-case),
     password_hash: str, full_name: str | null, role: "user" | "admin",
     is_active: bool, created_at: datetime, updated_at: datetime}
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING

from backend_app.core.db import MongoDatabase

COLLECTION = "users"


async def ensure_indexes(db: MongoDatabase) -> None:
    """Unique ``username`` and ``email`` (spec §3); idempotent."""
    coll = db[COLLECTION]
    await coll.create_index([("username", ASCENDING)], unique=True, name="username_unique")
    await coll.create_index([("email", ASCENDING)], unique=True, name="email_unique")


async def insert_user(
    db: MongoDatabase,
    *,
    username: str,
    email: str,
    password_hash: str,
    full_name: str | None,
    role: str,
) -> dict[str, Any]:
    """Insert a user and return the stored document.

    Raises:
        pymongo.errors.DuplicateKeyError: the username or email is taken.
    """
    now = datetime.now(UTC)
    doc: dict[str, Any] = {
        "username": username,
        "email": email.lower(),
        "password_hash": password_hash,
        "full_name": full_name,
        "role": role,
        "is_active": True,
        "created_at": now,
        "updated_at": now,
    }
    result = await db[COLLECTION].insert_one(doc)
    doc["_id"] = result.inserted_id
    return doc


async def get_by_username(db: MongoDatabase, *, username: str) -> dict[str, Any] | None:
    """The user ``username``, or ``None``."""
    return await db[COLLECTION].find_one({"username": username})


async def get_by_email(db: MongoDatabase, *, email: str) -> dict[str, Any] | None:
    """The user with ``email`` (compared lower-case), or ``None``."""
    return await db[COLLECTION].find_one({"email": email.lower()})
