"""Bulk catalog writes: ``POST /products/batch``, the importer and the demo catalog (docs/architecture.md (Catalog at scale)).

Each chunk of products is one transaction holding its inserts, its updates and
one audit entry per product written, so the catalog and its audit trail never
disagree; the catalog version is bumped once, after the last chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pydantic import ValidationError
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import BulkWriteError, DuplicateKeyError

from backend_app.audit import service as audit
from backend_app.audit.documents import AuditEntryDocument
from backend_app.core.db import MongoDatabase, run_in_transaction
from backend_app.core.errors import TransactionConflictError, ValidationIssue
from backend_app.events import service as events
from backend_app.products import repository, stock
from backend_app.products.catalog_version import catalog_changed
from backend_app.products.documents import ProductDocument
from backend_app.products.exceptions import QuantityBelowAllocatedError
from backend_app.products.schemas import BatchItemResult, BatchReport, ProductCreate
from backend_app.products.service import product_audit_entry, to_public
from backend_app.products.stock import StockBasis

#: Products written per ``insert_many`` / ``bulk_write`` round trip.
WRITE_BATCH = 1000


def validate_product(raw: Any) -> ProductCreate | list[ValidationIssue]:
    """Validate one product of a bulk write with the rules of ``POST /products`` (:class:`ProductCreate`).

    Returns:
        The product, or the reasons it is refused (as in a 422's ``errors``).
    """
    try:
        return ProductCreate.model_validate(raw)
    except ValidationError as exc:
        return [
            ValidationIssue(
                loc=[str(p) if not isinstance(p, int) else p for p in err["loc"]], msg=err["msg"], type=err["type"]
            )
            for err in exc.errors()
        ]


#: How often a bulk-write chunk is re-run when a concurrent writer took one of its SKUs meanwhile.
CHUNK_ATTEMPTS = 3
SKU_TAKEN = "sku already belongs to another product"


async def write_products(
    db: MongoDatabase,
    *,
    products: Sequence[tuple[int, ProductCreate]],
    actor: str,
    upsert: bool = False,
    basis: StockBasis = StockBasis.ON_HAND,
    batch_size: int = WRITE_BATCH,
    progress: Callable[[int], None] | None = None,
    announce_change: bool = True,
) -> list[BatchItemResult]:
    """Store many validated products: the one bulk write of the catalog (batch endpoint and importer).

    Products are written ``batch_size`` at a time; each chunk is one
    transaction holding its inserts (one ``insert_many``), its updates (one
    ``bulk_write``) and one audit entry per product written (``product.create``
    or ``product.update`` by ``actor``), so the catalog and its audit
    trail never disagree. A product whose ``sku`` is held by another product
    (live or soft-deleted) is refused (``409``) and never stops the others;
    with ``upsert``, a product whose ``sku`` a live product holds updates it
    (``200``, every field replaced as by ``PUT``; one that would store what the
    product holds is ``200`` and writes, audits and announces nothing); a ``sku`` given twice in one
    call: the first creates or updates, the later ones update that product
    (without ``upsert``: ``409``). An update keeps each size's ``allocated``
    units (``basis`` as in :func:`replace_product`); one that would leave a
    size below them is refused (``409``, the sizes listed) and never stops
    the others. The catalog version is bumped **once**,
    after the last chunk, when anything was written (not for a batch of unchanged upserts).

    Failure: a chunk committed before the process or database dies stays
    written with its audit entries; one not committed leaves nothing.
    Re-running the same input with ``upsert`` and SKUs converges without
    duplicates. Had the version bump not happened, cached list pages may stay
    stale for at most ``CACHE_TTL_SECONDS``.

    Args:
        products: ``(index, product)`` pairs; ``index`` is echoed in each result.
        actor: who writes: the admin's username, or ``cli:import-products``.
        progress: called with the number of products each chunk settled.
        announce_change: bump the catalog version at the end (``False``: the caller, writing a
            stream in several calls, bumps it once after the last).

    Returns:
        One :class:`BatchItemResult` per product, in input order.

    Raises:
        TransactionConflictError: a chunk kept meeting concurrent writers of its SKUs (503).
    """
    results: list[BatchItemResult] = []
    written = False
    for start in range(0, len(products), batch_size):
        chunk = products[start : start + batch_size]
        outcome, wrote = await _write_chunk(db, chunk=chunk, actor=actor, upsert=upsert, basis=basis)
        written = written or wrote
        results.extend(outcome[index] for index, _ in chunk)
        if progress is not None:
            progress(len(chunk))
    if written and announce_change:
        await catalog_changed(db)
    return results


async def _write_chunk(
    db: MongoDatabase, *, chunk: Sequence[tuple[int, ProductCreate]], actor: str, upsert: bool, basis: StockBasis
) -> tuple[dict[int, BatchItemResult], bool]:
    """Write one chunk of :func:`write_products` in one transaction; its results, and whether it wrote anything.

    Optimistic without ``upsert``: the chunk is written without looking its
    SKUs up; if the unique index refuses one (nothing is written, the
    transaction aborts), it is re-run with the SKUs looked up, refusing those
    held. With ``upsert`` the SKUs are always looked up. A SKU taken by a
    concurrent writer between the lookup and the write re-runs it again.
    """

    look_up = upsert  # without upsert, SKUs are looked up only after the unique index refused one

    async def work(session: AsyncClientSession) -> tuple[dict[int, BatchItemResult], bool]:
        now = datetime.now(UTC)
        skus = list(dict.fromkeys(p.sku for _, p in chunk if p.sku is not None))
        held = await repository.find_holding_skus(db, skus=skus, session=session) if look_up else {}
        current: dict[ObjectId, ProductDocument] = {}  # products this chunk writes, as they will stand
        claimed: dict[str, ObjectId] = {}  # sku -> the product this chunk writes with it
        inserts: list[ProductDocument] = []
        replacements: dict[ObjectId, ProductDocument] = {}
        entries: list[AuditEntryDocument] = []
        outcome: dict[int, BatchItemResult] = {}
        for index, product in chunk:
            sku = product.sku
            target = claimed.get(sku) if sku is not None else None
            holder = held.get(sku) if sku is not None else None
            if target is None and holder is not None and upsert and holder.get("deleted_at") is None:
                target = claimed[sku] = holder["_id"]  # type: ignore[index]
                current[target] = holder
            if target is not None and upsert:
                before = current[target]
                try:
                    sizes = stock.stored_sizes(
                        product.sizes, current=before["sizes"], basis=basis, product_id=str(target)
                    )
                except QuantityBelowAllocatedError as exc:
                    outcome[index] = _below_allocated(index, exc)
                    continue
                after = repository.replaced_document(before, product, sizes=sizes, now=now)
                outcome[index] = BatchItemResult(index=index, status=200, id=str(target))
                if repository.same_content(before, after):
                    # A re-import of what is stored: nothing to write, audit or announce.
                    continue
                current[target] = replacements[target] = after
                entries.append(product_audit_entry(actor, "product.update", str(target), before, after))
            elif target is not None or holder is not None:
                outcome[index] = _refused(index, 409, SKU_TAKEN)
            else:
                doc: ProductDocument = {"_id": ObjectId(), **repository.new_product_document(product, now=now)}
                if sku is not None:
                    claimed[sku] = doc["_id"]
                current[doc["_id"]] = doc
                inserts.append(doc)
                entries.append(product_audit_entry(actor, "product.create", str(doc["_id"]), None, doc))
                outcome[index] = BatchItemResult(index=index, status=201, id=str(doc["_id"]))
        await repository.insert_product_documents(db, documents=inserts, session=session)
        await repository.replace_live_contents(db, replacements=list(replacements.values()), now=now, session=session)
        if entries:
            await audit.record_many(db, entries=entries, session=session)
            await events.products_written(db, entries=entries, documents=current, view=to_public, session=session)
        return outcome, bool(inserts or replacements)

    for attempt in range(1, CHUNK_ATTEMPTS + 1):
        try:
            return await run_in_transaction(db.client, work)
        except (DuplicateKeyError, BulkWriteError):
            # A SKU held by a product outside the chunk: the transaction wrote
            # nothing; re-run it knowing which SKUs are held.
            if attempt == CHUNK_ATTEMPTS:
                raise TransactionConflictError() from None
            look_up = True
    raise AssertionError("unreachable")


def _below_allocated(index: int, exc: QuantityBelowAllocatedError) -> BatchItemResult:
    """A bulk item refused because a size would hold less than its pending orders (409, as the single write)."""
    return BatchItemResult(
        index=index,
        status=409,
        errors=[ValidationIssue(loc=["sizes"], msg=exc.detail, type="quantity_below_allocated")],
    )


def _refused(index: int, status: int, reason: str) -> BatchItemResult:
    return BatchItemResult(
        index=index, status=status, errors=[ValidationIssue(loc=["sku"], msg=reason, type="conflict")]
    )


async def create_products(
    db: MongoDatabase,
    *,
    items: list[Any],
    actor: str,
    upsert: bool = False,
    basis: StockBasis = StockBasis.ON_HAND,
) -> BatchReport:
    """``POST /products/batch``: validate each item like ``POST /products``, write the valid ones, report each.

    Each product written is audited (``product.create`` / ``product.update`` by ``actor``).

    Returns:
        Results in request order: ``201``/``200`` with ``id``, ``409``/``422`` with ``errors``.
    """
    valid: list[tuple[int, ProductCreate]] = []
    results: dict[int, BatchItemResult] = {}
    for index, raw in enumerate(items):
        checked = validate_product(raw)
        if isinstance(checked, ProductCreate):
            valid.append((index, checked))
        else:
            results[index] = BatchItemResult(index=index, status=422, errors=checked)
    for result in await write_products(db, products=valid, actor=actor, upsert=upsert, basis=basis):
        results[result.index] = result
    return batch_report([results[i] for i in range(len(items))])


def batch_report(results: list[BatchItemResult]) -> BatchReport:
    """Count ``results`` into a :class:`BatchReport` (created, updated, refused)."""
    created = sum(r.status == 201 for r in results)
    updated = sum(r.status == 200 for r in results)
    return BatchReport(results=results, created=created, updated=updated, refused=len(results) - created - updated)
