"""Benchmark: ``POST /orders`` under contention, beside the raw driver's ``insert_one``.

Starts its own SecantusDB exactly as the app's embedded default does
(``EmbeddedMongo``: on-disk storage in a temporary directory, ``--sync-on-commit``,
the same oplog bound) and its own uvicorn (``ApiServer``, one worker), seeds
users (one per client, with a live login) and products through
``backend_app.devtools``, then measures, in one run against that one server:

- ``raw insert_one``: PyMongo ``insert_one`` of an order-shaped document
  (write concern majority + j, as the app's order writes) at 1, 4, 16
  concurrent clients: the reference;
- ``hot``: one-line orders (qty 1) of ONE product at 1, 4, 16 clients;
- ``distinct``: one-line orders, client *i* buying product *i*;
- ``3-line``: three-line orders at 16 clients, client *i* buying products
  *i*, *i*+1, *i*+2 (mod 16), so neighbours share products.

Columns: orders/s (successful ``201`` only), p50 and p99 latency (client side,
HTTP over loopback), and the ratio to raw ``insert_one`` at the same number of
clients, measured just before the row. Targets: hot at 16 ≥ 0.25×
raw with p99 ≤ 5× p50; distinct at 16 ≥ 0.3× raw. Each client places its
orders as a rotating set of :data:`BUYERS_PER_CLIENT` buyers (users with live
logins), so the default pending-order cap stays on, as in a real flash sale
with many buyers.

``--app-dir DIR`` serves another checkout's ``backend_app`` (e.g. an earlier
commit, from ``git archive``) against the same database, to compare
designs in one run; ``--no-sync-reference`` also measures raw ``insert_one`` on
a second server started without ``--sync-on-commit``.

Run from the repository root::

    .venv/bin/python benchmarks/order_contention.py                 # 6 s per row
    .venv/bin/python benchmarks/order_contention.py --seconds 3     # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
from bson import Decimal128, ObjectId
from pymongo import AsyncMongoClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend_app.core.db import DURABLE
from backend_app.core.security import _hash_sync
from backend_app.devtools.api_server import ApiServer
from backend_app.devtools.embedded_db import EmbeddedMongo
from backend_app.devtools.seed import seed_user
from backend_app.main import INDEX_INSTALLERS
from backend_app.products.repository import COLLECTION as PRODUCTS
from backend_app.products.repository import new_product_document
from backend_app.products.schemas import ProductCreate
from config import Settings

DB_NAME = "order_contention"
CLIENT_COUNTS = (1, 4, 16)
PRODUCTS_COUNT = 16
#: Buyers seeded per client: a flash sale has many buyers with an order or two each, and the
#: default ``ORDER_MAX_PENDING`` (10) stays on.
BUYERS_PER_CLIENT = 80
#: Stock of each size: never runs out during a run.
STOCK = 10_000_000


def order_document(product_id: ObjectId) -> dict:
    """A one-line order as the app stores it (same fields and types)."""
    now = datetime.now(UTC)
    return {
        "userId": "shopper_0",
        "status": "pending",
        "items": [
            {
                "productId": product_id,
                "name": "Product 0",
                "size": None,
                "qty": 1,
                "unit_price": Decimal128("19.99"),
                "taken": [{"size": "m", "qty": 1}],
            }
        ],
        "total": Decimal128("19.99"),
        "created_at": now,
        "updated_at": now,
    }


def api_env(uri: str, db_name: str, secret: str, **extra: str) -> dict[str, str]:
    """The benchmarked API server's environment: database, signing key, no rate limits, quiet logs."""
    return {
        "MONGODB_URI": uri,
        "MONGODB_DB": db_name,
        "JWT_SECRET": secret,
        "RATE_LIMIT_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
        **extra,
    }


class Result:
    """Completed operations and their latencies (seconds) over a timed window."""

    def __init__(self, latencies: list[float], elapsed: float, failures: int) -> None:
        self.latencies = sorted(latencies)
        self.elapsed = elapsed
        self.failures = failures

    @property
    def rate(self) -> float:
        """Successful operations per second."""
        return len(self.latencies) / self.elapsed

    def percentile(self, p: float) -> float:
        """The ``p`` quantile of latency, in ms."""
        if not self.latencies:
            return float("nan")
        return self.latencies[min(len(self.latencies) - 1, int(len(self.latencies) * p))] * 1000


