"""The ``idempotency_keys`` collection's stored documents, as types.

``(owner, key)`` is unique, so the in-flight record is created atomically: of
two concurrent requests with one key exactly one inserts it. ``expires_at``
carries a TTL index (``expireAfterSeconds: 0``), so the server removes a
record once it expires.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, NotRequired, TypedDict

from bson import ObjectId


class IdempotencyRecord(TypedDict):
    """One ``Idempotency-Key`` of one owner: a request in flight, or the response it completed with."""

    #: Set by the server on insert.
    _id: NotRequired[ObjectId]
    #: The username the key belongs to (keys of different users never meet).
    owner: str
    key: str
    #: Hex digest of the request the key was first used for; another request with the key is refused.
    fingerprint: str
    state: Literal["in_flight", "completed"]
    #: The current claim: a request that lost its lease cannot complete the record.
    token: str
    #: When an in-flight claim may be taken over (its request died), UTC.
    lease_expires_at: datetime
    #: The completed response replayed to a retry (``None`` while in flight).
    response: dict[str, Any] | None
    created_at: datetime
    #: When the TTL index removes the record, UTC.
    expires_at: datetime
