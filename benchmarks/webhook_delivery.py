"""Benchmark: what webhooks cost ``POST /orders``, how soon a committed event is attempted, and delivery rate.

One run, one on-disk SecantusDB started exactly as the app's embedded default
(``EmbeddedMongo``: ``--sync-on-commit``, the same oplog bound), one uvicorn
worker (``ApiServer``) with its dispatcher, and a webhook receiver on loopback
in this process (``backend_app.devtools.webhook_receiver``, answering 200):

1. ``POST /orders`` at 16 clients (one-line orders of distinct products,
   rotating buyers so the pending cap stays on), in alternating rounds:
   **none** (no endpoint: events are still recorded and fanned out to nobody)
   and **subscribed** (one endpoint subscribed to ``*``). The ratio of the two
   rates is the cost of delivering every order event.
2. Commit → first delivery attempt, for the orders of the subscribed rounds:
   from the client receiving the ``201`` (just after the commit) to the
   receiver getting the event's first request (lower bound), and from the
   event's ``created_at`` (stamped inside the transaction, before the commit)
   to that request (upper bound).
3. 1,000 events delivered: ``POST /products/batch`` of 1,000 products (one
   chunk, 1,000 ``product.created`` events in one commit) and the time until the
   receiver has accepted all of them.

Run from the repository root::

    .venv/bin/python benchmarks/webhook_delivery.py                  # 4 rounds of 5 s per mode
    .venv/bin/python benchmarks/webhook_delivery.py --seconds 3 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
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
from backend_app.devtools.webhook_receiver import Receiver
from backend_app.main import INDEX_INSTALLERS
from backend_app.products.repository import COLLECTION as PRODUCTS
from backend_app.products.repository import new_product_document
from backend_app.products.schemas import ProductCreate
from config import Settings

DB_NAME = "webhook_delivery"
CLIENTS = 16
BUYERS_PER_CLIENT = 40
STOCK = 10_000_000
BULK_EVENTS = 1000


def percentile(values: list[float], p: float) -> float:
    """The ``p`` quantile of ``values`` (nearest rank); NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


async def seed(db, settings: Settings) -> tuple[list[str], list[dict[str, str]], dict[str, str]]:
    """Products, buyers with live logins, and an admin."""
    for install in INDEX_INSTALLERS:
        await install(db)
    now = datetime.now(UTC)
    docs = [
        new_product_document(
            ProductCreate(name=f"Product {i}", price=Decimal("19.99"), sizes=[{"size": "m", "quantity": STOCK}]),
            now=now,
        )
        for i in range(CLIENTS)
    ]
    result = await db[PRODUCTS].insert_many(docs)
    password_hash = _hash_sync(secrets.token_urlsafe(16))
    buyers = [
        await seed_user(db, settings, username=f"buyer_{i}", role="user", password_hash=password_hash)
        for i in range(CLIENTS * BUYERS_PER_CLIENT)
    ]
    admin = await seed_user(db, settings, username="bench_admin", role="admin", password_hash=password_hash)
    return [str(p) for p in result.inserted_ids], buyers, admin


