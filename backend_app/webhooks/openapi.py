"""The events as OpenAPI ``webhooks``: one entry per event type with its envelope, so ``/docs`` shows every payload."""

from typing import Any, Literal

from fastapi import FastAPI, Header
from pydantic import BaseModel, Field, create_model

from backend_app.events.schemas import EventEntity
from backend_app.orders.schemas import OrderPublic
from backend_app.products.schemas import ProductPublic


class PingData(BaseModel):
    """``data`` of a ``ping`` event (``POST /webhooks/endpoints/{id}/test``)."""

    endpoint_id: str
    url: str
    message: str


#: Event type → (its ``data`` model, when it is sent).
EVENT_DATA: dict[str, tuple[type[BaseModel], str]] = {
    "order.created": (OrderPublic, "An order was placed (its lines show the stock taken, per size)."),
    "order.completed": (OrderPublic, "An admin completed a pending order."),
    "order.cancelled": (OrderPublic, "The owner or an admin cancelled a pending order; its stock went back."),
    "order.expired": (OrderPublic, "A pending order passed `ORDER_PENDING_TTL_SECONDS`; its stock went back."),
    "product.created": (ProductPublic, "A product was created (`POST /products`, batch, import)."),
    "product.updated": (
        ProductPublic,
        "A product's fields were replaced or changed (`PUT`, `PATCH`, an import upsert).",
    ),
    "product.deleted": (ProductPublic, "A product was soft-deleted; `data` is the product as it was."),
    "product.stock_changed": (
        ProductPublic,
        "An admin write changed a size's on-hand quantity (`PUT /products/{id}/quantity`, `PUT`/`PATCH` with `sizes`, an import upsert).",
    ),
    "ping": (PingData, "A test delivery asked for with `POST /webhooks/endpoints/{id}/test`."),
}


def _envelope_model(event_type: str, data: type[BaseModel]) -> type[BaseModel]:
    name = "Event_" + event_type.replace(".", "_")
    return create_model(
        name,
        id=(str, Field(description="The event's 24-hex id; equals the `webhook-id` header.")),
        type=(Literal[event_type], ...),  # type: ignore[arg-type]  # a Literal of a runtime value
        created_at=(str, Field(description="ISO 8601 UTC time of the change.")),
        entity=(EventEntity, ...),
        data=(
            data,
            Field(description="The entity as the admin API shows it (thinned, with `truncated: true`, above 20 KB)."),
        ),
    )


def install(app: FastAPI) -> None:
    """Declare every event under the OpenAPI document's ``webhooks`` (``app.webhooks``)."""
    for event_type, (data, summary) in EVENT_DATA.items():
        model = _envelope_model(event_type, data)

        async def receiver(
            body: model,  # type: ignore[valid-type]
            webhook_id: str = Header(description="The event id (the same on every attempt): de-duplicate by it."),
            webhook_timestamp: str = Header(description="Unix time of this attempt, in seconds."),
            webhook_signature: str = Header(description="`v1,<base64 HMAC-SHA256>` per valid secret, space-separated."),
        ) -> Any:
            """Answer any 2xx to acknowledge; 410 disables the endpoint; anything else is retried."""

        receiver.__doc__ = f"{summary}\n\nVerify with `standardwebhooks.Webhook(secret).verify(body, headers)`; answer any 2xx to acknowledge (410 disables the endpoint; anything else is retried)."
        app.webhooks.post(event_type, summary=summary, operation_id=f"webhook_{event_type.replace('.', '_')}")(receiver)
