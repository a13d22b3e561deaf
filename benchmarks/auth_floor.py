"""Benchmark: authenticated requests with and without the session cache, and order history pages at any length.

Starts its own SecantusDB exactly as the app's embedded default does
(``EmbeddedMongo``: on-disk storage in a temporary directory,
``--sync-on-commit``) and two uvicorn processes of THIS checkout on it, one
with ``SESSION_CACHE_ENABLED=true`` and one with ``false`` (the previous
design: user and session read from the database on every request), then
measures in one run, 16 concurrent clients, ``--seconds`` per row:

1. ``POST /orders`` (one line), beside raw ``insert_one`` of an order-shaped
   document with the same write concern (majority + j) measured just before;
2. ``GET /orders/{user}?limit=10``, beside the raw driver's aggregation of the
   same page (``$match`` owner, ``$sort``, ``$limit``, the ``$lookup`` of
   product details, regrouped with ``$group``) measured just before;
3. ``GET /auth/me``.

Each client rotates through :data:`SESSIONS_PER_CLIENT` shoppers (users with
live logins; 64 sessions in all), as shoppers' apps do: many requests per
login. ``ORDER_MAX_PENDING`` is raised so that the same shoppers can keep
placing orders.

Then, on the cache-on process, order histories of 10, 1,000 and 10,000
orders (seeded straight into ``orders``, 30 minutes apart): the first page
(``limit=10``) and a cursor page (``limit=10`` after the first 5), each the
median of ``--repeat`` sequential requests after one warm-up, and the ratio
to the 10-order figure; and the ``heavy`` listing (``GET /orders/{user}``:
the page with each line's product details joined by ``$lookup``) at 16
clients beside the raw driver's ``$lookup`` aggregation of the same page,
both as usually written (regrouped by ``$group``) and as the app sends it
(one row per line, regrouped by the client).

The designs alternate in :data:`ROUNDS` slices of each row, so load changes
on the shared machine hit both alike.

Run from the repository root::

    .venv/bin/python benchmarks/auth_floor.py                 # 5 s per row, ~4 min
    .venv/bin/python benchmarks/auth_floor.py --seconds 3     # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from bson import ObjectId
from pymongo import AsyncMongoClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend_app.core.security import _hash_sync
from backend_app.devtools.api_server import ApiServer
from backend_app.devtools.embedded_db import EmbeddedMongo
from backend_app.devtools.seed import seed_order_history, seed_user
from backend_app.orders.repository import COLLECTION as ORDERS
from backend_app.orders.repository import _regroup, _with_product_details
from benchmarks.order_contention import RawInserts, Result, api_env, seed, timed
from config import Settings

DB_NAME = "auth_floor"
CLIENTS = 16
HISTORIES = (10, 1_000, 10_000)
#: Alternating slices per design in the side-by-side rows.
ROUNDS = 3
#: Logins each client rotates through.
SESSIONS_PER_CLIENT = 4


def grouped_pipeline(user_id: str) -> list[dict]:
    """The raw driver's aggregation of a user's first page of 10 (11 fetched, as the API does), written
    the usual way: unwind, ``$lookup`` with a sub-pipeline projecting the name, regroup with ``$group``
    (the app's own pipeline until the regrouping moved out of the database)."""
    return [
        {"$match": {"userId": user_id}},
        {"$sort": {"_id": 1}},
        {"$limit": 11},
        {"$unwind": {"path": "$items", "includeArrayIndex": "line"}},
        {
            "$lookup": {
                "from": "products",
                "localField": "items.productId",
                "foreignField": "_id",
                "pipeline": [{"$project": {"name": 1}}],
                "as": "joined",
            }
        },
        {
            "$set": {
                "items.productDetails": {
                    "$ifNull": [{"$arrayElemAt": ["$joined", 0]}, {"_id": "$items.productId", "name": "$items.name"}]
                }
            }
        },
        {"$sort": {"_id": 1, "line": 1}},
        {
            "$group": {
                "_id": "$_id",
                "userId": {"$first": "$userId"},
                "status": {"$first": "$status"},
                "total": {"$first": "$total"},
                "created_at": {"$first": "$created_at"},
                "updated_at": {"$first": "$updated_at"},
                "items": {"$push": "$items"},
            }
        },
        {"$sort": {"_id": 1}},
    ]


def app_pipeline(user_id: str) -> list[dict]:
    """The app's own aggregation of the same page (one row per line; regrouped by the caller)."""
    return _with_product_details({"userId": user_id}, sort={"_id": 1}, skip=0, limit=11)


class RawPages:
    """Raw ``aggregate`` of a page pipeline for rotating users, at N concurrent tasks."""

    def __init__(self, uri: str, seconds: float, pipeline=grouped_pipeline) -> None:
        self.client: AsyncMongoClient = AsyncMongoClient(uri, tz_aware=True)
        self.coll = self.client[DB_NAME][ORDERS]
        self.seconds = seconds
        self.pipeline = pipeline

    async def __call__(self, users: list[str]) -> Result:
        turn = [0] * CLIENTS

        async def page(i: int) -> bool:
            user = users[(i + CLIENTS * turn[i]) % len(users)]
            turn[i] += 1
            rows = await (await self.coll.aggregate(self.pipeline(user))).to_list(length=None)
            if self.pipeline is app_pipeline:
                rows = _regroup(rows)
            return rows is not None

        return await timed(CLIENTS, self.seconds, page)

    async def close(self) -> None:
        await self.client.close()


def http_rows(base_url: str, headers: list[dict[str, str]], users: list[str], seconds: float):
    """Operations for :func:`timed`: one client per task, rotating buyers."""
    http = [httpx.AsyncClient(base_url=base_url, timeout=120) for _ in range(CLIENTS)]
    turn = [0] * CLIENTS

    def buyer(i: int) -> int:
        index = (i + CLIENTS * turn[i]) % len(headers)
        turn[i] += 1
        return index

    def op(kind: str, product_id: str):
        async def run(i: int) -> bool:
            b = buyer(i)
            if kind == "orders":
                r = await http[i].post(
                    "/orders", json={"items": [{"productId": product_id, "qty": 1}]}, headers=headers[b]
                )
                ok = r.status_code == 201
            elif kind == "list":
                r = await http[i].get(f"/orders/{users[b]}", params={"limit": 10}, headers=headers[b])
                ok = r.status_code == 200
            else:
                r = await http[i].get("/auth/me", headers=headers[b])
                ok = r.status_code == 200
            if not ok:
                print(f"  {kind}: {r.status_code} {r.text[:200]}", file=sys.stderr)
            return ok

        return run

    async def close() -> None:
        for client in http:
            await client.aclose()

    return op, close


def merged(results: list[Result]) -> Result:
    """One result from consecutive slices (rates add up over the summed time)."""
    return Result(
        [lat for r in results for lat in r.latencies], sum(r.elapsed for r in results), sum(r.failures for r in results)
    )


def line(name: str, design: str, r: Result, reference: Result | None, off: Result | None) -> str:
    ref = f"{reference.rate:.1f} | {r.rate / reference.rate:.2f}" if reference else "– | –"
    vs_off = f"{r.rate / off.rate:.2f}" if off else "–"
    return (
        f"| {name} | {design} | {r.rate:.1f} | {r.percentile(0.5):.1f} | {r.percentile(0.99):.1f} | {ref} | "
        f"{vs_off} | {r.failures} |"
    )


async def cache_rows(
    on: ApiServer, off: ApiServer, uri: str, headers, users, product_id: str, seconds: float
) -> list[str]:
    raw_inserts, raw_pages = RawInserts(uri, seconds), RawPages(uri, seconds)
    await raw_inserts(1)
    out = [
        "**Session cache: cache on vs off (the previous design), 16 clients**",
        "",
        "| request | design | req/s | p50 ms | p99 ms | reference/s | × reference | × cache off | failed |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    try:
        servers = {"cache on": on, "cache off": off}
        ops = {name: http_rows(s.base_url, headers, users, seconds) for name, s in servers.items()}
        for op, _ in ops.values():  # warm-up: connections, caches, list shapes
            for i in range(CLIENTS):
                await op("me", product_id)(i)
                await op("list", product_id)(i)
        for label, kind, reference in (
            ("GET /auth/me", "me", None),
            ("GET /orders/{user}?limit=10", "list", lambda: raw_pages(users)),
            ("POST /orders", "orders", lambda: raw_inserts(CLIENTS)),
        ):
            # designs alternate in ROUNDS slices, so a load change on the shared machine hits both alike
            parts: dict[str, list[Result]] = {"cache off": [], "cache on": []}
            refs: list[Result] = []
            for _ in range(ROUNDS):
                if reference:
                    refs.append(await reference())
                for design in ("cache off", "cache on"):
                    parts[design].append(await timed(CLIENTS, seconds / ROUNDS, ops[design][0](kind, product_id)))
            print(f"  measured {label}", file=sys.stderr, flush=True)
            ref = merged(refs) if refs else None
            results = {design: (merged(rs), ref) for design, rs in parts.items()}
            off_result = results["cache off"][0]
            out.append(line(label, "cache off", *results["cache off"], None))
            out.append(line(label, "cache on", *results["cache on"], off_result))
        for _, close in ops.values():
            await close()
    finally:
        await raw_inserts.close()
        await raw_pages.close()
    return out


async def median_ms(client: httpx.AsyncClient, url: str, params: dict, headers: dict, repeat: int) -> float:
    await client.get(url, params=params, headers=headers)  # warm-up (and this process learns the list's shape)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = await client.get(url, params=params, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
    return statistics.median(times)


async def history_rows(
    server: ApiServer, uri: str, hist: dict[int, dict[str, str]], seconds: float, repeat: int
) -> list[str]:
    out = [
        (
            "**Order history pages (cache on), one client, median of "
            f"{repeat}; ratio to the 10-order history in this run**"
        ),
        "",
        "| orders in history | first page ms | × 10 orders | cursor page ms | × 10 orders |",
        "|---:|---:|---:|---:|---:|",
    ]
    figures: dict[int, tuple[float, float]] = {}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as client:
        for size, headers in hist.items():
            url = f"/orders/hist_{size}"
            first = await median_ms(client, url, {"limit": 10}, headers, repeat)
            cursor = (await client.get(url, params={"limit": 5}, headers=headers)).json()["page"]["next_cursor"]
            after = await median_ms(client, url, {"limit": 10, "cursor": cursor}, headers, repeat)
            figures[size] = (first, after)
    base_first, base_after = figures[HISTORIES[0]]
    for size, (first, after) in figures.items():
        out.append(f"| {size:,} | {first:.1f} | {first / base_first:.2f} | {after:.1f} | {after / base_after:.2f} |")
    out += [
        "",
        (
            "**Heavy listing: GET /orders/{user}?limit=10 (product details joined), 16 clients, vs the raw "
            "driver's $lookup aggregation of the same page measured just before**"
        ),
        "",
        (
            "| orders in history | API req/s | p50 ms | raw grouped aggregate/s | raw p50 ms | × raw | "
            "raw app pipeline/s | × raw app pipeline |"
        ),
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    raw, raw_app = RawPages(uri, seconds), RawPages(uri, seconds, app_pipeline)
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as client:
            for size, headers in hist.items():
                reference = await raw([f"hist_{size}"])
                same_pipeline = await raw_app([f"hist_{size}"])

                async def page(_i: int, size: int = size, headers: dict = headers) -> bool:
                    r = await client.get(f"/orders/hist_{size}", params={"limit": 10}, headers=headers)
                    return r.status_code == 200

                api = await timed(CLIENTS, seconds, page)
                out.append(
                    f"| {size:,} | {api.rate:.1f} | {api.percentile(0.5):.1f} | {reference.rate:.1f} | "
                    f"{reference.percentile(0.5):.1f} | {api.rate / reference.rate:.2f} | {same_pipeline.rate:.1f} | "
                    f"{api.rate / same_pipeline.rate:.2f} |"
                )
                print(f"  measured heavy {size}", file=sys.stderr, flush=True)
    finally:
        await raw.close()
        await raw_app.close()
    return out


async def main(args: argparse.Namespace) -> None:
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    print(
        f"# auth_floor: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; commit {commit}; {platform.machine()} "
        f"{os.cpu_count()} cores (shared); Python {platform.python_version()}; {args.seconds:.0f} s per row"
    )
    with (
        tempfile.TemporaryDirectory(prefix="auth-floor-") as data_dir,
        EmbeddedMongo(storage_path=data_dir) as embedded,
    ):
        print(f"# SecantusDB flags: {' '.join(embedded.command()[3:])}")
        secret = secrets.token_urlsafe(48)
        settings = Settings(app_env="test", mongodb_uri=embedded.uri, mongodb_db=DB_NAME, jwt_secret=secret)
        mongo: AsyncMongoClient = AsyncMongoClient(embedded.uri, tz_aware=True)
        try:
            db = mongo[DB_NAME]
            product_ids, headers = await seed(db, settings, CLIENTS)
            shoppers = CLIENTS * SESSIONS_PER_CLIENT
            users = [f"shopper_{i}" for i in range(shoppers)]
            headers = headers[:shoppers]
            started = time.perf_counter()
            hist: dict[int, dict[str, str]] = {}
            password_hash = _hash_sync(secrets.token_urlsafe(16))
            for size in HISTORIES:
                name = f"hist_{size}"
                hist[size] = await seed_user(db, settings, username=name, role="user", password_hash=password_hash)
                await seed_order_history(db, user_id=name, count=size, product_id=ObjectId(product_ids[1]))
            print(f"# seeded {sum(HISTORIES):,} history orders in {time.perf_counter() - started:.1f} s")
        finally:
            await mongo.close()
        env = api_env(embedded.uri, DB_NAME, secret, MONGODB_MAX_TIME_MS="120000", ORDER_MAX_PENDING="1000000")
        with (
            ApiServer(env={**env, "SESSION_CACHE_ENABLED": "true"}) as on,
            ApiServer(env={**env, "SESSION_CACHE_ENABLED": "false"}) as off,
        ):
            tables = await cache_rows(on, off, embedded.uri, headers, users, product_ids[0], args.seconds)
            tables += [""] + await history_rows(on, embedded.uri, hist, args.seconds, args.repeat)
    print("\n".join(tables))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each timed row")
    parser.add_argument("--repeat", type=int, default=10, help="requests per median of the history pages")
    asyncio.run(main(parser.parse_args()))