async def timed(clients: int, seconds: float, operation) -> Result:
    """Run ``operation(i)`` in a loop in ``clients`` concurrent tasks for ``seconds``; True = success."""
    latencies: list[float] = []
    failures = 0
    deadline = time.perf_counter() + seconds

    async def worker(i: int) -> None:
        nonlocal failures
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            if await operation(i):
                latencies.append(time.perf_counter() - started)
            else:
                failures += 1

    started = time.perf_counter()
    await asyncio.gather(*[worker(i) for i in range(clients)])
    return Result(latencies, time.perf_counter() - started, failures)


async def seed(db, settings: Settings, clients: int) -> tuple[list[str], list[dict[str, str]]]:
    """Products with two sizes each and ``clients`` × :data:`BUYERS_PER_CLIENT` users with live logins."""
    for install in INDEX_INSTALLERS:
        await install(db)
    now = datetime.now(UTC)
    docs = [
        new_product_document(
            ProductCreate(
                name=f"Product {i}",
                price=Decimal("19.99"),
                sizes=[{"size": "m", "quantity": STOCK}, {"size": "l", "quantity": STOCK}],
            ),
            now=now,
        )
        for i in range(PRODUCTS_COUNT)
    ]
    result = await db[PRODUCTS].insert_many(docs)
    password_hash = _hash_sync(secrets.token_urlsafe(16))
    headers = [
        await seed_user(db, settings, username=f"shopper_{i}", role="user", password_hash=password_hash)
        for i in range(clients * BUYERS_PER_CLIENT)
    ]
    return [str(pid) for pid in result.inserted_ids], headers


class RawInserts:
    """Raw ``insert_one`` of the order document with the app's write concern (:data:`DURABLE`), on demand."""

    def __init__(self, uri: str, seconds: float) -> None:
        self.client: AsyncMongoClient = AsyncMongoClient(uri, tz_aware=True)
        self.coll = self.client[DB_NAME].get_collection("raw_orders", write_concern=DURABLE)
        self.seconds = seconds
        self.product_id = ObjectId()

    async def __call__(self, clients: int) -> Result:
        """Inserts per second with ``clients`` concurrent tasks for :attr:`seconds`."""

        async def insert(_i: int) -> bool:
            await self.coll.insert_one(order_document(self.product_id))
            return True

        return await timed(clients, self.seconds, insert)

    async def close(self) -> None:
        """Close the client."""
        await self.client.close()


async def order_rows(
    base_url: str, headers: list[dict[str, str]], product_ids: list[str], seconds: float, raw
) -> list[tuple[str, int, Result, Result]]:
    """The ``POST /orders`` rows: hot and distinct at each client count, then 3-line at 16.

    Each row is measured right after raw ``insert_one`` at the same client count (``raw(n)``), so
    its ratio compares two measurements taken seconds apart on the shared machine.
    """
    clients = max(CLIENT_COUNTS)
    http = [httpx.AsyncClient(base_url=base_url, timeout=120) for _ in range(clients)]
    turn = [0] * clients

    def post(lines_of):
        async def operation(i: int) -> bool:
            items = [{"productId": product_ids[p], "qty": 1} for p in lines_of(i)]
            buyer = headers[i + clients * (turn[i] % BUYERS_PER_CLIENT)]
            turn[i] += 1
            response = await http[i].post("/orders", json={"items": items}, headers=buyer)
            if response.status_code != 201:
                print(f"  {response.status_code} {response.text[:200]}", file=sys.stderr)
            return response.status_code == 201

        return operation

    scenarios = [
        ("hot, 1 line", lambda i: [0]),
        ("distinct, 1 line", lambda i: [i % PRODUCTS_COUNT]),
    ]
    rows = []
    try:
        await post(lambda i: [0])(0)  # warm-up
        for name, lines_of in scenarios:
            for n in CLIENT_COUNTS:
                reference = await raw(n)
                rows.append((name, n, await timed(n, seconds, post(lines_of)), reference))
                print(f"  measured {name} x{n}", file=sys.stderr, flush=True)
        three = post(lambda i: [i % PRODUCTS_COUNT, (i + 1) % PRODUCTS_COUNT, (i + 2) % PRODUCTS_COUNT])
        reference = await raw(16)
        rows.append(("3 lines, overlapping", 16, await timed(16, seconds, three), reference))
        print("  measured 3 lines x16", file=sys.stderr, flush=True)
    finally:
        for client in http:
            await client.aclose()
    return rows


