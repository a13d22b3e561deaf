"""The catalog importer streams its file: memory stays flat in the file's size, and an oversized row is
refused with its row number instead of ending the import (docs/architecture.md (Catalog at scale)).
"""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from backend_app import __main__ as cli
from backend_app.products import importer

ROWS = 60_000
#: Peak traced allocation allowed while importing a file of ~8 MB: a small fraction of it.
PEAK_BUDGET_BYTES = 2 * 1024 * 1024


def _product(n: int) -> dict[str, object]:
    return {"name": f"Product {n:06d} " + "x" * 120, "price": 10 + n % 90, "sku": f"SKU-{n:06d}"}


def _write_json(path: Path) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.write("[")
        for n in range(ROWS):
            handle.write(("," if n else "") + json.dumps(_product(n)))
        handle.write("]")


def _write_jsonl(path: Path) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for n in range(ROWS):
            handle.write(json.dumps(_product(n)) + "\n")


def _write_csv(path: Path) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.write("name,price,sku\n")
        for n in range(ROWS):
            product = _product(n)
            handle.write(f"{product['name']},{product['price']},{product['sku']}\n")


@pytest.mark.parametrize(("suffix", "write"), [(".json", _write_json), (".jsonl", _write_jsonl), (".csv", _write_csv)])
def test_a_large_file_is_validated_in_flat_memory(tmp_path: Path, suffix: str, write: Callable[[Path], None]) -> None:
    path = tmp_path / f"catalog{suffix}"
    write(path)
    assert path.stat().st_size > 4 * PEAK_BUDGET_BYTES
    tracemalloc.start()
    try:
        report = asyncio.run(importer.import_rows(None, importer.read_rows(path), actor="test", dry_run=True))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (report.rows, report.valid, report.refused) == (ROWS, ROWS, [])
    assert peak < PEAK_BUDGET_BYTES, f"peak {peak} bytes for a file of {path.stat().st_size} bytes"


def test_a_csv_field_over_the_field_limit_is_a_refused_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "catalog.csv"
    huge = "d" * (200 * 1024)
    path.write_text(f'name,price,description\nMug,7.5,ok\nPoster,12,"{huge}"\nShirt,20,fine\n', encoding="utf-8")
    assert cli.main(["import-products", str(path), "--dry-run"]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert "3 rows read; would import 2; refused 1;" in captured.out
    assert "row 3: a field is larger than" in captured.out


def test_a_json_lines_row_over_the_row_limit_is_a_refused_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "catalog.jsonl"
    huge = json.dumps({"name": "Poster", "price": 12, "description": "d" * (3 * 1024 * 1024)})
    path.write_text('{"name": "Mug", "price": 7.5}\n' + huge + '\n{"name": "Shirt", "price": 20}\n', encoding="utf-8")
    assert cli.main(["import-products", str(path), "--dry-run"]) == 1
    out = capsys.readouterr().out
    assert "3 rows read; would import 2; refused 1;" in out
    assert "row 2: the row is larger than" in out


def test_a_json_array_broken_half_way_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "catalog.json"
    path.write_text('[{"name": "Mug", "price": 7.5}, {"name": "Shirt", "price": ', encoding="utf-8")
    assert cli.main(["import-products", str(path), "--dry-run"]) == 2
    assert "not JSON" in capsys.readouterr().err
