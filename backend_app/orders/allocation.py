"""The pure rules of an order's lines: merging them, limiting their units, choosing the sizes they take.

No database here: :mod:`backend_app.orders.placement` applies these rules to
what it read inside the order's transaction, so an order is all or nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bson import ObjectId

from backend_app.orders.exceptions import InsufficientStockError, LineUnitsExceededError, UnknownSizeError
from backend_app.orders.schemas import OrderItemCreate
from backend_app.products.stock import available_by_size


@dataclass(slots=True)
class Line:
    """One merged order line: ``qty`` units of ``product_id`` (of ``size``, or any size)."""

    product_id: ObjectId
    size: str | None
    qty: int


def merge_lines(items: list[OrderItemCreate]) -> list[Line]:
    """Merge duplicate ``(productId, size)`` lines, keeping first-seen order."""
    merged: dict[tuple[str, str | None], Line] = {}
    for item in items:
        key = (item.productId.lower(), item.size)
        if key in merged:
            merged[key].qty += item.qty
        else:
            merged[key] = Line(product_id=ObjectId(item.productId), size=item.size, qty=item.qty)
    return list(merged.values())


def check_units_per_line(lines: list[Line], *, max_units: int) -> None:
    """Refuse an order one of whose products, after merging, takes more than ``max_units`` units.

    The limit is per product and order (``ORDER_MAX_UNITS_PER_LINE``), counted
    after merging, so splitting a product over many lines or sizes does not
    pass it.

    Raises:
        LineUnitsExceededError: 422 naming the first such product and its units.
    """
    per_product: dict[ObjectId, int] = {}
    for line in lines:
        per_product[line.product_id] = per_product.get(line.product_id, 0) + line.qty
    for product_id, units in per_product.items():
        if units > max_units:
            raise LineUnitsExceededError(str(product_id), units, max_units)


def allocate(lines: list[Line], products: Mapping[ObjectId, Mapping[str, Any]]) -> list[dict[str, int]]:
    """Decide which sizes each line takes from, out of each size's ``available`` units.

    Lines naming a size take from it; then a line without a size takes from a
    single-size product's only size, or across the sizes in listed order from
    what the sized lines left.

    Returns:
        For each of ``lines``, in order, the units it takes per size: ``{size: units}``.

    Raises:
        UnknownSizeError: a line names a size the product does not have (422).
        InsufficientStockError: one or more lines are short, each listed (409).
    """
    remaining = {pid: available_by_size(doc) for pid, doc in products.items()}
    short: list[dict[str, Any]] = []
    taken: list[dict[str, int]] = [{} for _ in lines]
    sized_first = sorted(range(len(lines)), key=lambda i: lines[i].size is None)
    for i in sized_first:
        line = lines[i]
        stock = remaining[line.product_id]
        if line.size is not None:
            if line.size not in stock:
                raise UnknownSizeError(str(line.product_id), line.size)
            available = stock[line.size]
            if available < line.qty:
                short.append(_short(line, available))
                continue
            stock[line.size] -= line.qty
            taken[i] = {line.size: line.qty}
            continue
        available = sum(stock.values())
        if available < line.qty:
            short.append(_short(line, available))
            continue
        needed = line.qty
        for size, qty in stock.items():
            take = min(qty, needed)
            if take:
                taken[i][size] = take
                stock[size] -= take
                needed -= take
            if not needed:
                break
    if short:
        raise InsufficientStockError(short)
    return taken


def _short(line: Line, available: int) -> dict[str, Any]:
    return {"productId": str(line.product_id), "size": line.size, "requested": line.qty, "available": available}


def units_by_product(
    lines: Iterable[tuple[ObjectId, Iterable[tuple[str, int]]]],
) -> dict[ObjectId, dict[str, int]]:
    """Sum ``(product_id, [(size, units), ...])`` lines into ``{product_id: {size: units}}``, empty products left out."""
    units: dict[ObjectId, dict[str, int]] = {}
    for product_id, per_line in lines:
        per_size = units.setdefault(product_id, {})
        for size, qty in per_line:
            per_size[size] = per_size.get(size, 0) + qty
    return {product_id: sizes for product_id, sizes in units.items() if sizes}


def order_units(order: Mapping[str, Any]) -> dict[ObjectId, dict[str, int]]:
    """``{product_id: {size: units}}`` a stored order holds (its lines' ``taken``)."""
    return units_by_product(
        (item["productId"], ((t["size"], t["qty"]) for t in item.get("taken", []))) for item in order["items"]
    )
