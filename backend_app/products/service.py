"""Catalog rules: validating filters, reading and writing products (spec §1, §4).

Every product write goes through one of :func:`create_product`,
:func:`replace_product`, :func:`update_product`, :func:`delete_product` and
:func:`set_quantity` (stock taken or returned by orders goes through
``orders.service``), and each bumps the catalog version after its write succeeds
(``products.cache.catalog_changed``), so cached list pages are never served
stale. Orders do not bump it: they change stock, which list pages do not show.

Each of these writes runs in a transaction with its audit entry
(``audit.service.record``: actor, action, changed fields before and after),
so the catalog and the audit trail never disagree (issue 13).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import ExecutionTimeout

from backend_app.audit import service as audit
from backend_app.core.db import MongoDatabase, run_in_transaction
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


async def _audit(
    db: MongoDatabase,
    session: AsyncClientSession,
    *,
    actor: str,
    action: str,
    product_id: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    """Record a catalog write in the audit trail, in its transaction (public forms; changed fields only)."""
    old = to_public(before).model_dump(mode="json") if before is not None else None
    new = to_public(after).model_dump(mode="json") if after is not None else None
    if old is not None and new is not None:
        old, new = audit.changed_fields(old, new)
    await audit.record(
        db,
        actor=actor,
        action=action,
        entity_type="product",
        entity_id=product_id,
        before=old,
        after=new,
        session=session,
    )


async def create_product(db: MongoDatabase, *, product: ProductCreate, actor: str) -> str:
    """Store ``product`` and return its id as 24 hex digits (then bump the catalog version).

    The insert and its audit entry (``product.create`` by ``actor``) commit in one transaction.
    """

    async def work(session: AsyncClientSession) -> ObjectId:
        product_id = await repository.insert_product(db, product=product, session=session)
        after = await repository.get_live_product(db, product_id=product_id, session=session)
        await _audit(
            db, session, actor=actor, action="product.create", product_id=str(product_id), before=None, after=after
        )
        return product_id

    product_id = await run_in_transaction(db.client, work)
    await catalog_changed(db)
    return str(product_id)


async def _change_live_product(
    db: MongoDatabase,
    *,
    product_id: str,
    actor: str,
    action: str,
    change: Callable[[AsyncClientSession], Awaitable[dict[str, Any] | None]],
) -> dict[str, Any]:
    """Read a live product, apply ``change`` and record both states, in one transaction; returns the new document.

    Raises:
        ProductNotFoundError: unknown or soft-deleted (404); nothing is written or recorded.
    """

    async def work(session: AsyncClientSession) -> dict[str, Any]:
        before = await repository.get_live_product(db, product_id=oid(product_id), session=session)
        after = await change(session) if before is not None else None
        if before is None or after is None:
            raise ProductNotFoundError(product_id)
        await _audit(db, session, actor=actor, action=action, product_id=product_id, before=before, after=after)
        return after

    return await run_in_transaction(db.client, work)


async def replace_product(db: MongoDatabase, *, product_id: str, product: ProductCreate, actor: str) -> ProductPublic:
    """Replace a live product's fields (``PUT``; omitted optional fields are cleared); audited ``product.replace``.

    Raises:
        ProductNotFoundError: unknown or soft-deleted (404).
    """
    doc = await _change_live_product(
        db,
        product_id=product_id,
        actor=actor,
        action="product.replace",
        change=lambda session: repository.replace_product(
            db, product_id=oid(product_id), product=product, session=session
        ),
    )
    await catalog_changed(db)
    return to_public(doc)


async def update_product(db: MongoDatabase, *, product_id: str, changes: ProductUpdate, actor: str) -> ProductPublic:
    """Change the given fields of a live product (``PATCH``); audited ``product.update``.

    Raises:
        ProductNotFoundError: unknown or soft-deleted (404).
    """
    doc = await _change_live_product(
        db,
        product_id=product_id,
        actor=actor,
        action="product.update",
        change=lambda session: repository.update_product(
            db, product_id=oid(product_id), changes=changes, session=session
        ),
    )
    await catalog_changed(db)
    return to_public(doc)


async def delete_product(db: MongoDatabase, *, product_id: str, actor: str) -> None:
    """Soft-delete a live product: it leaves listings and cannot be ordered; past orders keep its name.

    Audited ``product.delete`` (``before``: the product, ``after``: null), in the same transaction.

    Raises:
        ProductNotFoundError: unknown or already deleted (404).
    """

    async def work(session: AsyncClientSession) -> None:
        before = await repository.get_live_product(db, product_id=oid(product_id), session=session)
        if before is None or not await repository.soft_delete_product(db, product_id=oid(product_id), session=session):
            raise ProductNotFoundError(product_id)
        await _audit(
            db, session, actor=actor, action="product.delete", product_id=product_id, before=before, after=None
        )

    await run_in_transaction(db.client, work)
    await catalog_changed(db)


async def set_quantity(db: MongoDatabase, *, product_id: str, stock: SizeStock, actor: str) -> ProductPublic:
    """Set the stock of one size of a live product (``PUT /products/{id}/quantity``); audited ``product.set_quantity``.

    Raises:
        ProductNotFoundError: unknown or soft-deleted (404).
        SizeNotFoundError: the product has no such size (404; add sizes with ``PATCH``).
    """

    async def change(session: AsyncClientSession) -> dict[str, Any]:
        doc = await repository.set_size_quantity(
            db, product_id=oid(product_id), size=stock.size, quantity=stock.quantity, session=session
        )
        if doc is None:
            raise SizeNotFoundError(product_id, stock.size)
        return doc

    doc = await _change_live_product(
        db, product_id=product_id, actor=actor, action="product.set_quantity", change=change
    )
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
