"""Benchmark: catalog pages by cursor and by offset, and order throughput.

Starts an embedded SecantusDB and the API (uvicorn, a separate process, over
TCP), seeds a catalog straight into the database, then measures:

1. ``GET /products`` page 1 and page 1000 (limit 10: offset 9,990) by offset
   and by cursor (page 1000's cursor is the ``next_cursor`` of page 999,
   fetched by offset), for ``sort=_id`` and ``sort=price``, and the mean cost
   of walking pages 2..21 by ``next_cursor``;
2. ``POST /orders`` per second with N concurrent clients (each its own user).

Run from the repository root::

    .venv/bin/python benchmarks/bench_commerce.py               # 20,000 products, 8 clients, 15 s
    .venv/bin/python benchmarks/bench_commerce.py --products 10000 --order-seconds 5 --repeat 3   # quicker

Figures are medians of ``--repeat`` requests (milliseconds, client side,
including HTTP over loopback). The server's ``MONGODB_MAX_TIME_MS`` is raised
to 120 s for the run, because the embedded server scans and sorts every
matching document (docs/contract.md §9).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
from pymongo import AsyncMongoClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend_app.core.security import _hash_sync
from backend_app.devtools.api_server import ApiServer
from backend_app.devtools.embedded_db import EmbeddedMongo
from backend_app.devtools.seed import seed_user
from backend_app.main import INDEX_INSTALLERS
from backend_app.products.repository import COLLECTION as PRODUCTS
from backend_app.products.repository import new_product_document
from backend_app.products.schemas import ProductCreate
from config import Settings

DB_NAME = "bench"
PAGE_SIZE = 10
DEEP_PAGE = 1000


async def seed_catalog(db, count: int) -> None:
    """Insert ``count`` products in batches, one second of ``created_at`` apart per batch."""
    rng = random.Random(1)
    start = datetime.now(UTC) - timedelta(days=1)
    batch = []
    for i in range(count):
        product = ProductCreate(
            name=f"Product {i:05d} {rng.choice(['shirt', 'mug', 'lamp', 'sock', 'pen'])}",
            price=Decimal(rng.randint(100, 50_000)) / 100,
            category=rng.choice(["tops", "home", "office"]),
            sizes=[{"size": "s", "quantity": 1_000_000}, {"size": "m", "quantity": 1_000_000}],
        )
        batch.append(new_product_document(product, now=start + timedelta(milliseconds=i)))
        if len(batch) == 1000:
            await db[PRODUCTS].insert_many(batch)
            batch = []
    if batch:
        await db[PRODUCTS].insert_many(batch)


async def timed(client: httpx.AsyncClient, url: str, params: dict, repeat: int) -> tuple[float, dict]:
    """Median latency in ms of ``repeat`` GETs, and the last body."""
    samples = []
    body: dict = {}
    for _ in range(repeat):
        started = time.perf_counter()
        response = await client.get(url, params=params)
        samples.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        body = response.json()
    return statistics.median(samples), body


async def pages(client: httpx.AsyncClient, sort: str, repeat: int, walk: int) -> list[str]:
    """Page 1 and page 1000 by offset and by cursor; the page-1000 cursor is page 999's ``next_cursor``."""
    base = {"limit": PAGE_SIZE, "sort": sort}
    deep_offset = (DEEP_PAGE - 1) * PAGE_SIZE
    first_ms, first = await timed(client, "/products", base, repeat)
    deep_offset_ms, deep = await timed(client, "/products", {**base, "offset": deep_offset}, repeat)
    before_deep = await client.get("/products", params={**base, "offset": deep_offset - PAGE_SIZE})
    before_deep.raise_for_status()
    deep_cursor = before_deep.json()["page"]["next_cursor"]
    deep_cursor_ms, deep_by_cursor = await timed(client, "/products", {**base, "cursor": deep_cursor}, repeat)
    same = [p["id"] for p in deep_by_cursor["data"]] == [p["id"] for p in deep["data"]]
    cursor = first["page"]["next_cursor"]
    walk_started = time.perf_counter()
    for _ in range(walk):
        response = await client.get("/products", params={**base, "cursor": cursor})
        response.raise_for_status()
        cursor = response.json()["page"]["next_cursor"]
    walk_ms = (time.perf_counter() - walk_started) * 1000 / max(walk, 1)
    return [
        f"sort={sort:<6} page 1    offset=0:              {first_ms:9.1f} ms",
        f"sort={sort:<6} page {DEEP_PAGE} offset={deep_offset}:           {deep_offset_ms:9.1f} ms",
        (
            f"sort={sort:<6} page {DEEP_PAGE} by cursor:             {deep_cursor_ms:9.1f} ms"
            f"   (same records as by offset: {same})"
        ),
        f"sort={sort:<6} pages 2..{walk + 1} walked by next_cursor: {walk_ms:9.1f} ms/page",
    ]


