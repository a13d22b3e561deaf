"""MongoDB access for the ``sessions`` collection: one document per login (refresh-token family).

Stored documents are :class:`~backend_app.auth.documents.SessionDocument`.
A session is only valid while its ``epoch`` equals its user's
``session_epoch``: bumping that one field (``users.repository``) ends every
session of the user in the same write as a password, role or activation
change. Reads always name both the ``sid`` and the
``username`` of the token, so a token's subject and session must agree.

Rotation is a compare-and-set on ``refresh_jti`` (RFC 9700 §4.14.2: refresh
token rotation with reuse detection). A revoked session also revokes the access
tokens issued in it, which carry the same ``sid``. The TTL index removes a
session once its newest refresh token (and so every token of the family) has
expired.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection

from backend_app.auth.documents import RevokedReason, SessionCheck, SessionDocument
from backend_app.core.db import MongoDatabase

COLLECTION = "sessions"


def _sessions(db: MongoDatabase) -> AsyncCollection[SessionDocument]:
    """The ``sessions`` collection, its documents typed as stored."""
    return cast("AsyncCollection[SessionDocument]", db[COLLECTION])


async def ensure_indexes(db: MongoDatabase) -> None:
    """TTL on ``expires_at`` (expired families are deleted) and ``username`` (a user's logins); idempotent."""
    coll = db[COLLECTION]
    await coll.create_index([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expires_at_ttl")
    await coll.create_index([("username", ASCENDING)], name="by_username")


async def insert_session(
    db: MongoDatabase,
    *,
    sid: str,
    username: str,
    refresh_jti: str,
    epoch: int,
    now: datetime,
    expires_at: datetime,
) -> None:
    """Record a new login of ``username`` (at the user's ``session_epoch`` ``epoch``) whose first refresh
    token is ``refresh_jti``."""
    await _sessions(db).insert_one(
        {
            "_id": sid,
            "username": username,
            "refresh_jti": refresh_jti,
            "epoch": epoch,
            "created_at": now,
            "refreshed_at": None,
            "expires_at": expires_at,
            "revoked_at": None,
            "revoked_reason": None,
        }
    )


async def rotate_refresh_jti(
    db: MongoDatabase,
    *,
    sid: str,
    username: str,
    old_jti: str,
    new_jti: str,
    now: datetime,
    expires_at: datetime,
) -> bool:
    """Replace the session's current refresh token ``old_jti`` by ``new_jti``, atomically.

    Returns:
        ``True`` when ``old_jti`` was the live, current refresh token of
        ``username``'s session ``sid``, not revoked; ``False`` otherwise (nothing changed).
    """
    result = await db[COLLECTION].update_one(
        {"_id": sid, "username": username, "refresh_jti": old_jti, "revoked_at": None},
        {"$set": {"refresh_jti": new_jti, "refreshed_at": now, "expires_at": expires_at}},
    )
    return result.modified_count == 1


async def get_unrevoked_session(db: MongoDatabase, *, sid: str, username: str) -> SessionCheck | None:
    """``username``'s session ``sid`` if it exists and is not revoked (read on every authenticated request).

    ``None`` for a login never recorded, revoked (logout, refresh-token reuse),
    expired and deleted, or belonging to another user. The caller still checks
    its ``epoch`` and age (``auth.service``).
    """
    found = await _sessions(db).find_one(
        {"_id": sid, "username": username, "revoked_at": None},
        projection={"epoch": 1, "created_at": 1, "refresh_jti": 1},
    )
    return cast("SessionCheck | None", found)


async def revoke_session(db: MongoDatabase, *, sid: str, username: str, now: datetime, reason: RevokedReason) -> None:
    """Mark ``username``'s session ``sid`` revoked (no-op when it already is, or does not exist)."""
    await db[COLLECTION].update_one(
        {"_id": sid, "username": username, "revoked_at": None},
        {"$set": {"revoked_at": now, "revoked_reason": reason}},
    )


def _epoch_filter(epoch: int) -> Any:
    """Match a session's ``epoch`` field (absent or null in sessions older than the field: epoch 0)."""
    return epoch if epoch else {"$in": [0, None]}


async def revoke_other_sessions(db: MongoDatabase, *, username: str, keep_sid: str, epoch: int, now: datetime) -> int:
    """Revoke every live session of ``username`` at ``epoch`` except ``keep_sid``; how many were revoked.

    Served by the ``by_username`` index. Sessions at another epoch are already
    dead and not counted; those past their expiry neither.
    """
    result = await db[COLLECTION].update_many(
        {
            "username": username,
            "_id": {"$ne": keep_sid},
            "revoked_at": None,
            "epoch": _epoch_filter(epoch),
            "expires_at": {"$gt": now},
        },
        {"$set": {"revoked_at": now, "revoked_reason": "revoke_others"}},
    )
    return result.modified_count


async def restamp_session(db: MongoDatabase, *, sid: str, username: str, old_epoch: int, new_epoch: int) -> bool:
    """Carry ``username``'s live session ``sid`` from ``old_epoch`` to ``new_epoch`` (it survives a bump).

    Used by a password change to keep the calling session. Returns whether it
    was carried (``False``: revoked, or not at ``old_epoch`` any more).
    """
    result = await db[COLLECTION].update_one(
        {"_id": sid, "username": username, "revoked_at": None, "epoch": _epoch_filter(old_epoch)},
        {"$set": {"epoch": new_epoch}},
    )
    return result.modified_count == 1
