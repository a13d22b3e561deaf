"""Catalog files: reading JSON, JSON Lines and CSV products, and importing them (docs/catalog-at-scale.md).

Used by ``python -m backend_app import-products PATH`` and by the demo catalog
loader (``backend_app.demo``). Every row is validated with the rules of
``POST /products`` and written through ``products.service.write_products``, the
one bulk write of the catalog (so the batch endpoint and the importer behave
alike).

Formats (chosen by the file's extension, or ``fmt``):

- ``json``: one JSON array of product objects; row N is the array's N-th element (1-based).
- ``jsonl`` (also ``.ndjson``): one product object per line; blank lines are
  skipped; row N is line N.
- ``csv``: UTF-8, a header line naming the columns; row N is line N (the
  header is line 1). Columns: ``name``, ``price`` (required), ``sku``,
  ``category``, ``description``, ``rating``, ``stock`` (a product without
  sizes) and ``sizes`` as ``size:quantity`` pairs joined by ``|``
  (``S:10|M:5|L:0``; the last ``:`` splits, so a size may contain ``:``).
  Empty cells are omitted; an unknown column refuses the row (as an unknown
  field does in ``POST /products``).
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend_app.core.db import MongoDatabase
from backend_app.products import service
from backend_app.products.stock import StockBasis
from backend_app.products.schemas import ProductCreate

FORMATS = ("json", "jsonl", "csv")
_EXTENSIONS = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
#: Separator of ``size:quantity`` pairs in the CSV ``sizes`` column.
CSV_SIZES_SEPARATOR = "|"


class CatalogFileError(Exception):
    """The file cannot be read at all (missing, unknown format, not a JSON array, no CSV header)."""


@dataclass(frozen=True, slots=True)
class Row:
    """One record of a catalog file: its row number (see the module docstring) and its raw value.

    ``problem`` is set instead of ``value`` when the record could not even be
    parsed (a JSON Lines line that is not JSON, a bad CSV ``sizes`` cell).
    """

    number: int
    value: Any = None
    problem: str | None = None


@dataclass(slots=True)
class ImportReport:
    """What an import did. ``refused``: ``(row number, reason)`` pairs, in file order."""

    rows: int = 0
    created: int = 0
    updated: int = 0
    valid: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)
    seconds: float = 0.0
    dry_run: bool = False

    @property
    def imported(self) -> int:
        """Products created or updated."""
        return self.created + self.updated


def detect_format(path: Path, fmt: str | None = None) -> str:
    """``fmt`` if given, else the format named by ``path``'s extension.

    Raises:
        CatalogFileError: neither names a known format.
    """
    chosen = fmt or _EXTENSIONS.get(path.suffix.lower())
    if chosen not in FORMATS:
        raise CatalogFileError(f"{path}: unknown format; use .json, .jsonl or .csv, or --format.")
    return chosen


def _csv_sizes(cell: str) -> list[dict[str, Any]]:
    sizes = []
    for pair in cell.split(CSV_SIZES_SEPARATOR):
        size, sep, quantity = pair.strip().rpartition(":")
        if not sep or not size:
            raise ValueError(f"sizes: {pair.strip()!r} is not 'size:quantity' (pairs joined by '|')")
        sizes.append({"size": size, "quantity": quantity.strip()})
    return sizes


def _csv_rows(handle: Any) -> Iterator[Row]:
    reader = csv.DictReader(handle)
    if not reader.fieldnames:
        raise CatalogFileError("the CSV file has no header line")
    for record in reader:
        number = reader.line_num
        if None in record:  # more cells than header columns
            yield Row(number, problem="more cells than the header has columns")
            continue
        value: dict[str, Any] = {k.strip(): v for k, v in record.items() if v is not None and v.strip() != ""}
        try:
            if "sizes" in value:
                value["sizes"] = _csv_sizes(value["sizes"])
        except ValueError as exc:
            yield Row(number, problem=str(exc))
            continue
        yield Row(number, value)


def read_rows(path: Path, fmt: str | None = None) -> list[Row]:
    """Every record of the catalog file at ``path``, numbered (see the module docstring).

    Raises:
        CatalogFileError: the file is missing, its format unknown, or it is not
            a JSON array (``json``) / has no header (``csv``).
    """
    kind = detect_format(path, fmt)
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            if kind == "csv":
                return list(_csv_rows(handle))
            if kind == "jsonl":
                rows = []
                for number, line in enumerate(handle, start=1):
                    if line.strip():
                        try:
                            rows.append(Row(number, json.loads(line)))
                        except json.JSONDecodeError as exc:
                            rows.append(Row(number, problem=f"not JSON: {exc.msg}"))
                return rows
            try:
                data = json.load(handle)
            except json.JSONDecodeError as exc:
                raise CatalogFileError(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogFileError(f"{path}: cannot be read ({exc})") from None
    if not isinstance(data, list):
        raise CatalogFileError(f"{path}: a JSON catalog must be an array of products")
    return [Row(number, value) for number, value in enumerate(data, start=1)]


def _reason(issues: list[Any]) -> str:
    return "; ".join((".".join(str(p) for p in issue.loc) + ": " if issue.loc else "") + issue.msg for issue in issues)


async def import_rows(
    db: MongoDatabase | None,
    rows: list[Row],
    *,
    actor: str,
    upsert: bool = False,
    basis: StockBasis = StockBasis.ON_HAND,
    dry_run: bool = False,
    batch_size: int = service.WRITE_BATCH,
    on_validated: Callable[[int], None] | None = None,
    on_written: Callable[[int], None] | None = None,
) -> ImportReport:
    """Validate ``rows`` with the rules of ``POST /products`` and write the valid ones (unless ``dry_run``).

    Args:
        db: the database (unused, may be ``None``, with ``dry_run``).
        actor: who imports, as the audit trail records it (e.g. ``cli:import-products``).
        basis: how the rows' quantities are read when ``upsert`` updates a product
            (``products.stock.StockBasis``; ``--stock-basis``).
        on_validated / on_written: progress callbacks, called with a count of rows.

    Returns:
        The :class:`ImportReport` (refusals in row order, ``seconds`` of the whole import).
    """
    started = time.perf_counter()
    report = ImportReport(rows=len(rows), dry_run=dry_run)
    valid: list[tuple[int, ProductCreate]] = []
    refused: dict[int, str] = {}
    for row in rows:
        if row.problem is not None:
            refused[row.number] = row.problem
        else:
            checked = service.validate_product(row.value)
            if isinstance(checked, ProductCreate):
                valid.append((row.number, checked))
            else:
                refused[row.number] = _reason(checked)
        if on_validated is not None:
            on_validated(1)
    report.valid = len(valid)
    if not dry_run and valid:
        assert db is not None
        for result in await service.write_products(
            db, products=valid, actor=actor, upsert=upsert, basis=basis, batch_size=batch_size, progress=on_written
        ):
            if result.status == 201:
                report.created += 1
            elif result.status == 200:
                report.updated += 1
            else:
                refused[result.index] = _reason(result.errors or [])
    report.refused = sorted(refused.items())
    report.seconds = time.perf_counter() - started
    return report


def format_report(report: ImportReport, *, source: str, max_listed: int = 100) -> str:
    """The human report printed by ``import-products``: rows read, imported, refused (with reasons), seconds."""
    verb = "would import" if report.dry_run else "imported"
    lines = [
        f"{source}: {report.rows} rows read; {verb} {report.valid if report.dry_run else report.imported}"
        + ("" if report.dry_run else f" (created {report.created}, updated {report.updated})")
        + f"; refused {len(report.refused)}; {report.seconds:.2f} s"
        + (" (dry run: nothing written)" if report.dry_run else "")
    ]
    for number, reason in report.refused[:max_listed]:
        lines.append(f"  row {number}: {reason}")
    if len(report.refused) > max_listed:
        lines.append(f"  ... and {len(report.refused) - max_listed} more refused rows")
    return "\n".join(lines)
