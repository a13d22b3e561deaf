"""MongoDB access for the ``users`` collection.

Stored documents are :class:`~backend_app.users.documents.UserDocument` (which
fields are unique, and what ``username_key`` and ``session_epoch`` mean, is
told there).
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any, cast

from bson import ObjectId
from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, OperationFailure

from backend_app.core.db import MongoDatabase
from backend_app.core.keyset import find_window
from backend_app.core.pagination import PageWindow
from backend_app.users.documents import PublicUserDocument, UserDocument
from backend_app.users.schemas import Role

COLLECTION = "users"

logger = logging.getLogger(__name__)

#: Every stored field but the password hash, for reads that only show users.
PUBLIC_PROJECTION = {"password_hash": 0}


def _users(db: MongoDatabase) -> AsyncCollection[UserDocument]:
    """The ``users`` collection, its documents typed as stored."""
    return cast("AsyncCollection[UserDocument]", db[COLLECTION])


def _public_users(db: MongoDatabase) -> AsyncCollection[PublicUserDocument]:
    """The ``users`` collection as read with :data:`PUBLIC_PROJECTION` (no password hash)."""
    return cast("AsyncCollection[PublicUserDocument]", db[COLLECTION])


def username_key(username: str) -> str:
    """The case-folded form of ``username`` that must be unique (``Admin`` and ``admin`` collide)."""
    return username.casefold()


async def backfill_username_keys(db: MongoDatabase) -> int:
    """Set ``username_key`` on users stored before it existed; returns how many were set (idempotent).

    Only documents without the field are read (a one-off after an upgrade; a
    no-op query on every later start-up).
    """
    coll = db[COLLECTION]
    done = 0
    async for doc in coll.find({"username_key": {"$exists": False}}, projection={"username": 1}):
        try:
            await coll.update_one(
                {"_id": doc["_id"], "username_key": {"$exists": False}},
                {"$set": {"username_key": username_key(doc["username"])}},
            )
        except DuplicateKeyError:  # written without the key (an older version) while a case variant exists
            logger.error("user %r differs only by case from another user; left without username_key", doc["username"])
            continue
        done += 1
    return done


async def ensure_indexes(db: MongoDatabase) -> None:
    """Unique ``username``, ``username_key`` (case-insensitive) and ``email``; idempotent.

    ``username_key`` is backfilled first. If existing users already differ only
    by case, the case-insensitive index cannot be built: that is logged (ERROR,
    naming the usernames) and start-up goes on with the exact-case index; an
    operator renames one of them and restarts.
    """
    coll = db[COLLECTION]
    await coll.create_index([("username", ASCENDING)], unique=True, name="username_unique")
    await coll.create_index([("email", ASCENDING)], unique=True, name="email_unique")
    await backfill_username_keys(db)
    try:
        await coll.create_index(
            [("username_key", ASCENDING)],
            unique=True,
            name="username_key_unique",
            # Users written without the key (by an older version during a rolling upgrade, or a script)
            # do not collide with each other as nulls; the next start-up backfills them.
            partialFilterExpression={"username_key": {"$exists": True}},
        )
    except (DuplicateKeyError, OperationFailure) as exc:
        logger.error(
            "usernames differing only by case exist, so the case-insensitive unique index was not built "
            "(rename one of each pair and restart): %s",
            getattr(exc, "details", None) or exc,
        )


async def insert_user(
    db: MongoDatabase,
    *,
    username: str,
    email: str,
    password_hash: str,
    full_name: str | None,
    role: Role,
    session: AsyncClientSession | None = None,
) -> UserDocument:
    """Insert a user (inside ``session``'s transaction if given) and return the stored document.

    Raises:
        pymongo.errors.DuplicateKeyError: the username or email is taken.
    """
    now = datetime.now(UTC)
    doc: UserDocument = {
        "_id": ObjectId(),  # what the driver would assign, set here so the document is whole from the start
        "username": username,
        "username_key": username_key(username),
        "email": email.lower(),
        "password_hash": password_hash,
        "full_name": full_name,
        "role": role,
        "is_active": True,
        "session_epoch": 0,
        "created_at": now,
        "updated_at": now,
    }
    await _users(db).insert_one(doc, session=session)
    return doc


async def get_by_username(
    db: MongoDatabase, *, username: str, session: AsyncClientSession | None = None
) -> UserDocument | None:
    """The user ``username`` (read inside ``session`` if given), or ``None``."""
    return await _users(db).find_one({"username": username}, session=session)


async def get_by_email(db: MongoDatabase, *, email: str) -> UserDocument | None:
    """The user with ``email`` (compared lower-case), or ``None``."""
    return await _users(db).find_one({"email": email.lower()})


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


async def list_users(db: MongoDatabase, *, query: dict[str, Any], window: PageWindow) -> list[PublicUserDocument]:
    """The rows of ``window`` (offset or keyset page, ``_id`` order) among users matching ``query``."""
    return await find_window(_public_users(db), query, window, projection=PUBLIC_PROJECTION)


async def update_user(
    db: MongoDatabase,
    *,
    username: str,
    role: Role | None = None,
    is_active: bool | None = None,
    end_sessions: bool = False,
    session: AsyncClientSession | None = None,
) -> PublicUserDocument | None:
    """Set ``role`` and/or ``is_active`` of ``username`` (inside ``session`` if given); the updated user or ``None``.

    ``end_sessions``: also bump ``session_epoch`` in the same write, so every
    login of the user ends atomically with the change.
    """
    changes: dict[str, Any] = {"updated_at": datetime.now(UTC)}
    if role is not None:
        changes["role"] = role
    if is_active is not None:
        changes["is_active"] = is_active
    update: dict[str, Any] = {"$set": changes}
    if end_sessions:
        update["$inc"] = {"session_epoch": 1}
    return await _public_users(db).find_one_and_update(
        {"username": username},
        update,
        projection=PUBLIC_PROJECTION,
        return_document=ReturnDocument.AFTER,
        session=session,
    )


async def set_password(
    db: MongoDatabase,
    *,
    username: str,
    password_hash: str,
    make_active_admin: bool = False,
    expected_hash: str | None = None,
    session: AsyncClientSession | None = None,
) -> PublicUserDocument | None:
    """Store a new ``password_hash`` for ``username`` and end every session of it, in one write (in ``session`` if given).

    ``expected_hash``: write only if the stored hash is still this one (the
    one a current password was checked against), so of two concurrent
    changes exactly one is written.

    ``make_active_admin``: also set ``role: admin`` and ``is_active: true``
    (``create-admin --promote-existing``).

    Returns:
        The updated user (with the new ``session_epoch``, without the hash), or
        ``None`` if unknown or its hash is no longer ``expected_hash``.
    """
    changes: dict[str, Any] = {"password_hash": password_hash, "updated_at": datetime.now(UTC)}
    if make_active_admin:
        changes.update(role="admin", is_active=True)
    query: dict[str, Any] = {"username": username}
    if expected_hash is not None:
        query["password_hash"] = expected_hash
    return await _public_users(db).find_one_and_update(
        query,
        {"$set": changes, "$inc": {"session_epoch": 1}},
        projection=PUBLIC_PROJECTION,
        return_document=ReturnDocument.AFTER,
        session=session,
    )
