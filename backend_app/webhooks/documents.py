"""The ``webhook_endpoints`` and ``webhook_deliveries`` collections' stored documents, as types.

A delivery is created by its first attempt's outcome (the event's outbox
lease covered the attempt); later attempts (retries, replays) are sent under
the delivery's own lease. A delivery is *claimed* by setting ``lease_until``
in the future with a fresh ``lease_token`` (one conditional ``update_many``:
a document whose lease is live does not match, so two processes never hold
one delivery); its outcome is written only under that token.
``lease_until`` is the epoch (``webhooks.repository.NO_LEASE``) when nobody
holds it. ``signing_keys`` is read only by the dispatcher; every other read
leaves it out (``webhooks.repository.NO_SECRETS``).
"""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict

from bson import ObjectId

from backend_app.webhooks.schemas import DeliveryStatus, EndpointStatus


class SigningKey(TypedDict):
    """One secret an endpoint's deliveries are signed with; an old one stays valid until ``expires_at``."""

    secret: str
    created_at: datetime
    expires_at: datetime | None


class PublicEndpoint(TypedDict):
    """A stored endpoint without its signing keys: what every read but the dispatcher's returns."""

    # Where to send, and which event types (``"*"``: all).
    _id: ObjectId
    url: str
    events: list[str]
    description: str | None

    # Health: ``disabled_reason`` says why a disabled endpoint is (``None`` otherwise).
    status: EndpointStatus
    disabled_reason: str | None

    # Timestamps (UTC).
    created_at: datetime
    updated_at: datetime


class EndpointDocument(PublicEndpoint):
    """A stored endpoint, signing keys included."""

    signing_keys: list[SigningKey]


class AttemptRecord(TypedDict):
    """One attempt of a delivery as it is kept (the newest 50 per delivery)."""

    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: float
    response: str | None
    next_attempt_at: datetime | None


class ClaimedDelivery(TypedDict):
    """A delivery without its attempts: what the dispatcher's claim reads."""

    # Which event goes to which endpoint (unique together).
    _id: ObjectId
    endpoint_id: ObjectId
    event_id: ObjectId
    event_type: str
    event_created_at: datetime

    # Progress through the retry schedule.
    status: DeliveryStatus
    next_attempt_at: datetime | None
    schedule_step: int
    delivered_at: datetime | None

    # The lease of the one process sending it.
    lease_until: datetime
    lease_token: str | None

    # Timestamps (UTC).
    created_at: datetime
    updated_at: datetime


class DeliveryDocument(ClaimedDelivery):
    """A stored delivery."""

    attempts: list[AttemptRecord]
