"""The inventory of each product size: on hand, allocated to pending orders, available to sell.

Per size (docs/architecture.md (Orders and stock), "The inventory model"):

- ``quantity``: units on hand. Only admin writes set it (``POST``, ``PUT``,
  ``PATCH`` ``sizes``, ``PUT /products/{id}/quantity``, the batch endpoint and
  the importer), exactly as their bodies send it;
- ``allocated``: units held by pending orders. Only orders change it: placing
  raises it, cancelling and expiry lower it, completing lowers it and
  ``quantity`` together (the units leave the shelf);
- ``available = quantity − allocated``: what an order can take.

The invariant ``0 ≤ allocated ≤ quantity``, with ``allocated`` equal to the
units of that size in pending orders, holds through every write: orders
allocate only what is available, and an admin write that would put
``quantity`` below ``allocated`` is refused (:class:`QuantityBelowAllocatedError`)
unless it says its numbers are what is *available* (``stock_basis=available``).

Other domains reach stock only through this module (orders allocate and settle here).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession

from backend_app.core.db import MongoDatabase
from backend_app.products import repository, stock_repository
from backend_app.products.documents import OrderableProduct, StoredSize
from backend_app.products.exceptions import QuantityBelowAllocatedError
from backend_app.products.repository import stored_size
from backend_app.products.schemas import SizePublic, SizeStock


class StockBasis(StrEnum):
    """What the quantities of an admin stock write mean.

    ``on_hand`` (default): units on the shelf; each size's ``quantity`` becomes
    the number sent, refused (409) below what pending orders hold.
    ``available``: units that may still be sold; each size's ``quantity``
    becomes the number sent plus what pending orders hold, never refused.
    """

    ON_HAND = "on_hand"
    AVAILABLE = "available"


def stored_sizes(
    sizes: Iterable[SizeStock],
    *,
    current: Iterable[Mapping[str, Any]] = (),
    basis: StockBasis = StockBasis.ON_HAND,
    product_id: str | None = None,
) -> list[StoredSize]:
    """The stored sizes of an admin write of ``sizes``, keeping what pending orders hold of ``current``.

    Args:
        sizes: the sizes the write sends (``quantity`` as ``basis`` says).
        current: the product's stored sizes before the write (none for a new product).
        basis: how to read each sent ``quantity`` (:class:`StockBasis`).
        product_id: named in the error.

    Returns:
        One stored size per sent size, in the order sent, ``allocated`` carried over.

    Raises:
        QuantityBelowAllocatedError: a sent size's on-hand ``quantity`` is below
            its ``allocated`` units, or a size that holds allocated units is left
            out of the write (409, each such size listed).
    """
    held = {s["size"]: int(s.get("allocated", 0)) for s in current}
    conflicts: list[dict[str, Any]] = []
    result: list[StoredSize] = []
    for entry in sizes:
        allocated = held.pop(entry.size, 0)
        quantity = entry.quantity + allocated if basis is StockBasis.AVAILABLE else entry.quantity
        if quantity < allocated:
            conflicts.append({"size": entry.size, "quantity": quantity, "allocated": allocated})
        result.append(stored_size(entry.size, quantity=quantity, allocated=allocated))
    conflicts.extend({"size": size, "quantity": None, "allocated": n} for size, n in held.items() if n > 0)
    if conflicts:
        raise QuantityBelowAllocatedError(product_id, conflicts)
    return result


def public_sizes(stored: Iterable[Mapping[str, Any]]) -> list[SizePublic]:
    """The API form of stored sizes (``quantity``, ``allocated``, ``available`` per size)."""
    return [
        SizePublic(
            size=s["size"],
            quantity=s["quantity"],
            allocated=s.get("allocated", 0),
            available=s.get("available", s["quantity"] - s.get("allocated", 0)),
        )
        for s in stored
    ]


def available_by_size(product: Mapping[str, Any]) -> dict[str, int]:
    """``{size: available units}`` of a stored product, in listed order."""
    return {s["size"]: s.get("available", s["quantity"] - s.get("allocated", 0)) for s in product.get("sizes", [])}


async def allocate(
    db: MongoDatabase, *, units_by_product: Mapping[ObjectId, Mapping[str, int]], session: AsyncClientSession
) -> bool:
    """Allocate ``{product_id: {size: units}}`` to pending orders, all or nothing; False if any size is short."""
    return await stock_repository.allocate_many(db, units_by_product=units_by_product, session=session)


async def release(
    db: MongoDatabase, *, product_id: ObjectId, units: Mapping[str, int], session: AsyncClientSession
) -> bool:
    """Put units of a cancelled or expired order back on sale (``allocated`` down, ``available`` up)."""
    return await stock_repository.settle(db, product_id=product_id, units=units, fulfil=False, session=session)


async def fulfil(
    db: MongoDatabase, *, product_id: ObjectId, units: Mapping[str, int], session: AsyncClientSession
) -> bool:
    """Take units of a completed order off the shelf (``allocated`` and ``quantity`` down)."""
    return await stock_repository.settle(db, product_id=product_id, units=units, fulfil=True, session=session)


#: Products converted per round of :func:`convert_legacy_stock`.
CONVERSION_BATCH = 500


async def convert_legacy_stock(db: MongoDatabase, *, allocated: Mapping[tuple[ObjectId, str], int]) -> int:
    """Convert sizes stored before the inventory model; idempotent; returns how many products it converted.

    Before, a size stored one number, ``quantity``, from which pending orders had
    already been taken: it was what is available. Now, per size,
    ``allocated`` = the units pending orders hold (``allocated``, keyed by
    ``(product_id, size)``), ``quantity`` = the old number + ``allocated`` (on
    hand), ``available`` = the old number. Each product is rewritten only if its
    sizes are still as read, so two processes converting at once convert each
    product once. Run at start-up, before any request is served.
    """
    converted = 0
    while True:
        batch = await stock_repository.find_unconverted(db, limit=CONVERSION_BATCH)
        if not batch:
            return converted
        progressed = False
        for doc in batch:
            new = []
            for s in doc["sizes"]:
                if "allocated" in s:
                    new.append(s)
                    continue
                held = allocated.get((doc["_id"], s["size"]), 0)
                new.append(stored_size(s["size"], quantity=s["quantity"] + held, allocated=held))
            if await stock_repository.replace_sizes_if_unchanged(db, product_id=doc["_id"], old=doc["sizes"], new=new):
                converted += 1
            progressed = True
        if not progressed:
            return converted


async def find_orderable(
    db: MongoDatabase, *, product_ids: list[ObjectId], session: AsyncClientSession
) -> dict[ObjectId, OrderableProduct]:
    """``{_id: {name, price, sizes}}`` of the live products among ``product_ids``, read in ``session``."""
    return await repository.find_live_by_ids(db, product_ids=product_ids, session=session)
