"""The import's alternatives that were measured and rejected (docs/architecture.md (Catalog at scale)).

Side by side in one run, each on a fresh embedded server with ``make run``'s
flags (``benchmarks.catalog_scale.embedded``), for the same ``--products``
catalog (``catalog_scale.catalog_rows``):

1. raw PyMongo ``insert_many`` (1,000 per call) of the product documents into a
   collection that already has the catalog's indexes (what every import does);
2. the same documents into a collection without secondary indexes, then the
   catalog's indexes built afterwards (``products.indexes.ensure_indexes``),
   the "load first, index after" alternative, timed as load + build;
3. ``python -m backend_app import-products`` with the default oplog bound
   (``--oplog-max-entries 20000``) and with a bound of 1,000,000, alternating,
   ``--rounds`` times each.

Usage::

    .venv/bin/python benchmarks/import_alternatives.py [--products 20000] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pymongo import AsyncMongoClient

from backend_app.devtools.embedded_db import EmbeddedMongo
from backend_app.products import indexes
from benchmarks.catalog_scale import DB, catalog_rows, commit, embedded, product_documents, run_importer


async def insert(uri: str, docs: list[dict[str, Any]], *, index_first: bool) -> tuple[float, float]:
    """``(seconds inserting, seconds building the indexes afterwards)`` of ``docs`` on the server at ``uri``."""
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    try:
        db = mongo[DB]
        if index_first:
            await indexes.ensure_indexes(db)
        start = time.perf_counter()
        for i in range(0, len(docs), 1000):
            await db["products"].insert_many(docs[i : i + 1000], ordered=False)
        loaded = time.perf_counter()
        if not index_first:
            await indexes.ensure_indexes(db)
        return loaded - start, time.perf_counter() - loaded
    finally:
        await mongo.close()


def run_import(server: EmbeddedMongo, catalog: Path) -> float:
    """Seconds of ``import-products catalog`` against ``server``, process start to exit (it must succeed)."""
    seconds, done = run_importer(server.uri, catalog)
    if done.returncode != 0:
        raise SystemExit(f"import-products failed: {done.stdout[-300:]} {done.stderr[-500:]}")
    return seconds


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=1, help="import runs per oplog bound (alternating)")
    args = parser.parse_args()
    rows = catalog_rows(args.products)
    docs = product_documents(rows)
    print(
        f"# import_alternatives: {args.products} products; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"commit {commit()}; {platform.machine()} {os.cpu_count()} cores (shared); Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory(prefix="import-alternatives-") as tmp:
        catalog = Path(tmp) / "catalog.jsonl"
        catalog.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        print("\n| write, each on a fresh server | seconds |\n|---|---:|")
        with embedded(tmp, "indexed") as server:
            loaded, _ = await insert(server.uri, docs, index_first=True)
        print(f"| raw `insert_many`, the catalog's indexes present | {loaded:.2f} |")
        with embedded(tmp, "load-then-index") as server:
            loaded, built = await insert(server.uri, docs, index_first=False)
        print(
            f"| raw `insert_many` without secondary indexes, then building them | {loaded:.2f} + {built:.2f} = {loaded + built:.2f} |"
        )
        for n in range(args.rounds):
            for bound in (20_000, 1_000_000):
                server = EmbeddedMongo(
                    storage_path=os.path.join(tmp, f"import-{bound}-{n}", "db"),
                    log_path=os.path.join(tmp, f"import-{bound}-{n}.log"),
                    oplog_max_entries=bound,
                )
                with server:
                    seconds = run_import(server, catalog)
                print(f"| `import-products`, `--oplog-max-entries {bound}` (round {n + 1}) | {seconds:.2f} |")


if __name__ == "__main__":
    asyncio.run(main())
