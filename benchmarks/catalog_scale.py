"""Catalog at scale: import 20,000 products with the CLI, then time every list variant cold and warm.

Steps, each write on a SecantusDB of its own started exactly as ``make run``
starts it (``devtools.EmbeddedMongo`` with its default flags, storage in a
temporary directory on disk), so no measurement inherits another's data or oplog:

1. Writes a 20,000-row JSON Lines catalog: the demo catalog (194 products,
   ``backend_app/demo``) repeated, each copy with a ``(n)`` name suffix, a
   ``-n`` SKU suffix and its price moved by -8..+8 %.
2. The raw driver's floor: PyMongo ``insert_many`` (1,000 per call) of the same
   product documents (``products.repository.new_product_document``) into a
   fresh server three times: with no secondary index; with the catalog's
   indexes (``products.indexes.ensure_indexes``); and with the catalog's
   indexes plus one audit entry per product in ``audit`` with its indexes
   (``products.service.product_audit_entry``), which is what the importer
   writes, minus its transactions.
3. Imports the file with ``python -m backend_app import-products`` (a child
   process, timed from start to exit, so Python start-up counts) into
   ``scale_bench`` on a fresh server.
4. Starts uvicorn (one worker, default settings: ``MONGODB_MAX_TIME_MS`` 2000,
   in-process page cache) on ``scale_bench`` and times each ``GET /products``
   variant cold (first request: a cache miss, the database query runs) and warm
   (the same request again: a cache hit; the slowest of ``--warm-reads``
   repeats is reported). Cursor pages follow the first page's ``next_cursor``.
5. Times raw PyMongo for each variant on the same collection: the
   straightforward query (``find(filter).sort(key, _id).skip(offset).limit(11)``,
   price on the ``Decimal128`` field, as before this issue); and the two price
   sorts again on the int64 ``price_cents`` (the money decision).
6. Single-flight: after a catalog write (a version bump), 1 request of
   ``offset=5000``, then after another write 16 identical concurrent ones;
   prints both times and the ratio (target ≤ 2).

Usage::

    .venv/bin/python benchmarks/catalog_scale.py [--products 20000] [--skip-raw-sorts] [--warm-reads 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import httpx
from bson import ObjectId

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pymongo import AsyncMongoClient

from backend_app.audit import repository as audit_repository
from backend_app.demo import DEMO_FILE
from backend_app.devtools.api_server import ApiServer
from backend_app.devtools.embedded_db import EmbeddedMongo
from backend_app.products import catalog_meta, repository
from backend_app.products.schemas import ProductCreate
from backend_app.products.service import product_audit_entry

DB = "scale_bench"
COLD_TARGET_S, COLD_STRETCH_S, WARM_TARGET_S, IMPORT_TARGET_S = 2.5, 1.0, 0.05, 30.0

#: label → (GET /products query, raw PyMongo (filter, sort, skip)); ``then`` follows ``next_cursor``.
VARIANTS: list[tuple[str, dict[str, str], tuple[dict[str, Any], list[tuple[str, int]], int]]] = [
    ("first page", {}, ({"deleted_at": None}, [("_id", 1)], 0)),
    ("sort=price", {"sort": "price"}, ({"deleted_at": None}, [("price", 1), ("_id", 1)], 0)),
    ("sort=-price", {"sort": "-price"}, ({"deleted_at": None}, [("price", -1), ("_id", -1)], 0)),
    ("sort=created_at", {"sort": "created_at"}, ({"deleted_at": None}, [("created_at", 1), ("_id", 1)], 0)),
    ("sort=-created_at", {"sort": "-created_at"}, ({"deleted_at": None}, [("created_at", -1), ("_id", -1)], 0)),
    (
        "name=phone",
        {"name": "phone"},
        ({"deleted_at": None, "name": {"$regex": "phone", "$options": "i"}}, [("_id", 1)], 0),
    ),
    ("size=M", {"size": "M"}, ({"deleted_at": None, "sizes.size": "M"}, [("_id", 1)], 0)),
    (
        "category+sort=price",
        {"category": "smartphones", "sort": "price"},
        ({"deleted_at": None, "category": "smartphones"}, [("price", 1), ("_id", 1)], 0),
    ),
    (
        "category+sort=-price",
        {"category": "smartphones", "sort": "-price"},
        ({"deleted_at": None, "category": "smartphones"}, [("price", -1), ("_id", -1)], 0),
    ),
    (
        "price 100..200",
        {"min_price": "100", "max_price": "200"},
        (
            {"deleted_at": None, "price": {"$gte": Decimal(100), "$lte": Decimal(200)}},
            [("_id", 1)],
            0,
        ),
    ),
    ("offset=5000", {"offset": "5000"}, ({"deleted_at": None}, [("_id", 1)], 5000)),
]
#: Sorts whose second page (via ``next_cursor``) is timed too.
CURSOR_SORTS = ["_id", "price", "-price", "created_at", "-created_at"]


def catalog_rows(total: int) -> list[dict[str, Any]]:
    """``total`` import rows: the demo catalog repeated, names ``(n)``, SKUs ``-n``, prices moved -8..+8 %."""
    demo = [json.loads(line) for line in DEMO_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = []
    for i in range(total):
        row = dict(demo[i % len(demo)])
        copy = i // len(demo)
        if copy:
            row["name"] = f"{row['name']} ({copy + 1})"
            row["sku"] = f"{row['sku']}-{copy + 1}"
            factor = Decimal(100 + (copy % 17) - 8) / 100
            price = (Decimal(str(row["price"])) * factor).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
            row["price"] = float(max(price, Decimal("0.01")))
        rows.append(row)
    return rows


def to_decimal128_filter(value: Any) -> Any:
    """Decimal values of a raw filter as ``Decimal128`` (the stored type of ``price``)."""
    from bson import Decimal128

    if isinstance(value, Decimal):
        return Decimal128(value)
    if isinstance(value, dict):
        return {k: to_decimal128_filter(v) for k, v in value.items()}
    return value


async def timed_get(http: httpx.AsyncClient, params: dict[str, str]) -> tuple[float, httpx.Response]:
    """``GET /products`` with ``params``: ``(seconds, response)``."""
    start = time.perf_counter()
    response = await http.get("/products", params=params)
    return time.perf_counter() - start, response


async def bump(mongo: AsyncMongoClient[dict[str, Any]]) -> None:
    """A catalog write's effect on the page cache: the catalog version bump (``catalog_changed``)."""
    await catalog_meta.bump_catalog_version(mongo[DB])


