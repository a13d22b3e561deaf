"""The ``events`` and ``event_versions`` collections' stored documents, as types.

An event is inserted in the transaction of the change it describes, so it
exists if and only if that change committed. ``pending_fanout`` marks the
outbox: the webhook dispatcher sends the event to its endpoints, records each
first attempt's outcome as a delivery, and then removes the flag (index
``outbox``, partial, so delivered history costs nothing). ``fanout_token`` and
``fanout_lease_until`` are the lease of the one dispatcher that may do so: the
recording process's, or whoever claims the event after that lease ran out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NotRequired, TypedDict

from bson import ObjectId


class FeedEvent(TypedDict):
    """An event as every read but the dispatcher's returns it (``events.repository.OUTBOX_FIELDS`` left out)."""

    # What happened, and when (UTC, milliseconds as BSON stores them).
    _id: ObjectId
    type: str
    created_at: datetime

    # The entity it happened to, and that entity's version after it.
    entity_type: str
    entity_id: str
    entity_version: int

    # The entity's public form (thinned when the envelope would exceed 20 KB).
    data: dict[str, Any]


class EventDocument(FeedEvent):
    """A stored event, with its outbox fields: present only until it is fanned out, the lease only once leased."""

    pending_fanout: NotRequired[bool]
    fanout_token: NotRequired[str]
    fanout_lease_until: NotRequired[datetime]


class EventTimes(TypedDict):
    """An event as a replay by time range reads it."""

    _id: ObjectId
    type: str
    created_at: datetime


class VersionDocument(TypedDict):
    """How many events an entity had after its first (``_id`` is ``"<entity_type>:<entity_id>"``)."""

    _id: str
    later: int
