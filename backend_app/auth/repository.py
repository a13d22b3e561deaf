"""MongoDB access for the ``sessions`` collection: one document per login (refresh-token family).

Document shape::

    {_id: str (the tokens' ``sid`` claim), username: str,
     refresh_jti: str (``jti`` of the only refresh token that may still be used),
     created_at: datetime, refreshed_at: datetime | null,
     expires_at: datetime (expiry of the newest refresh token; TTL index),
     revoked_at: datetime | null, revoked_reason: "logout" | "refresh_reuse" | null}

Rotation is a compare-and-set on ``refresh_jti`` (RFC 9700 §4.14.2: refresh
token rotation with reuse detection). A revoked session also revokes the access
tokens issued in it, which carry the same ``sid``. The TTL index removes a
session once its newest refresh token (and so every token of the family) has
expired.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pymongo import ASCENDING

from backend_app.core.db import MongoDatabase

COLLECTION = "sessions"

RevokedReason = Literal["logout", "refresh_reuse"]


async def ensure_indexes(db: MongoDatabase) -> None:
    """TTL on ``expires_at`` (expired families are deleted) and ``username`` (a user's logins); idempotent."""
    coll = db[COLLECTION]
    await coll.create_index([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expires_at_ttl")
    await coll.create_index([("username", ASCENDING)], name="by_username")


async def insert_session(
    db: MongoDatabase, *, sid: str, username: str, refresh_jti: str, now: datetime, expires_at: datetime
) -> None:
    """Record a new login whose first refresh token is ``refresh_jti``."""
    await db[COLLECTION].insert_one(
        {
            "_id": sid,
            "username": username,
            "refresh_jti": refresh_jti,
            "created_at": now,
            "refreshed_at": None,
            "expires_at": expires_at,
            "revoked_at": None,
            "revoked_reason": None,
        }
    )


async def rotate_refresh_jti(
    db: MongoDatabase, *, sid: str, old_jti: str, new_jti: str, now: datetime, expires_at: datetime
) -> bool:
    """Replace the session's current refresh token ``old_jti`` by ``new_jti``, atomically.

    Returns:
        ``True`` when ``old_jti`` was the live, current refresh token of a
        session that is not revoked; ``False`` otherwise (nothing changed).
    """
    result = await db[COLLECTION].update_one(
        {"_id": sid, "refresh_jti": old_jti, "revoked_at": None},
        {"$set": {"refresh_jti": new_jti, "refreshed_at": now, "expires_at": expires_at}},
    )
    return result.modified_count == 1


async def get_session(db: MongoDatabase, *, sid: str) -> dict[str, Any] | None:
    """The session ``sid``, or ``None`` (never created, or deleted by the TTL index)."""
    return await db[COLLECTION].find_one({"_id": sid})


async def is_live(db: MongoDatabase, *, sid: str) -> bool:
    """Whether the session ``sid`` exists and is not revoked (read on every authenticated request).

    A token whose login was never recorded, was revoked (logout, refresh-token
    reuse) or has expired and been deleted is not live.
    """
    doc = await db[COLLECTION].find_one({"_id": sid, "revoked_at": None}, projection={"_id": 1})
    return doc is not None


async def revoke_session(db: MongoDatabase, *, sid: str, now: datetime, reason: RevokedReason) -> None:
    """Mark the session ``sid`` revoked (no-op when it already is, or does not exist)."""
    await db[COLLECTION].update_one(
        {"_id": sid, "revoked_at": None}, {"$set": {"revoked_at": now, "revoked_reason": reason}}
    )
