"""Request and response shapes of webhook endpoints and deliveries (docs/architecture.md (Events and webhooks))."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from backend_app.events.schemas import SUBSCRIBABLE_TYPES, EventType

EndpointStatus = Literal["enabled", "failing", "disabled"]
DeliveryStatus = Literal["pending", "delivered", "failed"]
#: ``["*"]``: every event type, including types added later.
ALL_EVENTS = "*"


def _check_events(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    if ALL_EVENTS in value and len(value) > 1:
        raise ValueError('use ["*"] alone to subscribe to every event type')
    unknown = [v for v in value if v != ALL_EVENTS and v not in SUBSCRIBABLE_TYPES]
    if unknown:
        raise ValueError(f"unknown event types {unknown}; known: {', '.join(SUBSCRIBABLE_TYPES)}")
    return list(dict.fromkeys(value))


class EndpointCreate(BaseModel):
    """Body of ``POST /webhooks/endpoints``."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2048, examples=["https://hooks.example.com/storefront"])
    events: list[str] = Field(min_length=1, max_length=len(SUBSCRIBABLE_TYPES), examples=[["order.created"], ["*"]])
    description: str | None = Field(default=None, max_length=500)

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str] | None) -> list[str] | None:
        return _check_events(value)


class EndpointUpdate(BaseModel):
    """Body of ``PATCH /webhooks/endpoints/{id}``: only the fields sent change.

    ``status`` lets an admin disable an endpoint or enable it again (a
    ``failing`` endpoint becomes ``enabled`` by itself once a delivery succeeds).
    """

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, min_length=1, max_length=2048)
    events: list[str] | None = Field(default=None, min_length=1, max_length=len(SUBSCRIBABLE_TYPES))
    description: str | None = Field(default=None, max_length=500)
    status: Literal["enabled", "disabled"] | None = None

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str] | None) -> list[str] | None:
        return _check_events(value)

    @model_validator(mode="after")
    def _not_null(self) -> EndpointUpdate:
        for name in ("url", "events", "status"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class EndpointPublic(BaseModel):
    """A webhook endpoint as every view but its creation shows it: never its signing secret."""

    id: str
    url: str
    events: list[str]
    description: str | None = None
    status: EndpointStatus = Field(
        description="`enabled`; `failing` (its latest attempt failed and retries go on); `disabled` (no deliveries)."
    )
    disabled_reason: str | None = Field(default=None, description="Why it was disabled, when it is.")
    created_at: datetime
    updated_at: datetime


class EndpointWithSecret(EndpointPublic):
    """An endpoint with its signing secret: the answer of its creation and of ``rotate-secret``, and only those."""

    secret: str = Field(description="`whsec_...`: verifies deliveries; shown only now, never again.")


class AttemptPublic(BaseModel):
    """One delivery attempt."""

    at: datetime
    status_code: int | None = Field(description="The receiver's HTTP status, or null when no answer came.")
    error: str | None = Field(
        description="Why the attempt failed without an answer (timeout, connection, address refused...)."
    )
    duration_ms: float
    response: str | None = Field(description="The first 1 KiB of the response body (UTF-8, invalid bytes replaced).")
    next_attempt_at: datetime | None = Field(description="When the next attempt is due after this one, if any.")


class DeliveryPublic(BaseModel):
    """One event's delivery to one endpoint, with its attempts (oldest first; the last 50 are kept)."""

    id: str
    endpoint_id: str
    event_id: str = Field(description="Also the `webhook-id` header of every attempt.")
    event_type: EventType
    status: DeliveryStatus
    attempts: list[AttemptPublic]
    next_attempt_at: datetime | None = Field(description="When the next attempt is due (pending only).")
    created_at: datetime
    delivered_at: datetime | None = None


class ReplayRequest(BaseModel):
    """Body of ``POST /webhooks/endpoints/{id}/replay``: events created in ``[since, until)``, optionally of some types."""

    model_config = ConfigDict(extra="forbid")

    since: datetime
    until: datetime
    types: list[EventType] | None = Field(default=None, min_length=1)


class ReplayResult(BaseModel):
    """Answer of a replay: how many of the range's events were queued again for the endpoint."""

    queued: int = Field(description="Deliveries (re)queued; those already being sent are not counted.")
