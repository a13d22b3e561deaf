"""The entity of an event as the API's admin views show it, built through each domain's own public mapping.

The write paths pass their own mapping (``view``: ``orders.service.to_public``,
``products.service.to_public``) with each hook, so this package never imports
the domains that call it, and an event's ``data`` never differs from what
``GET /orders/{user_id}/{order_id}`` or ``GET /products/{id}`` shows, nor holds a
field those views do not (no password hash, no token).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel

#: Largest envelope sent whole, in bytes of compact JSON (Standard Webhooks recommends under 20 KB).
MAX_ENVELOPE_BYTES = 20_000


#: A domain's public mapping: a document (as its repository reads it) → its public model.
View = Callable[[Mapping[str, Any]], BaseModel]


def order_data(
    order: Mapping[str, Any], *, view: View, status: str | None = None, updated_at: datetime | None = None
) -> dict[str, Any]:
    """A stored order document in its public JSON form (``status``/``updated_at`` overriding the stored ones).

    ``view`` maps an order as the order views read it (each line with its
    ``productDetails`` joined); a line's ``productDetails`` here is the name and
    id recorded when the order was placed, which is what those views show at that moment.
    """
    joined = {
        **order,
        "status": status or order["status"],
        "created_at": _stored(order["created_at"]),
        "updated_at": _stored(updated_at or order.get("updated_at", order["created_at"])),
        "items": [
            {**item, "productDetails": {"_id": item["productId"], "name": item["name"]}} for item in order["items"]
        ],
    }
    return view(joined).model_dump(mode="json")


def _stored(moment: datetime) -> datetime:
    """``moment`` cut to milliseconds, as BSON stores it (so an event shows what a later read shows)."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def product_data(product: Mapping[str, Any], *, view: View) -> dict[str, Any]:
    """A stored product document in the public JSON form of ``GET /products/{id}`` (``view`` maps it)."""
    return view(product).model_dump(mode="json")


def stock_of(product: Mapping[str, Any] | None) -> dict[str, int]:
    """``{size: quantity}`` of a stored product (empty for ``None``)."""
    return {s["size"]: s["quantity"] for s in (product or {}).get("sizes", [])}


def envelope_bytes(envelope: dict[str, Any]) -> bytes:
    """The compact JSON body of an envelope (the bytes that are signed and sent)."""
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def fit(envelope: dict[str, Any]) -> dict[str, Any]:
    """``envelope`` itself when its body is at most :data:`MAX_ENVELOPE_BYTES`, else with a thin ``data``.

    The thin form keeps the entity's scalar fields (id, status, total, name,
    price, stock, times...) and adds ``"truncated": true``; lists and objects
    (order lines, sizes) are left out, to be read through the API.
    """
    if len(envelope_bytes(envelope)) <= MAX_ENVELOPE_BYTES:
        return envelope
    data = {k: v for k, v in envelope["data"].items() if not isinstance(v, (list, dict))}
    data = {k: v for k, v in data.items() if not isinstance(v, str) or len(v) <= 512}
    return {**envelope, "data": {**data, "truncated": True}}
