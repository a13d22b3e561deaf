"""MongoDB access for the ``users`` collection.

Document shape::

    {_id: ObjectId, username: str (unique), email: str (unique, lower-case),
     password_hash: str, full_name: str | null, role: "user" | "admin",
     is_active: bool, created_at: datetime, updated_at: datetime}
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession

from backend_app.core.db import MongoDatabase
from backend_app.core.pagination import PageWindow, find_window

COLLECTION = "users"

#: Every stored field but the password hash, for reads that only show users.
PUBLIC_PROJECTION = {"password_hash": 0}


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


async def get_by_username(
    db: MongoDatabase, *, username: str, session: AsyncClientSession | None = None
) -> dict[str, Any] | None:
    """The user ``username`` (read inside ``session`` if given), or ``None``."""
    return await db[COLLECTION].find_one({"username": username}, session=session)


async def get_by_email(db: MongoDatabase, *, email: str) -> dict[str, Any] | None:
    """The user with ``email`` (compared lower-case), or ``None``."""
    return await db[COLLECTION].find_one({"email": email.lower()})


def user_filter(*, username_prefix: str | None = None, email_prefix: str | None = None) -> dict[str, Any]:
    """The filter of ``GET /users``: usernames / emails starting with the given prefixes.

    The prefixes are matched literally (escaped, anchored regexes, which the
    unique indexes serve); ``email_prefix`` is compared lower-case.
    """
    query: dict[str, Any] = {}
    if username_prefix:
        query["username"] = {"$regex": "^" + re.escape(username_prefix)}
    if email_prefix:
        query["email"] = {"$regex": "^" + re.escape(email_prefix.lower())}
    return query


async def list_users(db: MongoDatabase, *, query: dict[str, Any], window: PageWindow) -> list[dict[str, Any]]:
    """The rows of ``window`` (offset or keyset page, ``_id`` order) among users matching ``query``."""
    return await find_window(db[COLLECTION], query, window, projection=PUBLIC_PROJECTION)


async def update_user(
    db: MongoDatabase,
    *,
    username: str,
    role: str | None = None,
    is_active: bool | None = None,
    session: AsyncClientSession | None = None,
) -> dict[str, Any] | None:
    """Set ``role`` and/or ``is_active`` of ``username`` (inside ``session`` if given); the updated user or ``None``."""
    changes: dict[str, Any] = {"updated_at": datetime.now(UTC)}
    if role is not None:
        changes["role"] = role
    if is_active is not None:
        changes["is_active"] = is_active
    return await db[COLLECTION].find_one_and_update(
        {"username": username},
        {"$set": changes},
        projection=PUBLIC_PROJECTION,
        return_document=ReturnDocument.AFTER,
        session=session,
    )
