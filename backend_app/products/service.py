"""Catalog rules: validating filters, reading and writing products.

Every product write goes through one of :func:`create_product`,
:func:`replace_product`, :func:`update_product`, :func:`delete_product` and
:func:`set_quantity` (stock taken or returned by orders goes through
``orders.service``), and each bumps the catalog version after its write succeeds
(``products.catalog_version.catalog_changed``), so cached list pages are never served
stale. Orders do not bump it: they change stock, which list pages do not show.

Each of these writes runs in a transaction with its audit entry
(``audit.service.record``: actor, action, changed fields before and after),
so the catalog and the audit trail never disagree.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from backend_app.audit import service as audit
from backend_app.audit.documents import AuditEntryDocument
from backend_app.core.cursors import SortOrder
from backend_app.core.db import MongoDatabase, query_deadline, run_in_transaction
from backend_app.core.errors import UnprocessableError
from backend_app.core.pages import PageMeta
from backend_app.core.pagination import PageParams
from backend_app.core.regex_guard import UnsafePatternError, check_safe_regex
from backend_app.core.types import from_bson_money, oid
from backend_app.events import service as events
from backend_app.products import repository, stock
from backend_app.products.catalog_version import catalog_changed
from backend_app.products.documents import ProductDocument, ProductListRow
from backend_app.products.exceptions import (
    InvalidNamePatternError,
    ProductNotFoundError,
    QueryTimeoutError,
    SizeNotFoundError,
    SkuTakenError,
)
from backend_app.products.repository import PRICE_KEY, ProductFilter
from backend_app.products.schemas import (
    ProductCreate,
    ProductListItem,
    ProductPublic,
    ProductSort,
    ProductUpdate,
    SizeStock,
)
from backend_app.products.stock import StockBasis

#: Longest accepted ``name`` pattern, in characters.
MAX_PATTERN_LENGTH = 100
#: Cursor scope of ``GET /products`` (a cursor of another list is foreign here).
LIST_SCOPE = "products"


def list_order(sort: ProductSort) -> SortOrder:
    """The stored order of a ``sort`` value: ``price`` sorts (and pages) by the integer ``price_cents``."""
    order = SortOrder.parse(sort)
    if order.field == "price":
        return SortOrder(field=PRICE_KEY, direction=order.direction)
    return order


def _query_timeout() -> QueryTimeoutError:
    return QueryTimeoutError("The product query exceeded the time limit (MONGODB_MAX_TIME_MS); narrow the filter.")


def validate_name_pattern(pattern: str) -> str:
    """Check a ``name`` filter: at most 100 characters, a valid regular expression, no catastrophic backtracking.

    Returns:
        ``pattern`` unchanged.

    Raises:
        InvalidNamePatternError: too long, does not compile, or could
            backtrack catastrophically (``core.regex_guard``).
    """
    try:
        return check_safe_regex(pattern, max_length=MAX_PATTERN_LENGTH)
    except UnsafePatternError as exc:
        raise InvalidNamePatternError(f"name: {exc}") from None


def to_list_item(doc: ProductListRow) -> ProductListItem:
    """Map a stored product to a list record (no sizes)."""
    return ProductListItem(
        id=str(doc["_id"]),
        name=doc["name"],
        price=from_bson_money(doc["price"]),
        category=doc.get("category"),
    )


def to_public(doc: Mapping[str, Any]) -> ProductPublic:
    """Map a stored product to its full public form; ``stock`` = Σ ``available`` of its sizes."""
    sizes = stock.public_sizes(doc.get("sizes", []))
    return ProductPublic(
        id=str(doc["_id"]),
        name=doc["name"],
        price=from_bson_money(doc["price"]),
        description=doc.get("description"),
        category=doc.get("category"),
        rating=doc.get("rating"),
        sku=doc.get("sku"),
        sizes=sizes,
        stock=sum(s.available for s in sizes),
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
    )


@contextlib.contextmanager
def _sku_must_be_free(sku: str | None) -> Iterator[None]:
    """Turn the ``sku`` unique index's duplicate-key error inside the block into :class:`SkuTakenError` (409).

    A duplicate key on any other index (e.g. the audit trail's) is not a taken
    SKU and propagates unchanged.
    """
    try:
        yield
    except DuplicateKeyError as exc:
        if sku is None or not _is_sku_conflict(exc):
            raise
        raise SkuTakenError(sku) from None


def _is_sku_conflict(exc: DuplicateKeyError) -> bool:
    """Whether ``exc`` was raised by the products' ``sku_unique`` index (by key pattern, else by message)."""
    details: Mapping[str, Any] = exc.details or {}
    key_pattern = details.get("keyPattern") or details.get("keyValue") or {}
    return "sku" in key_pattern or "sku_unique" in str(details.get("errmsg", exc))


def _found(doc: ProductDocument | None, product_id: str) -> ProductPublic:
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
    before: ProductDocument | None,
    after: ProductDocument | None,
) -> None:
    """Record a catalog write in the audit trail, in its transaction (public forms; changed fields only)."""
    entry = product_audit_entry(actor, action, product_id, before, after)
    await audit.record_many(db, entries=[entry], session=session)
    await events.product_written(db, action=action, before=before, after=after, view=to_public, session=session)


