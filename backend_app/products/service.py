"""Catalog rules: validating filters, reading and writing products (spec §1, §4).

Every product write goes through one of :func:`create_product`,
:func:`replace_product`, :func:`update_product`, :func:`delete_product` and
:func:`set_quantity` (stock taken or returned by orders goes through
``orders.service``), and each bumps the catalog version after its write succeeds
(``products.cache.catalog_changed``), so cached list pages are never served
stale. Orders do not bump it: they change stock, which list pages do not show.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pymongo.errors import ExecutionTimeout

from backend_app.core.db import MongoDatabase
from backend_app.core.errors import UnprocessableError
from backend_app.core.pagination import PageMeta, PageParams, SortOrder
from backend_app.core.regex_guard import UnsafePatternError, check_safe_regex
from backend_app.core.types import from_bson_money, oid
from backend_app.products import repository
from backend_app.products.cache import catalog_changed
from backend_app.products.exceptions import (
    InvalidNamePatternError,
    ProductNotFoundError,
    QueryTimeoutError,
    SizeNotFoundError,
)
from backend_app.products.repository import ProductFilter
from backend_app.products.schemas import (
    ProductCreate,
    ProductListItem,
    ProductPublic,
    ProductSort,
    ProductUpdate,
    SizeStock,
)

#: Longest accepted ``name`` pattern, in characters (spec §4).
MAX_PATTERN_LENGTH = 100
#: Cursor scope of ``GET /products`` (a cursor of another list is foreign here).
LIST_SCOPE = "products"


def validate_name_pattern(pattern: str) -> str:
    """Check a ``name`` filter: at most 100 characters, a valid regular expression, no catastrophic backtracking.

    Returns:
        ``pattern`` unchanged.

    Raises:
        InvalidNamePatternError: too long, does not compile, or could
            backtrack catastrophically (``core.regex_guard``; spec §4).
    """
    try:
        return check_safe_regex(pattern, max_length=MAX_PATTERN_LENGTH)
    except UnsafePatternError as exc:
        raise InvalidNamePatternError(f"name: {exc}") from None


def to_list_item(doc: dict[str, Any]) -> ProductListItem:
    """Map a stored product to a list record (no sizes)."""
    return ProductListItem(
        id=str(doc["_id"]),
        name=doc["name"],
        price=from_bson_money(doc["price"]),
        category=doc.get("category"),
    )


def to_public(doc: dict[str, Any]) -> ProductPublic:
    """Map a stored product to its full public form; ``stock`` = Σ size quantities."""
    sizes = [SizeStock(size=s["size"], quantity=s["quantity"]) for s in doc.get("sizes", [])]
    return ProductPublic(
        id=str(doc["_id"]),
        name=doc["name"],
        price=from_bson_money(doc["price"]),
        description=doc.get("description"),
        category=doc.get("category"),
        rating=doc.get("rating"),
        sizes=sizes,
        stock=sum(s.quantity for s in sizes),
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
    )


def _found(doc: dict[str, Any] | None, product_id: str) -> ProductPublic:
    """``doc`` in its public form; ``None`` (not live) → :class:`ProductNotFoundError` (404)."""
    if doc is None:
        raise ProductNotFoundError(product_id)
    return to_public(doc)


async def create_product(db: MongoDatabase, *, product: ProductCreate) -> str:
    """Store ``product`` and return its id as 24 hex digits (then bump the catalog version)."""
    product_id = await repository.insert_product(db, product=product)
    await catalog_changed(db)
    return str(product_id)


async def replace_product(db: MongoDatabase, *, product_id: str, product: ProductCreate) -> ProductPublic:
    """Replace a live product's fields (``PUT``; omitted optional fields are cleared).

    Raises:
        ProductNotFoundError: unknown or soft-deleted (404).
    """
    product_public = _found(
        await repository.replace_product(db, product_id=oid(product_id), product=product), product_id
    )
    await catalog_changed(db)
    return product_public


async def update_product(db: MongoDatabase, *, product_id: str, changes: ProductUpdate) -> ProductPublic:
    """Change the given fields of a live product (``PATCH``).

    Raises:
        ProductNotFoundError: unknown or soft-deleted (404).
    """
    product_public = _found(
        await repository.update_product(db, product_id=oid(product_id), changes=changes), product_id
    )
    await catalog_changed(db)
    return product_public


async def delete_product(db: MongoDatabase, *, product_id: str) -> None:
    """Soft-delete a live product: it leaves listings and cannot be ordered; past orders keep its name.

    Raises:
        ProductNotFoundError: unknown or already deleted (404).
    """
    if not await repository.soft_delete_product(db, product_id=oid(product_id)):
        raise ProductNotFoundError(product_id)
    await catalog_changed(db)


async def set_quantity(db: MongoDatabase, *, product_id: str, stock: SizeStock) -> ProductPublic:
    """Set the stock of one size of a live product (``PUT /products/{id}/quantity``).

    Raises:
        ProductNotFoundError: unknown or soft-deleted (404).
        SizeNotFoundError: the product has no such size (404; add sizes with ``PATCH``).
    """
    doc = await repository.set_size_quantity(db, product_id=oid(product_id), size=stock.size, quantity=stock.quantity)
    if doc is None:
        if await repository.get_live_product(db, product_id=oid(product_id)) is None:
            raise ProductNotFoundError(product_id)
        raise SizeNotFoundError(product_id, stock.size)
    await catalog_changed(db)
    return to_public(doc)


async def list_products(
    db: MongoDatabase,
    *,
    name: str | None = None,
    size: str | None = None,
    category: str | None = None,
    min_price: Decimal | None = None,
    max_price: Decimal | None = None,
    sort: ProductSort = "_id",
    page: PageParams,
    max_time_ms: int,
) -> tuple[list[ProductListItem], PageMeta]:
    """One page of live products (brief ``GET /products``; spec §2, §4).

    Raises:
        InvalidNamePatternError: ``name`` is not an acceptable pattern (422).
        UnprocessableError: ``min_price`` > ``max_price`` (422).
        InvalidCursorError: the cursor is bad or was issued for other filters or sort (400).
        QueryTimeoutError: the query exceeded ``max_time_ms`` (503).
    """
    if min_price is not None and max_price is not None and min_price > max_price:
        raise UnprocessableError("min_price must not exceed max_price.", field=("query", "min_price"))
    filters = ProductFilter(
        name_pattern=validate_name_pattern(name) if name is not None else None,
        size=size,
        category=category,
        min_price=min_price,
        max_price=max_price,
    )
    window = page.window(scope=LIST_SCOPE, filters=filters.fingerprint_fields(), sort=SortOrder.parse(sort))
    try:
        rows = await repository.list_products(db, filters=filters, window=window, max_time_ms=max_time_ms)
    except ExecutionTimeout:
        raise QueryTimeoutError("The product query exceeded the server time limit; narrow the filter.") from None
    docs, meta = window.finish(rows)
    return [to_list_item(d) for d in docs], meta


async def get_product(db: MongoDatabase, *, product_id: str) -> ProductPublic:
    """The live product ``product_id``.

    Raises:
        ProductNotFoundError: unknown or soft-deleted (404).
    """
    return _found(await repository.get_live_product(db, product_id=oid(product_id)), product_id)
