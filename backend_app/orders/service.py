"""Order rules: merging lines, allocating sizes, taking stock atomically (spec §1, §5, §6)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession

from backend_app.core.db import MongoDatabase, run_in_transaction
from backend_app.core.pagination import OffsetParams, PageMeta, offset_page
from backend_app.core.types import from_bson_money, to_decimal128
from backend_app.orders import repository
from backend_app.orders.exceptions import InsufficientStockError, OrderedProductNotFoundError, UnknownSizeError
from backend_app.orders.schemas import OrderItemCreate, OrderLinePublic, OrderPublic, ProductDetails, SizeTaken
from backend_app.products import repository as products_repository


@dataclass(slots=True)
class Line:
    """One merged order line: ``qty`` units of ``product_id`` (of ``size``, or any size)."""

    product_id: ObjectId
    size: str | None
    qty: int
    taken: dict[str, int] = field(default_factory=dict)


def merge_lines(items: list[OrderItemCreate]) -> list[Line]:
    """Merge duplicate ``(productId, size)`` lines, keeping first-seen order (spec §5)."""
    merged: dict[tuple[str, str | None], Line] = {}
    for item in items:
        key = (item.productId.lower(), item.size)
        if key in merged:
            merged[key].qty += item.qty
        else:
            merged[key] = Line(product_id=ObjectId(item.productId), size=item.size, qty=item.qty)
    return list(merged.values())


def allocate(lines: list[Line], products: dict[ObjectId, dict[str, Any]]) -> None:
    """Decide which sizes each line takes from, filling ``Line.taken`` (spec §5).

    Lines naming a size take from it; then a line without a size takes from a
    single-size product's only size, or across the sizes in listed order from
    what the sized lines left.

    Raises:
        UnknownSizeError: a line names a size the product does not have (422).
        InsufficientStockError: one or more lines are short, each listed (409).
    """
    remaining = {pid: {s["size"]: s["quantity"] for s in doc.get("sizes", [])} for pid, doc in products.items()}
    short: list[dict[str, Any]] = []
    ordered = [line for line in lines if line.size is not None] + [line for line in lines if line.size is None]
    for line in ordered:
        stock = remaining[line.product_id]
        if line.size is not None:
            if line.size not in stock:
                raise UnknownSizeError(str(line.product_id), line.size)
            available = stock[line.size]
            if available < line.qty:
                short.append(_short(line, available))
                continue
            stock[line.size] -= line.qty
            line.taken = {line.size: line.qty}
            continue
        available = sum(stock.values())
        if available < line.qty:
            short.append(_short(line, available))
            continue
        needed = line.qty
        for size, qty in stock.items():
            take = min(qty, needed)
            if take:
                line.taken[size] = take
                stock[size] -= take
                needed -= take
            if not needed:
                break
    if short:
        raise InsufficientStockError(short)


def _short(line: Line, available: int) -> dict[str, Any]:
    return {"productId": str(line.product_id), "size": line.size, "requested": line.qty, "available": available}


def _available(product: dict[str, Any], size: str | None) -> int:
    sizes = {s["size"]: s["quantity"] for s in product.get("sizes", [])}
    return sizes.get(size, 0) if size is not None else sum(sizes.values())


def _takes_by_product(lines: list[Line]) -> dict[ObjectId, dict[str, int]]:
    takes: dict[ObjectId, dict[str, int]] = {}
    for line in lines:
        per_size = takes.setdefault(line.product_id, {})
        for size, qty in line.taken.items():
            per_size[size] = per_size.get(size, 0) + qty
    return takes


async def place_order(db: MongoDatabase, *, user_id: str, items: list[OrderItemCreate]) -> str:
    """Place an order for ``user_id`` and return its id (brief ``POST /orders``).

    Every line is checked and its stock taken in one multi-document
    transaction, so concurrent orders never oversell and an order is never
    half-applied (spec §5). Unit prices and names are captured from the
    database at order time; ``total`` = Σ qty × unit price, exact (spec §6).

    Raises:
        OrderedProductNotFoundError: a product is unknown or soft-deleted (404).
        UnknownSizeError: a line names a size the product lacks (422).
        InsufficientStockError: some lines are short (409).
    """
    lines = merge_lines(items)
    product_ids = list(dict.fromkeys(line.product_id for line in lines))

    async def work(session: AsyncClientSession) -> ObjectId:
        for line in lines:
            line.taken = {}
        products = await products_repository.find_live_by_ids(db, product_ids=product_ids, session=session)
        missing = [str(pid) for pid in product_ids if pid not in products]
        if missing:
            raise OrderedProductNotFoundError(missing)
        allocate(lines, products)
        for product_id, takes in _takes_by_product(lines).items():
            if not await products_repository.take_stock(db, product_id=product_id, takes=takes, session=session):
                # The conditional update found less than the snapshot showed.
                raise InsufficientStockError(
                    [_short(line, _available(products[product_id], line.size)) for line in lines if line.product_id == product_id]
                )
        order = _order_document(user_id=user_id, lines=lines, products=products)
        return await repository.insert_order(db, order=order, session=session)

    order_id = await run_in_transaction(db.client, work)
    return str(order_id)


def _order_document(*, user_id: str, lines: list[Line], products: dict[ObjectId, dict[str, Any]]) -> dict[str, Any]:
    now = datetime.now(UTC)
    total = Decimal(0)
    items = []
    for line in lines:
        product = products[line.product_id]
        unit_price = from_bson_money(product["price"])
        total += unit_price * line.qty
        items.append(
            {
                "productId": line.product_id,
                "name": product["name"],
                "size": line.size,
                "qty": line.qty,
                "unit_price": to_decimal128(unit_price),
                "taken": [{"size": size, "qty": qty} for size, qty in line.taken.items()],
            }
        )
    return {
        "userId": user_id,
        "status": "pending",
        "items": items,
        "total": to_decimal128(total),
        "created_at": now,
        "updated_at": now,
    }


def to_public(doc: dict[str, Any]) -> OrderPublic:
    """Map an order joined by the repository's pipeline to its public form."""
    return OrderPublic(
        id=str(doc["_id"]),
        userId=doc["userId"],
        status=doc["status"],
        total=from_bson_money(doc["total"]),
        created_at=doc["created_at"],
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


async def list_user_orders(
    db: MongoDatabase, *, user_id: str, page: OffsetParams
) -> tuple[list[OrderPublic], PageMeta]:
    """One page of ``user_id``'s orders, ascending ``_id`` (brief ``GET /orders/{user_id}``)."""
    rows = await repository.list_user_orders(db, user_id=user_id, skip=page.offset, limit=page.limit + 1)
    docs, meta = offset_page(rows, page)
    return [to_public(d) for d in docs], meta