def mark(seconds: float, target: float) -> str:
    """``ok`` when ``seconds`` is under ``target``, else ``SLOW``."""
    return "ok" if seconds < target else "SLOW"


async def warm_time(http: httpx.AsyncClient, params: dict[str, str], first: httpx.Response, reads: int) -> float:
    """The slowest of ``reads`` repeats of a request already answered once (``first``): each must be the same page."""
    slowest = 0.0
    for _ in range(reads):
        seconds, again = await timed_get(http, params)
        assert again.content == first.content or first.status_code != 200
        slowest = max(slowest, seconds)
    return slowest


async def measure_api(
    base_url: str, mongo: AsyncMongoClient[dict[str, Any]], *, warm_reads: int
) -> tuple[list[tuple[str, float, float, int]], dict[str, float]]:
    """Cold and warm (slowest of ``warm_reads``) time of every variant and cursor page through uvicorn, and the single-flight pair (step 4, 6)."""
    rows: list[tuple[str, float, float, int]] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as http:
        for label, params, _raw in VARIANTS:
            cold, response = await timed_get(http, params)
            warm = await warm_time(http, params, response, warm_reads)
            rows.append((label, cold, warm, response.status_code))
            print(f"  {label}: {response.status_code} cold {cold:.3f} s, warm {warm:.4f} s", file=sys.stderr)
        for sort in CURSOR_SORTS:
            first = await http.get("/products", params={"sort": sort})
            if first.status_code != 200:
                rows.append((f"sort={sort} page 2 (cursor)", float("nan"), float("nan"), first.status_code))
                continue
            cursor = first.json()["page"]["next_cursor"]
            params = {"sort": sort, "cursor": cursor}
            cold, response = await timed_get(http, params)
            warm = await warm_time(http, params, response, warm_reads)
            rows.append((f"sort={sort} page 2 (cursor)", cold, warm, response.status_code))
        # single-flight: one request after a write, then 16 identical concurrent ones after another write
        flight: dict[str, float] = {}
        params = {"offset": "5000", "limit": "20"}
        await bump(mongo)
        flight["one"], _ = await timed_get(http, params)
        await bump(mongo)
        start = time.perf_counter()
        results = await asyncio.gather(*(http.get("/products", params=params) for _ in range(16)))
        flight["sixteen"] = time.perf_counter() - start
        assert all(r.status_code == 200 for r in results)
    return rows, flight


