"""Catalog files: reading JSON, JSON Lines and CSV products, and importing them (docs/architecture.md (Catalog at scale)).

Used by ``python -m backend_app import-products PATH`` and by the demo catalog
loader (``backend_app.demo``). Files are streamed (:func:`read_rows`) and
written a chunk at a time (:func:`import_rows`): memory stays flat in the
file's size. Every row is validated with the rules of
``POST /products`` and written through ``products.bulk.write_products``, the
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

import codecs
import csv
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ijson

from backend_app.core.db import MongoDatabase
from backend_app.products import bulk
from backend_app.products.catalog_version import catalog_changed
from backend_app.products.schemas import ProductCreate
from backend_app.products.stock import StockBasis

FORMATS = ("json", "jsonl", "csv")
_EXTENSIONS = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
#: Separator of ``size:quantity`` pairs in the CSV ``sizes`` column.
CSV_SIZES_SEPARATOR = "|"
#: Longest line of a CSV or JSON Lines file, in characters (1 MiB); a longer one is a refused row. A product
#: is a few KiB at most (200-character name, 2,000-character description), so nothing valid is lost.
MAX_ROW_CHARACTERS = 1024 * 1024
#: Rows validated (and, when writing, written) together: the importer holds one chunk at a time.
IMPORT_CHUNK_ROWS = bulk.WRITE_BATCH


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


class _OversizedLine(Exception):
    """A physical line longer than :data:`MAX_ROW_CHARACTERS` (its rest has been skipped)."""


class _Lines:
    """The physical lines of a text file, read one at a time and at most :data:`MAX_ROW_CHARACTERS` long.

    Counts them (``number``: the line last read, 1-based) and tracks whether
    an odd number of ``"`` has been read since the last CSV record ended
    (``in_quotes``), so that after a refused record the CSV reader can be put
    back on a record boundary (:meth:`skip_record`).
    """

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self.number = 0
        self.in_quotes = False

    def __iter__(self) -> _Lines:
        return self

    def _read(self) -> str:
        line: str = self._handle.readline(MAX_ROW_CHARACTERS + 1)
        if line:
            self.number += 1
            self.in_quotes ^= line.count('"') % 2 == 1
        return line

    def __next__(self) -> str:
        line = self._read()
        if not line:
            raise StopIteration
        if len(line) > MAX_ROW_CHARACTERS and not line.endswith("\n"):
            while line and not line.endswith("\n"):  # skip the rest of it, in bounded pieces
                line = self._handle.readline(MAX_ROW_CHARACTERS + 1)
                self.in_quotes ^= line.count('"') % 2 == 1
            raise _OversizedLine
        return line

    def skip_record(self) -> None:
        """After a refused CSV record: read on until its quoted field (if one is open) has closed."""
        while self.in_quotes:
            try:
                next(self)
            except StopIteration:
                break
            except _OversizedLine:
                continue
        self.in_quotes = False

    def record_done(self) -> None:
        """A CSV record was parsed: it ended on a record boundary."""
        self.in_quotes = False


def _oversized(kind: str) -> str:
    return f"the {kind} is larger than {MAX_ROW_CHARACTERS} characters"


def _csv_rows(handle: Any) -> Iterator[Row]:
    lines = _Lines(handle)
    reader = csv.DictReader(lines)
    try:
        header = reader.fieldnames
    except (csv.Error, _OversizedLine):
        raise CatalogFileError("the CSV header line cannot be read (too long, or a field over the limit)") from None
    if not header:
        raise CatalogFileError("the CSV file has no header line")
    lines.record_done()
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except (csv.Error, _OversizedLine) as exc:
            # The record is refused; the parser starts afresh at the next record boundary.
            number = lines.number
            lines.skip_record()
            if isinstance(exc, _OversizedLine):
                yield Row(number, problem=_oversized("row"))
            elif "field larger than field limit" in str(exc):
                yield Row(number, problem=f"a field is larger than {csv.field_size_limit()} characters")
            else:
                yield Row(number, problem=f"not CSV: {exc}")
            continue
        lines.record_done()
        number = lines.number
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


def _jsonl_rows(handle: Any) -> Iterator[Row]:
    lines = _Lines(handle)
    while True:
        try:
            line = next(lines)
        except StopIteration:
            return
        except _OversizedLine:
            yield Row(lines.number, problem=_oversized("row"))
            continue
        if line.strip():
            try:
                yield Row(lines.number, json.loads(line))
            except json.JSONDecodeError as exc:
                yield Row(lines.number, problem=f"not JSON: {exc.msg}")


def _json_rows(path: Path, handle: Any) -> Iterator[Row]:
    if handle.read(len(codecs.BOM_UTF8)) != codecs.BOM_UTF8:
        handle.seek(0)
    try:
        events = ijson.parse(handle, use_float=True)
        first = next(events, None)
        if first is None or first[1] != "start_array":
            raise CatalogFileError(f"{path}: a JSON catalog must be an array of products")
        for number, value in enumerate(ijson.items(events, "item", use_float=True), start=1):
            yield Row(number, value)
    except ijson.JSONError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CatalogFileError(f"{path}: not JSON ({reason})") from None


def read_rows(path: Path, fmt: str | None = None) -> Iterator[Row]:
    """The records of the catalog file at ``path``, numbered (see the module docstring), read as they are used.

    The file is streamed: one line (CSV, JSON Lines) or one array element
    (JSON) is in memory at a time, whatever the file's size. A line longer than
    :data:`MAX_ROW_CHARACTERS`, or a CSV field over the ``csv`` module's field
    limit (128 KiB), is a row with a ``problem`` (refused, with its row
    number), never the end of the import.

    Raises (while iterating):
        CatalogFileError: the file is missing, its format unknown, it is not
            a JSON array or not JSON at all (``json``), or has no header (``csv``).
    """
    kind = detect_format(path, fmt)
    try:
        if kind == "json":
            with path.open("rb") as binary:
                yield from _json_rows(path, binary)
            return
        with path.open(encoding="utf-8-sig", newline="") as handle:
            yield from (_csv_rows(handle) if kind == "csv" else _jsonl_rows(handle))
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogFileError(f"{path}: cannot be read ({exc})") from None


def count_rows(path: Path, fmt: str | None = None) -> int:
    """How many records ``path`` holds, read through once in flat memory (a check before anything is written).

    Raises:
        CatalogFileError: as :func:`read_rows`; so a file broken half-way is
            refused before its first row is written.
    """
    return sum(1 for _ in read_rows(path, fmt))


def _reason(issues: list[Any]) -> str:
    return "; ".join((".".join(str(p) for p in issue.loc) + ": " if issue.loc else "") + issue.msg for issue in issues)


async def import_rows(
    db: MongoDatabase | None,
    rows: Iterable[Row],
    *,
    actor: str,
    upsert: bool = False,
    basis: StockBasis = StockBasis.ON_HAND,
    dry_run: bool = False,
    batch_size: int = bulk.WRITE_BATCH,
    on_validated: Callable[[int], None] | None = None,
    on_written: Callable[[int], None] | None = None,
) -> ImportReport:
    """Validate ``rows`` with the rules of ``POST /products`` and write the valid ones (unless ``dry_run``).

    Rows are consumed as they come (``read_rows`` streams the file) and
    written :data:`IMPORT_CHUNK_ROWS` valid rows at a time, so memory holds one
    chunk, not the file. The catalog version is bumped once, after the last
    chunk, when anything was written.

    Args:
        db: the database (unused, may be ``None``, with ``dry_run``).
        actor: who imports, as the audit trail records it (e.g. ``cli:import-products``).
        basis: how the rows' quantities are read when ``upsert`` updates a product
            (``products.stock.StockBasis``; ``--stock-basis``).
        on_validated / on_written: progress callbacks, called with a count of rows.

    Returns:
        The :class:`ImportReport` (refusals in row order, ``seconds`` of the whole import).

    Raises:
        CatalogFileError: raised by ``rows`` while being read (rows before it may have been written).
    """
    started = time.perf_counter()
    report = ImportReport(dry_run=dry_run)
    refused: dict[int, str] = {}
    chunk: list[tuple[int, ProductCreate]] = []
    written = False

    async def flush() -> None:
        nonlocal written
        report.valid += len(chunk)
        if not dry_run and chunk:
            assert db is not None
            results = await bulk.write_products(
                db,
                products=chunk,
                actor=actor,
                upsert=upsert,
                basis=basis,
                batch_size=batch_size,
                progress=on_written,
                announce_change=False,
            )
            for result in results:
                if result.status == 201:
                    report.created += 1
                elif result.status == 200:
                    report.updated += 1
                else:
                    refused[result.index] = _reason(result.errors or [])
            written = written or report.imported > 0
        chunk.clear()

    for row in rows:
        report.rows += 1
        if row.problem is not None:
            refused[row.number] = row.problem
        else:
            checked = bulk.validate_product(row.value)
            if isinstance(checked, ProductCreate):
                chunk.append((row.number, checked))
            else:
                refused[row.number] = _reason(checked)
        if on_validated is not None:
            on_validated(1)
        if len(chunk) >= IMPORT_CHUNK_ROWS:
            await flush()
    await flush()
    if written:
        assert db is not None
        await catalog_changed(db)
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
