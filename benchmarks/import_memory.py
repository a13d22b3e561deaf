"""Peak memory of ``import-products --dry-run`` against the file's size, beside the previous design.

Side by side in one run, each measurement in a fresh Python process (its peak
resident set, ``VmHWM`` of ``/proc/self/status``: Linux only; ``ru_maxrss`` would
carry the parent's peak across ``fork``/``exec``), for JSON, JSON Lines and CSV catalogs of
``--small`` and ``--large`` generated products:

1. ``python -m backend_app import-products FILE --dry-run`` (streams the file,
   validates and would write one chunk at a time);
2. the previous design's reading step alone: the whole file parsed into a list
   (``json.load`` / every line / every CSV record) and every row validated
   into a list before any write.

A flat design shows about the same peak for both sizes; the previous one
grows with the file. Validation only: no database is started.

Usage::

    .venv/bin/python benchmarks/import_memory.py [--small 20000] [--large 200000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: The previous design's reading step, run in a child process: print its peak RSS in KiB.
PREVIOUS = r"""
import csv, json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from backend_app.products import bulk
path = Path(sys.argv[1])
with path.open(encoding="utf-8-sig", newline="") as handle:
    if path.suffix == ".json":
        values = json.load(handle)
    elif path.suffix == ".jsonl":
        values = [json.loads(line) for line in handle if line.strip()]
    else:
        values = list(csv.DictReader(handle))
checked = [bulk.validate_product(value) for value in values]
print(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:")))
"""

#: The importer, run in a child process: print its peak RSS in KiB.
STREAMING = r"""
import sys
sys.path.insert(0, sys.argv[2])
from backend_app.__main__ import main
import contextlib, io
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    main(["import-products", sys.argv[1], "--dry-run"])
print(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:")))
"""


def product(n: int) -> dict[str, object]:
    return {"name": f"Product {n:07d} " + "x" * 100, "price": 10 + n % 90, "sku": f"SKU-{n:07d}", "category": "demo"}


def write(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8") as handle:
        if path.suffix == ".csv":
            handle.write("name,price,sku,category\n")
            for n in range(rows):
                p = product(n)
                handle.write(f"{p['name']},{p['price']},{p['sku']},{p['category']}\n")
        elif path.suffix == ".jsonl":
            for n in range(rows):
                handle.write(json.dumps(product(n)) + "\n")
        else:
            handle.write("[")
            for n in range(rows):
                handle.write(("," if n else "") + json.dumps(product(n)))
            handle.write("]")


def peak_kib(script: str, path: Path) -> int:
    done = subprocess.run(
        [sys.executable, "-c", script, str(path), str(ROOT)], capture_output=True, text=True, check=True, timeout=600
    )
    return int(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=20_000)
    parser.add_argument("--large", type=int, default=200_000)
    args = parser.parse_args()
    print("| format | products | file MB | streaming peak MB | previous design peak MB |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in (".json", ".jsonl", ".csv"):
            for rows in (args.small, args.large):
                path = Path(tmp) / f"catalog-{rows}{suffix}"
                write(path, rows)
                streaming, previous = peak_kib(STREAMING, path), peak_kib(PREVIOUS, path)
                print(
                    f"| {suffix[1:]} | {rows} | {path.stat().st_size / 2**20:.1f} | {streaming / 1024:.0f} "
                    f"| {previous / 1024:.0f} |",
                    flush=True,
                )
                path.unlink()


if __name__ == "__main__":
    main()