def table(title: str, rows: list[tuple[str, int, Result, Result]]) -> list[str]:
    """Markdown table of ``rows``, each with its adjacent raw ``insert_one`` rate and the ratio to it."""
    out = [
        f"**{title}**",
        "",
        "| workload | clients | orders/s | p50 ms | p99 ms | p99/p50 | raw insert_one/s | × raw | failed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, n, r, raw in rows:
        p50, p99 = r.percentile(0.5), r.percentile(0.99)
        out.append(
            f"| {name} | {n} | {r.rate:.1f} | {p50:.1f} | {p99:.1f} | {p99 / p50:.1f} | {raw.rate:.1f} | "
            f"{r.rate / raw.rate:.2f} | {r.failures} |"
        )
    return out


async def main(args: argparse.Namespace) -> None:
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    print(
        f"date {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit}, "
        f"{platform.machine()} {os.cpu_count()} cores (shared), {args.seconds:.0f} s per row"
    )
    with (
        tempfile.TemporaryDirectory(prefix="order-contention-") as data_dir,
        EmbeddedMongo(storage_path=data_dir) as embedded,
    ):
        print(f"SecantusDB: {' '.join(embedded.command()[3:])}")
        secret = secrets.token_urlsafe(48)
        settings = Settings(app_env="test", mongodb_uri=embedded.uri, mongodb_db=DB_NAME, jwt_secret=secret)
        mongo: AsyncMongoClient = AsyncMongoClient(embedded.uri, tz_aware=True)
        try:
            product_ids, headers = await seed(mongo[DB_NAME], settings, max(CLIENT_COUNTS))
        finally:
            await mongo.close()
        env = api_env(embedded.uri, DB_NAME, secret)
        raw = RawInserts(embedded.uri, args.seconds)
        await raw(1)  # warm up the connection pool and the collection
        tables: list[str] = []
        apps = [("this checkout", None)] + ([("--app-dir " + args.app_dir, args.app_dir)] if args.app_dir else [])
        try:
            for title, app_dir in apps:
                server = ApiServer(env=env)
                if app_dir:
                    server.cwd = app_dir
                with server:
                    rows = await order_rows(server.base_url, headers, product_ids, args.seconds, raw)
                tables += [*table(f"POST /orders, {title}", rows), ""]
        finally:
            await raw.close()
    if args.no_sync_reference:
        tables.append("**raw insert_one: the same server flags with and without --sync-on-commit, side by side**")
        tables.append("")
        with (
            tempfile.TemporaryDirectory(prefix="order-contention-") as d1,
            tempfile.TemporaryDirectory(prefix="order-contention-nosync-") as d2,
            EmbeddedMongo(storage_path=d1) as durable,
            EmbeddedMongo(storage_path=d2, sync_on_commit=False) as fast,
        ):
            synced, unsynced = RawInserts(durable.uri, args.seconds), RawInserts(fast.uri, args.seconds)
            try:
                for n in CLIENT_COUNTS:
                    with_sync, without = await synced(n), await unsynced(n)
                    tables.append(
                        f"- {n} clients: with --sync-on-commit {with_sync.rate:.1f}/s (p50 {with_sync.percentile(0.5):.1f} ms), "
                        f"without {without.rate:.1f}/s (p50 {without.percentile(0.5):.1f} ms)"
                    )
            finally:
                await synced.close()
                await unsynced.close()
    print("\n".join(tables))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6.0, help="duration of each row")
    parser.add_argument("--app-dir", default=None, help="also serve this checkout's backend_app (e.g. the old design)")
    parser.add_argument(
        "--no-sync-reference", action="store_true", help="also measure raw insert_one without --sync-on-commit"
    )
    asyncio.run(main(parser.parse_args()))
