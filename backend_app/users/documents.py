"""The ``users`` collection's stored documents, as types.

``username_key`` makes usernames unique regardless of case (``Admin`` after
``admin`` is a duplicate); users stored before it existed lack it until the
start-up backfill sets it. ``session_epoch`` is bumped in the same write as a
password, role or deactivation change: every login session recorded at an
older epoch stops working at once (``auth.repository``); users stored before
it existed lack it, which reads as 0.
"""

from __future__ import annotations

from datetime import datetime
from typing import NotRequired, TypedDict

from bson import ObjectId

from backend_app.users.schemas import Role


class PublicUserDocument(TypedDict):
    """A stored user without its password hash: what reads that only show users get back."""

    # Identity: each of ``username``, ``username_key`` and ``email`` (lower-case) is unique.
    _id: ObjectId
    username: str
    username_key: NotRequired[str]
    email: str
    full_name: str | None

    # Access: what the user may do, and whether their sessions still hold.
    role: Role
    is_active: bool
    session_epoch: NotRequired[int]

    # Timestamps (UTC).
    created_at: datetime
    updated_at: datetime


class UserDocument(PublicUserDocument):
    """A stored user, as a whole."""

    # The password's hash (``core.security``); never shown, never projected into public reads.
    password_hash: str
