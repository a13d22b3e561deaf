"""The public form of a stored order: one mapping for the API, events and webhooks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backend_app.core.types import from_bson_money
from backend_app.orders.schemas import OrderLinePublic, OrderPublic, ProductDetails, SizeTaken


def to_public(doc: Mapping[str, Any]) -> OrderPublic:
    """Map an order joined by the repository's pipeline to its public form."""
    return OrderPublic(
        id=str(doc["_id"]),
        userId=doc["userId"],
        status=doc["status"],
        total=from_bson_money(doc["total"]),
        created_at=doc["created_at"],
        updated_at=doc.get("updated_at", doc["created_at"]),
        items=[
            OrderLinePublic(
                productDetails=ProductDetails(
                    id=str(item["productDetails"]["_id"]), name=item["productDetails"]["name"]
                ),
                qty=item["qty"],
                size=item.get("size"),
                unit_price=from_bson_money(item["unit_price"]),
                taken=[SizeTaken(**t) for t in item.get("taken", [])],
            )
            for item in doc["items"]
        ],
    )