async def measure_raw(mongo: AsyncMongoClient[dict[str, Any]], *, skip_sorts: bool) -> dict[str, float]:
    """Seconds of each variant's naive raw query on the imported catalog (step 5), by label."""
    coll = mongo[DB]["products"]
    out: dict[str, float] = {}
    for label, _params, (query, sort, skip) in VARIANTS:
        if skip_sorts and "price" in label and "sort" in label:
            continue
        start = time.perf_counter()
        await (
            coll.find(to_decimal128_filter(query), repository.LIST_PROJECTION).sort(sort).skip(skip).limit(11).to_list()
        )
        out[label] = time.perf_counter() - start
    # money: the same naive sorts on the int64 twin of the price (no windows either)
    for label, direction in (("sort=price", 1), ("sort=-price", -1)):
        start = time.perf_counter()
        await (
            coll.find({"deleted_at": None}, repository.LIST_PROJECTION)
            .sort([("price_cents", direction), ("_id", direction)])
            .limit(11)
            .to_list()
        )
        out[f"{label} int64"] = time.perf_counter() - start
    return out


#: The raw-driver writes of step 2: label → (catalog and audit indexes created, audit entries written).
RAW_WRITES: list[tuple[str, bool, bool]] = [
    ("raw PyMongo `insert_many` of the same product documents, no secondary index", False, False),
    ("raw PyMongo `insert_many` of the same product documents, the catalog's indexes", True, False),
    ("raw PyMongo `insert_many` of the products and their audit entries (what the importer writes)", True, True),
]