async def order_load(base_url: str, tokens: list[str], product_ids: list[str], seconds: float) -> list[str]:
    latencies: list[float] = []
    failures = 0
    deadline = time.perf_counter() + seconds

    async def shopper(token: str, seed: int) -> None:
        nonlocal failures
        rng = random.Random(seed)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as client:
            while time.perf_counter() < deadline:
                items = [{"productId": pid, "qty": rng.randint(1, 3)} for pid in rng.sample(product_ids, 2)]
                started = time.perf_counter()
                response = await client.post("/orders", json={"items": items})
                if response.status_code == 201:
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    failures += 1

    started = time.perf_counter()
    await asyncio.gather(*[shopper(token, i) for i, token in enumerate(tokens)])
    elapsed = time.perf_counter() - started
    latencies.sort()
    p95 = latencies[int(len(latencies) * 0.95) - 1] if latencies else 0.0
    summary = (
        f"orders: {len(latencies)} placed by {len(tokens)} concurrent clients in {elapsed:.1f} s = "
        f"{len(latencies) / elapsed:.1f} orders/s (2 lines each; p50 {statistics.median(latencies):.1f} ms, "
        f"p95 {p95:.1f} ms; {failures} failed)"
    )
    return [summary]


async def main(args: argparse.Namespace, uri: str) -> None:
    secret = secrets.token_urlsafe(48)
    settings = Settings(app_env="development", mongodb_uri=uri, mongodb_db=DB_NAME, jwt_secret=secret)
    mongo: AsyncMongoClient = AsyncMongoClient(uri, tz_aware=True)
    db = mongo[DB_NAME]
    for install in INDEX_INSTALLERS:
        await install(db)
    started = time.perf_counter()
    await seed_catalog(db, args.products)
    print(f"seeded {args.products} products in {time.perf_counter() - started:.1f} s", flush=True)
    password_hash = _hash_sync(secrets.token_urlsafe(16))
    tokens = []
    for i in range(args.clients):
        headers = await seed_user(db, settings, username=f"shopper_{i}", role="user", password_hash=password_hash)
        tokens.append(headers["Authorization"].removeprefix("Bearer "))
    product_ids = [str(doc["_id"]) async for doc in db[PRODUCTS].find({}, {"_id": 1}).limit(50)]

    env = {
        "MONGODB_URI": uri,
        "MONGODB_DB": DB_NAME,
        "JWT_SECRET": secret,
        "RATE_LIMIT_ENABLED": "false",
        # Measure the database paths: with the page cache on, repeated pages would be cache hits.
        "CACHE_ENABLED": "false",
        # The embedded server scans and sorts every matching document (docs/contract.md §9): a price-sorted
        # first page of 20,000 products takes seconds, beyond the default 2 s limit.
        "MONGODB_MAX_TIME_MS": "120000",
    }
    try:
        with ApiServer(env=env) as server:
            base_url = server.base_url
            async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
                if args.pages:
                    print(
                        f"catalog: {args.products} live products, limit={PAGE_SIZE}, median of {args.repeat} requests"
                    )
                for sort in ("_id", "price") if args.pages else ():
                    for line in await pages(client, sort, args.repeat, args.walk):
                        print(line, flush=True)
            for line in await order_load(base_url, tokens, product_ids, args.order_seconds):
                print(line, flush=True)
    finally:
        await mongo.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--order-seconds", type=float, default=15.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--walk", type=int, default=20, help="pages to walk by cursor from page 1")
    parser.add_argument("--pages", action=argparse.BooleanOptionalAction, default=True, help="measure catalog pages")
    arguments = parser.parse_args()
    if arguments.products < DEEP_PAGE * PAGE_SIZE:
        parser.error(f"--products must be at least {DEEP_PAGE * PAGE_SIZE} to have a page {DEEP_PAGE}")
    with EmbeddedMongo(storage_path=":memory:", oplog_max_entries=20_000) as embedded:
        asyncio.run(main(arguments, embedded.uri))
