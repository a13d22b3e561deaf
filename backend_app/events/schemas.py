"""Shapes of events: the envelope every receiver and ``GET /events`` sees (docs/architecture.md (Events and webhooks))."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

#: Every event type the store records; ``ping`` is sent only by ``POST /webhooks/endpoints/{id}/test``.
EventType = Literal[
    "order.created",
    "order.completed",
    "order.cancelled",
    "order.expired",
    "product.created",
    "product.updated",
    "product.deleted",
    "product.stock_changed",
    "ping",
]
#: The types an endpoint may subscribe to (``ping`` goes only to the endpoint tested).
SUBSCRIBABLE_TYPES: tuple[str, ...] = tuple(t for t in EventType.__args__ if t != "ping")  # type: ignore[attr-defined]
#: What an event is about.
EntityKind = Literal["order", "product", "webhook_endpoint"]


class EventEntity(BaseModel):
    """The entity an event is about, and where the event stands in that entity's history.

    ``version`` counts the entity's events from 1 (its creation) without gaps;
    events reach an endpoint in no guaranteed order, so a receiver keeps the
    highest ``version`` it has applied per ``(type, id)`` and ignores lower ones.
    """

    type: EntityKind
    id: str = Field(description="The order's or product's 24-hex id.")
    version: int = Field(ge=1, description="1 for the entity's first event, +1 for each later one.")


class EventPublic(BaseModel):
    """One event: the body of a webhook delivery, and an item of ``GET /events``.

    ``data`` is the entity as the API's admin views show it after the change
    (``GET /products/{id}``, ``GET /orders/{user_id}/{order_id}``); for
    ``product.deleted`` the product as it was. When that form would make the
    envelope larger than 20 KB, ``data`` holds the entity's scalar fields and
    ``"truncated": true`` (read the rest through the API).
    """

    id: str = Field(description="The event's 24-hex id; also the `webhook-id` header of every attempt.")
    type: EventType
    created_at: datetime = Field(description="When the change was made (UTC), inside its transaction.")
    entity: EventEntity
    data: dict[str, Any]