async def orders_round(
    base: str,
    product_ids: list[str],
    buyers: list[dict[str, str]],
    seconds: float,
    turn: list[int],
    placed: dict[str, float],
) -> tuple[int, float, list[float]]:
    """``CLIENTS`` clients placing orders for ``seconds``; (orders placed, elapsed, latencies in s).

    ``placed`` receives each order id → ``time.monotonic()`` at which its 201 arrived.
    """
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    async def client(i: int, http: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            buyer = buyers[i + CLIENTS * (turn[i] % BUYERS_PER_CLIENT)]
            turn[i] += 1
            started = time.monotonic()
            response = await http.post(
                "/orders", json={"items": [{"productId": product_ids[i], "qty": 1}]}, headers=buyer
            )
            if response.status_code == 201:
                now = time.monotonic()
                latencies.append(now - started)
                placed[response.json()["id"]] = now
            elif response.status_code == 409:  # pending cap reached for this buyer: fine, next buyer
                continue
            else:
                print(f"  {response.status_code} {response.text[:200]}", file=sys.stderr)

    clients = [httpx.AsyncClient(base_url=base, timeout=60) for _ in range(CLIENTS)]
    started = time.monotonic()
    try:
        await asyncio.gather(*[client(i, c) for i, c in enumerate(clients)])
    finally:
        for c in clients:
            await c.aclose()
    return len(latencies), time.monotonic() - started, latencies


async def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return predicate()


def first_arrivals(receiver: Receiver) -> dict[str, tuple[float, float, dict]]:
    """event data id → (monotonic arrival of its first request, wall-clock arrival, envelope)."""
    first: dict[str, tuple[float, float, dict]] = {}
    for r in receiver.snapshot():
        envelope = json.loads(r.body)
        key = envelope["data"].get("id")
        if key not in first:
            first[key] = (r.at, r.wall, envelope)
    return first


async def run(args: argparse.Namespace) -> None:
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    print(
        f"date {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit}, {platform.machine()} {os.cpu_count()} cores (shared)"
    )
    with (
        tempfile.TemporaryDirectory(prefix="webhook-bench-") as data_dir,
        EmbeddedMongo(storage_path=data_dir) as embedded,
        Receiver() as receiver,
    ):
        print(f"SecantusDB: {' '.join(embedded.command()[3:])}")
        secret = secrets.token_urlsafe(48)
        settings = Settings(app_env="test", mongodb_uri=embedded.uri, mongodb_db=DB_NAME, jwt_secret=secret)
        mongo: AsyncMongoClient = AsyncMongoClient(embedded.uri, tz_aware=True)
        try:
            product_ids, buyers, admin = await seed(mongo[DB_NAME], settings)
        finally:
            await mongo.close()
        env = {
            "MONGODB_URI": embedded.uri, "MONGODB_DB": DB_NAME, "JWT_SECRET": secret,
            "RATE_LIMIT_ENABLED": "false", "LOG_LEVEL": "WARNING", "WEBHOOK_ALLOW_PRIVATE_URLS": "true",
        }  # fmt: skip
        print(
            f"webhook settings: defaults (poll {Settings.model_fields['webhook_poll_interval_seconds'].default} s, concurrency {Settings.model_fields['webhook_concurrency'].default}), loopback allowed"
        )
        with ApiServer(env=env) as server:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as api:
                turn = [0] * CLIENTS
                results: dict[str, list[tuple[int, float, list[float]]]] = {"none": [], "subscribed": []}
                subscribed_orders: dict[str, float] = {}
                await orders_round(server.base_url, product_ids, buyers, 1.0, turn, {})  # warm-up
                endpoint_id = None
                for r in range(args.rounds):
                    for mode in ("none", "subscribed") if r % 2 == 0 else ("subscribed", "none"):
                        if mode == "subscribed":
                            created = await api.post(
                                "/webhooks/endpoints", json={"url": receiver.url, "events": ["*"]}, headers=admin
                            )
                            assert created.status_code == 201, created.text
                            endpoint_id = created.json()["id"]
                            placed = subscribed_orders
                        else:
                            placed = {}
                        results[mode].append(
                            await orders_round(server.base_url, product_ids, buyers, args.seconds, turn, placed)
                        )
                        if mode == "subscribed":
                            await wait_until(lambda: set(subscribed_orders) <= set(first_arrivals(receiver)), 60)
                            assert (
                                await api.delete(f"/webhooks/endpoints/{endpoint_id}", headers=admin)
                            ).status_code == 204
                        print(
                            f"  round {r + 1} {mode}: {results[mode][-1][0] / results[mode][-1][1]:.1f} orders/s",
                            file=sys.stderr,
                            flush=True,
                        )
                arrivals = first_arrivals(receiver)
                lower = [arrivals[o][0] - t for o, t in subscribed_orders.items() if o in arrivals]
                upper = [
                    arrivals[o][1] - datetime.fromisoformat(arrivals[o][2]["created_at"].replace("Z", "+00:00")).timestamp()
                    for o in subscribed_orders if o in arrivals
                ]  # fmt: skip
                missing = [o for o in subscribed_orders if o not in arrivals]

                # 1,000 events in one commit, delivered.
                created = await api.post(
                    "/webhooks/endpoints", json={"url": receiver.url, "events": ["product.created"]}, headers=admin
                )
                before = len(receiver.accepted())
                items = [
                    {"name": f"Bulk {i}", "price": 1.5, "sizes": [{"size": "m", "quantity": 1}]}
                    for i in range(BULK_EVENTS)
                ]
                batch = await api.post("/products/batch", json=items, headers=admin)
                assert batch.status_code == 207 and batch.json()["created"] == BULK_EVENTS, batch.text[:300]
                committed = time.monotonic()
                done = await wait_until(lambda: len(receiver.accepted()) - before >= BULK_EVENTS, 600)
                bulk_elapsed = time.monotonic() - committed
                bulk_delivered = len(receiver.accepted()) - before

    def rate(rows):
        return sum(n for n, _e, _l in rows) / sum(e for _n, e, _l in rows)

    def lat(rows):
        return [x for _n, _e, ls in rows for x in ls]

    none, sub = rate(results["none"]), rate(results["subscribed"])
    print()
    print(f"**POST /orders, {CLIENTS} clients, {args.rounds} alternating rounds of {args.seconds:g} s per mode**")
    print()
    print("| mode | orders | orders/s | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|")
    for mode in ("none", "subscribed"):
        rows = results[mode]
        print(
            f"| {mode} | {sum(n for n, _e, _l in rows)} | {rate(rows):.1f} | {percentile(lat(rows), 0.5) * 1000:.1f} | "
            f"{percentile(lat(rows), 0.99) * 1000:.1f} |"
        )
    print(
        f"\nsubscribed / none = **{sub / none:.2f}×** (per round: "
        + ", ".join(
            f"{a[0] / a[1]:.1f} vs {b[0] / b[1]:.1f}"
            for a, b in zip(results["subscribed"], results["none"], strict=True)
        )
        + ")"
    )
    print(
        f"\ncommit → first attempt, {len(lower)} order events (missing {len(missing)}): "
        f"from the 201: p50 {percentile(lower, 0.5) * 1000:.0f} ms, **p95 {percentile(lower, 0.95) * 1000:.0f} ms**, max {max(lower, default=0) * 1000:.0f} ms; "
        f"from created_at (before commit): p50 {percentile(upper, 0.5) * 1000:.0f} ms, p95 {percentile(upper, 0.95) * 1000:.0f} ms"
    )
    print(
        f"\n{BULK_EVENTS} events (one bulk chunk) delivered: {bulk_delivered} in {bulk_elapsed:.2f} s = "
        f"**{bulk_delivered / bulk_elapsed:.0f} deliveries/s**{'' if done else ' (TIMED OUT)'}"
    )
    print(
        f"mean order latency none {statistics.fmean(lat(results['none'])) * 1000:.1f} ms, subscribed {statistics.fmean(lat(results['subscribed'])) * 1000:.1f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each round")
    parser.add_argument("--rounds", type=int, default=4, help="rounds per mode (alternating)")
    asyncio.run(run(parser.parse_args()))