def product_documents(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` as the catalog stores them (``products.repository.new_product_document``), ``_id`` set."""
    now = datetime.now(UTC)
    return [
        {"_id": ObjectId(), **repository.new_product_document(ProductCreate.model_validate(r), now=now)} for r in rows
    ]


def run_importer(uri: str, catalog: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    """``python -m backend_app import-products catalog`` into ``DB`` at ``uri``: (seconds from start to exit, result)."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_", "DATABASE_URL", "CACHE_"))},
        "MONGODB_URI": uri,
        "MONGODB_DB": DB,
        "APP_ENV": "test",
    }
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "backend_app", "import-products", str(catalog)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    return time.perf_counter() - start, done


async def raw_insert(uri: str, rows: list[dict[str, Any]], *, indexes: bool, audited: bool) -> float:
    """Seconds of PyMongo ``insert_many`` (1,000 per call) of ``rows`` as stored on the server at ``uri`` (step 2).

    With ``indexes``, the catalog's and the audit trail's indexes are created
    first; with ``audited``, each call of products is followed by one of their
    ``product.create`` audit entries, as the importer writes them.
    """
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    try:
        db = mongo[DB]
        if indexes:
            await indexes.ensure_indexes(db)
            await audit_repository.ensure_indexes(db)
        documents = product_documents(rows)
        entries = (
            [product_audit_entry("cli:import-products", "product.create", str(d["_id"]), None, d) for d in documents]
            if audited
            else []
        )
        start = time.perf_counter()
        for i in range(0, len(documents), 1000):
            await db["products"].insert_many(documents[i : i + 1000], ordered=False)
            if entries:
                await db[audit_repository.COLLECTION].insert_many(entries[i : i + 1000], ordered=True)
        return time.perf_counter() - start
    finally:
        await mongo.close()


def commit() -> str:
    """The short hash of the checked-out commit (``unknown`` outside git)."""
    try:
        return subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def embedded(tmp: str, name: str) -> EmbeddedMongo:
    """A fresh embedded server with ``make run``'s flags, its storage and log under ``tmp/name``."""
    return EmbeddedMongo(storage_path=os.path.join(tmp, name, "db"), log_path=os.path.join(tmp, f"{name}.log"))


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=20_000)
    parser.add_argument("--skip-raw-sorts", action="store_true", help="skip the slow raw Decimal128 sorts")
    parser.add_argument("--warm-reads", type=int, default=5, help="warm repeats per page; the slowest is reported")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="catalog-scale-") as tmp:
        catalog = Path(tmp) / "catalog.jsonl"
        rows = catalog_rows(args.products)
        catalog.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        raw_writes: list[tuple[str, float]] = []
        for n, (label, indexes, audited) in enumerate(RAW_WRITES):
            with embedded(tmp, f"raw{n}") as raw_server:
                seconds = await raw_insert(raw_server.uri, rows, indexes=indexes, audited=audited)
            raw_writes.append((label, seconds))
            print(f"  {label}: {seconds:.2f} s", file=sys.stderr)
        server = embedded(tmp, "bench")
        flags = " ".join(server.command()[3:])
        with server:
            mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(server.uri, tz_aware=True)
            import_s, done = run_importer(server.uri, catalog)
            print(f"  import: {import_s:.2f} s; {done.stdout.strip()[:300]}", file=sys.stderr)
            report = next((line for line in done.stdout.splitlines() if "rows read" in line), done.stderr[-500:])
            try:
                api = ApiServer(
                    env={"MONGODB_URI": server.uri, "MONGODB_DB": DB, "RATE_LIMIT_ENABLED": "false"},
                    log_path=os.path.join(tmp, "uvicorn.log"),
                )
                with api:
                    api_rows, flight = await measure_api(api.base_url, mongo, warm_reads=args.warm_reads)
                raw = await measure_raw(mongo, skip_sorts=args.skip_raw_sorts)
            finally:
                await mongo.close()
    print(
        f"# catalog_scale: {args.products} products; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"commit {commit()}; {platform.machine()} {os.cpu_count()} cores (shared); Python {platform.python_version()}"
    )
    print(f"# SecantusDB flags (every server of the run, each on fresh storage): {flags}")
    print()
    print("| write | seconds | target |")
    print("|---|---:|---|")
    print(
        f"| `import-products` CLI, {args.products} rows (process start to exit) | {import_s:.2f} | ≤ {IMPORT_TARGET_S:.0f} s: {mark(import_s, IMPORT_TARGET_S)} |"
    )
    for label, seconds in raw_writes:
        print(f"| {label} | {seconds:.2f} | |")
    print(f"\nimporter report: {report}\n")
    print(
        f"| GET /products | status | cold (s) | warm, slowest of {args.warm_reads} (s) | raw PyMongo, naive query (s) | cold < 2.5 s / < 1 s, warm < 50 ms |"
    )
    print("|---|---:|---:|---:|---:|---|")
    failures = 0
    for label, cold, warm, status in api_rows:
        raw_s_label = raw.get(label)
        verdict = f"{mark(cold, COLD_TARGET_S)} / {mark(cold, COLD_STRETCH_S)}, {mark(warm, WARM_TARGET_S)}"
        failures += status != 200 or cold >= COLD_TARGET_S or warm >= WARM_TARGET_S
        raw_text = f"{raw_s_label:.3f}" if raw_s_label is not None else "–"
        print(f"| {label} | {status} | {cold:.3f} | {warm:.4f} | {raw_text} | {verdict} |")
    if "sort=price" in raw:
        print("\nMoney: the naive raw sort of all live products, by type of the sort key (same server, same run)")
        print("\n| raw PyMongo, no windows | Decimal128 `price` (s) | int64 `price_cents` (s) |")
        print("|---|---:|---:|")
        for label in ("sort=price", "sort=-price"):
            print(f"| {label} | {raw[label]:.3f} | {raw[label + ' int64']:.3f} |")
    ratio = flight["sixteen"] / flight["one"]
    print(
        f"\nsingle-flight (offset=5000, limit=20, right after a write): 1 request {flight['one']:.3f} s; "
        f"16 identical concurrent {flight['sixteen']:.3f} s; ratio {ratio:.2f} (target ≤ 2: {mark(ratio, 2.0001)})"
    )
    failures += ratio > 2 or import_s > IMPORT_TARGET_S
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