def product_audit_entry(
    actor: str, action: str, product_id: str, before: ProductDocument | None, after: ProductDocument | None
) -> AuditEntryDocument:
    """The audit entry of one catalog write: the product's public forms, only the changed fields when both exist."""
    old = to_public(before).model_dump(mode="json") if before is not None else None
    new = to_public(after).model_dump(mode="json") if after is not None else None
    if old is not None and new is not None:
        old, new = audit.changed_fields(old, new)
    return audit.new_entry(
        actor=actor, action=action, entity_type="product", entity_id=product_id, before=old, after=new
    )


async def create_product(db: MongoDatabase, *, product: ProductCreate, actor: str) -> str:
    """Store ``product`` and return its id as 24 hex digits (then bump the catalog version).

    The insert and its audit entry (``product.create`` by ``actor``) commit in one transaction.

    Raises:
        SkuTakenError: another product has its ``sku`` (409).
    """

    async def work(session: AsyncClientSession) -> ObjectId:
        product_id = await repository.insert_product(db, product=product, session=session)
        after = await repository.get_live_product(db, product_id=product_id, session=session)
        await _audit(
            db, session, actor=actor, action="product.create", product_id=str(product_id), before=None, after=after
        )
        return product_id

    with _sku_must_be_free(product.sku):
        product_id = await run_in_transaction(db.client, work)
    await catalog_changed(db)
    return str(product_id)


async def _change_live_product(
    db: MongoDatabase,
    *,
    product_id: str,
    actor: str,
    action: str,
    change: Callable[[AsyncClientSession, ProductDocument], Awaitable[ProductDocument | None]],
) -> ProductDocument:
    """Read a live product, apply ``change(session, before)`` and record both states, in one transaction.

    Reading the product inside the transaction makes a concurrent order's
    allocation of its stock conflict with the write (one of them re-runs), so
    the ``allocated`` units a stock write keeps are never stale.

    Returns:
        The new document.

    Raises:
        ProductNotFoundError: unknown or soft-deleted (404); nothing is written or recorded.
    """

    async def work(session: AsyncClientSession) -> ProductDocument:
        before = await repository.get_live_product(db, product_id=oid(product_id), session=session)
        after = await change(session, before) if before is not None else None
        if before is None or after is None:
            raise ProductNotFoundError(product_id)
        await _audit(db, session, actor=actor, action=action, product_id=product_id, before=before, after=after)
        return after

    return await run_in_transaction(db.client, work)


