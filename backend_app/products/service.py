"""Catalog rules: validating filters, creating and reading products (spec §1, §4)."""

from __future__ import annotations

import re
from typing import Any

from pymongo.errors import ExecutionTimeout

from backend_app.core.db import MongoDatabase
from backend_app.core.errors import ServiceUnavailableError
from backend_app.core.pagination import OffsetParams, PageMeta, offset_page
from backend_app.core.types import from_bson_money, oid
from backend_app.products import repository
from backend_app.products.cache import catalog_changed
from backend_app.products.exceptions import InvalidNamePatternError, ProductNotFoundError
from backend_app.products.repository import ProductFilter
from backend_app.products.schemas import ProductCreate, ProductListItem, ProductPublic, SizeStock

MAX_PATTERN_LENGTH = 100


class QueryTimeoutError(ServiceUnavailableError):
    """A list query exceeded the server time limit (``MONGODB_MAX_TIME_MS``): 503."""

    code = "query_timeout"
    title = "Query took too long"


def validate_name_pattern(pattern: str) -> str:
    """Check a ``name`` filter: at most 100 characters and a valid regular expression.

    Returns:
        ``pattern`` unchanged.

    Raises:
        InvalidNamePatternError: too long or does not compile (spec §4).
    """
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise InvalidNamePatternError(f"name pattern is longer than {MAX_PATTERN_LENGTH} characters")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise InvalidNamePatternError(f"name is not a valid regular expression: {exc}") from None
    return pattern


def to_list_item(doc: dict[str, Any]) -> ProductListItem:
    """Map a stored product to a list record (no sizes)."""
    return ProductListItem(
        id=str(doc["_id"]), name=doc["name"], price=from_bson_money(doc["price"]), category=doc.get("category")
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


async def create_product(db: MongoDatabase, *, product: ProductCreate) -> str:
    """Store ``product`` and return its id as 24 hex digits (then bump the catalog version)."""
    product_id = await repository.insert_product(db, product=product)
    await catalog_changed(db)
    return str(product_id)


async def list_products(
    db: MongoDatabase,
    *,
    name: str | None,
    size: str | None,
    page: OffsetParams,
    max_time_ms: int,
) -> tuple[list[ProductListItem], PageMeta]:
    """One page of live products in ascending ``_id`` order (brief ``GET /products``).

    Raises:
        InvalidNamePatternError: ``name`` is not an acceptable pattern (422).
        QueryTimeoutError: the query exceeded ``max_time_ms`` (503).
    """
    filters = ProductFilter(name_pattern=validate_name_pattern(name) if name is not None else None, size=size)
    try:
        rows = await repository.list_products(
            db, filters=filters, skip=page.offset, limit=page.limit + 1, max_time_ms=max_time_ms
        )
    except ExecutionTimeout:
        raise QueryTimeoutError("The product query exceeded the server time limit; narrow the filter.") from None
    docs, meta = offset_page(rows, page)
    return [to_list_item(d) for d in docs], meta


async def get_product(db: MongoDatabase, *, product_id: str) -> ProductPublic:
    """The live product ``product_id``.

    Raises:
        ProductNotFoundError: unknown or soft-deleted (404).
    """
    doc = await repository.get_live_product(db, product_id=oid(product_id))
    if doc is None:
        raise ProductNotFoundError(product_id)
    return to_public(doc)