async def replace_product(
    db: MongoDatabase,
    *,
    product_id: str,
    product: ProductCreate,
    actor: str,
    basis: StockBasis = StockBasis.ON_HAND,
) -> ProductPublic:
    """Replace a live product's fields (``PUT``; omitted optional fields are cleared); audited ``product.replace``.

    Each size keeps its ``allocated`` units; ``basis`` says how its sent
    ``quantity`` is read (``products.stock``).

    Raises:
        ProductNotFoundError: unknown or soft-deleted (404).
        SkuTakenError: another product has its ``sku`` (409).
        QuantityBelowAllocatedError: a size would hold less than its pending orders (409).
    """

    async def change(session: AsyncClientSession, before: ProductDocument) -> ProductDocument | None:
        sizes = stock.stored_sizes(product.sizes, current=before["sizes"], basis=basis, product_id=product_id)
        return await repository.replace_product(
            db, product_id=oid(product_id), product=product, sizes=sizes, session=session
        )

    with _sku_must_be_free(product.sku):
        doc = await _change_live_product(
            db, product_id=product_id, actor=actor, action="product.replace", change=change
        )
    await catalog_changed(db)
    return to_public(doc)


async def update_product(
    db: MongoDatabase,
    *,
    product_id: str,
    changes: ProductUpdate,
    actor: str,
    basis: StockBasis = StockBasis.ON_HAND,
) -> ProductPublic:
    """Change the given fields of a live product (``PATCH``); audited ``product.update``.

    ``sizes``, when sent, keep their ``allocated`` units as in :func:`replace_product`.

    Raises:
        ProductNotFoundError: unknown or soft-deleted (404).
        SkuTakenError: another product has its ``sku`` (409).
        QuantityBelowAllocatedError: a size would hold less than its pending orders (409).
    """

    async def change(session: AsyncClientSession, before: ProductDocument) -> ProductDocument | None:
        sizes = None
        if changes.sizes is not None:
            sizes = stock.stored_sizes(changes.sizes, current=before["sizes"], basis=basis, product_id=product_id)
        return await repository.update_product(
            db, product_id=oid(product_id), changes=changes, sizes=sizes, session=session
        )

    with _sku_must_be_free(changes.sku):
        doc = await _change_live_product(db, product_id=product_id, actor=actor, action="product.update", change=change)
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


async def set_quantity(
    db: MongoDatabase,
    *,
    product_id: str,
    size: SizeStock,
    actor: str,
    basis: StockBasis = StockBasis.ON_HAND,
) -> ProductPublic:
    """Set one size's on-hand stock (``PUT /products/{id}/quantity``); audited ``product.set_quantity``.

    The size keeps its ``allocated`` units; ``basis`` as in :func:`replace_product`.

    Raises:
        ProductNotFoundError: unknown or soft-deleted (404).
        SizeNotFoundError: the product has no such size (404; add sizes with ``PATCH``).
        QuantityBelowAllocatedError: the size would hold less than its pending orders (409).
    """

    async def change(session: AsyncClientSession, before: ProductDocument) -> ProductDocument:
        current = [s for s in before["sizes"] if s["size"] == size.size]
        if not current:
            raise SizeNotFoundError(product_id, size.size)
        (stored,) = stock.stored_sizes([size], current=current, basis=basis, product_id=product_id)
        doc = await repository.set_size_quantity(db, product_id=oid(product_id), size=stored, session=session)
        if doc is None:
            raise SizeNotFoundError(product_id, size.size)
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
    """One page of live products (brief ``GET /products``), by offset or by cursor.

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
    window = page.window(scope=LIST_SCOPE, filters=filters.fingerprint_fields(), sort=list_order(sort))
    with query_deadline(max_time_ms, error=_query_timeout, client=db.client):
        rows = await repository.list_products(db, filters=filters, window=window)
    docs, meta = window.finish(rows)
    return [to_list_item(d) for d in docs], meta


async def get_product(db: MongoDatabase, *, product_id: str) -> ProductPublic:
    """The live product ``product_id``.

    Raises:
        ProductNotFoundError: unknown or soft-deleted (404).
    """
    return _found(await repository.get_live_product(db, product_id=oid(product_id)), product_id)


# --- Bulk writes: POST /products/batch and `python -m backend_app import-products` ----------------------
