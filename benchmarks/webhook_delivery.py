"""Benchmark: what webhooks cost ``POST /orders``, how soon a committed event is attempted, and delivery rate.

One run, one on-disk SecantusDB started exactly as the app's embedded default
(``EmbeddedMongo``: ``--sync-on-commit``, the same oplog bound), one uvicorn
worker (``ApiServer``) with its dispatcher, and a webhook receiver on loopback
in a process of its own (``backend_app.devtools.webhook_receiver``, answering 200):

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

Before the rounds every buyer makes one authenticated request, so every round runs with the
buyers' login sessions cached (otherwise a round reaching buyers not seen yet pays two reads per
order more than the others, whatever its mode).

``--app-dir DIR`` (repeatable) also serves another checkout (e.g. ``git archive`` of the
previous ``main``) from its own database on the same server, and interleaves its rounds with
this checkout's (every checkout and mode once per round, the order reversed every other round).

Run from the repository root::

    .venv/bin/python benchmarks/webhook_delivery.py                  # 4 rounds of 5 s per mode
    .venv/bin/python benchmarks/webhook_delivery.py --seconds 3 --rounds 2
    .venv/bin/python benchmarks/webhook_delivery.py --app-dir /tmp/previous-main
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
from pymongo import AsyncMongoClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend_app.core.security import _hash_sync
from backend_app.devtools.api_server import ApiServer
from backend_app.devtools.embedded_db import EmbeddedMongo, free_port
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


@dataclass
class Arrival:
    """One request the receiver process got (its clock is this machine's monotonic clock)."""

    at: float
    wall: float
    body: bytes
    status: int


def _serve_receiver(port: int, out: multiprocessing.Queue) -> None:
    """The receiver process: a loopback ``Receiver`` answering 200, reporting every request to ``out``."""
    with Receiver(port=port) as receiver:
        sent = 0
        while True:
            requests = receiver.snapshot()
            for r in requests[sent:]:
                out.put((r.at, r.wall, r.body, r.status))
            sent = len(requests)
            time.sleep(0.02)


class ReceiverProcess:
    """The webhook receiver in a process of its own, as a receiving service would be.

    In this process it would share the interpreter with the 16 load clients,
    and its work per delivery would slow the clients of the subscribed rounds
    only: the rate measured would be the benchmark's, not the API's.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self._arrivals: list[Arrival] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def __enter__(self) -> ReceiverProcess:
        context = multiprocessing.get_context("spawn")
        self._queue = context.Queue()
        self._process = context.Process(target=_serve_receiver, args=(self.port, self._queue), daemon=True)
        self._process.start()
        threading.Thread(target=self._collect, daemon=True).start()
        deadline = time.monotonic() + 20
        while True:  # wait until it listens
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the receiver process did not start") from None
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        self._process.terminate()
        self._process.join(timeout=10)

    def _collect(self) -> None:
        while True:
            at, wall, body, status = self._queue.get()
            with self._lock:
                self._arrivals.append(Arrival(at, wall, body, status))

    def snapshot(self) -> list[Arrival]:
        with self._lock:
            return list(self._arrivals)

    def accepted(self) -> list[Arrival]:
        return [a for a in self.snapshot() if 200 <= a.status < 300]


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


async def warm_sessions(base: str, buyers: list[dict[str, str]]) -> None:
    """One authenticated request per buyer (``GET /auth/me``), ``CLIENTS`` at a time."""
    queue = list(buyers)

    async def worker(http: httpx.AsyncClient) -> None:
        while queue:
            response = await http.get("/auth/me", headers=queue.pop())
            assert response.status_code == 200, response.text

    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        await asyncio.gather(*[worker(http) for _ in range(CLIENTS)])


async def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return predicate()


def first_arrivals(receiver: ReceiverProcess) -> dict[str, tuple[float, float, dict]]:
    """event data id → (monotonic arrival of its first request, wall-clock arrival, envelope)."""
    first: dict[str, tuple[float, float, dict]] = {}
    for r in receiver.snapshot():
        envelope = json.loads(r.body)
        key = envelope["data"].get("id")
        if key not in first:
            first[key] = (r.at, r.wall, envelope)
    return first


class App:
    """One checkout served for the benchmark: its own database on the shared server, its API process, its results."""

    def __init__(self, title: str, app_dir: Path, db_name: str) -> None:
        self.title, self.app_dir, self.db_name = title, app_dir, db_name
        self.results: dict[str, list[tuple[int, float, list[float]]]] = {"none": [], "subscribed": []}
        self.subscribed_orders: dict[str, float] = {}
        self.turn = [0] * CLIENTS
        self.bulk: tuple[int, float, bool] = (0, 0.0, False)


async def one_round(
    app: App, server: ApiServer, api: httpx.AsyncClient, mode: str, receiver: ReceiverProcess, seconds: float
) -> None:
    """One round of ``mode`` for ``app``: with an endpoint subscribed to ``*`` (removed afterwards) or none."""
    placed: dict[str, float] = {}
    endpoint_id = None
    if mode == "subscribed":
        created = await api.post("/webhooks/endpoints", json={"url": receiver.url, "events": ["*"]}, headers=app.admin)
        assert created.status_code == 201, created.text
        endpoint_id = created.json()["id"]
        placed = app.subscribed_orders
    app.results[mode].append(
        await orders_round(server.base_url, app.product_ids, app.buyers, seconds, app.turn, placed)
    )
    if endpoint_id is not None:
        await wait_until(lambda: set(app.subscribed_orders) <= set(first_arrivals(receiver)), 60)
        assert (await api.delete(f"/webhooks/endpoints/{endpoint_id}", headers=app.admin)).status_code == 204
    n, elapsed, _l = app.results[mode][-1]
    print(f"  {app.title} {mode}: {n / elapsed:.1f} orders/s", file=sys.stderr, flush=True)


async def bulk_delivery(app: App, api: httpx.AsyncClient, receiver: ReceiverProcess) -> None:
    """1,000 ``product.created`` events in one commit, and the time until the receiver accepted them all."""
    created = await api.post(
        "/webhooks/endpoints", json={"url": receiver.url, "events": ["product.created"]}, headers=app.admin
    )
    assert created.status_code == 201, created.text
    before = len(receiver.accepted())
    items = [{"name": f"Bulk {i}", "price": 1.5, "sizes": [{"size": "m", "quantity": 1}]} for i in range(BULK_EVENTS)]
    batch = await api.post("/products/batch", json=items, headers=app.admin)
    assert batch.status_code == 207 and batch.json()["created"] == BULK_EVENTS, batch.text[:300]
    committed = time.monotonic()
    done = await wait_until(lambda: len(receiver.accepted()) - before >= BULK_EVENTS, 600)
    app.bulk = (len(receiver.accepted()) - before, time.monotonic() - committed, done)
    assert (await api.delete(f"/webhooks/endpoints/{created.json()['id']}", headers=app.admin)).status_code == 204


async def run(args: argparse.Namespace) -> None:
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    print(
        f"date {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit}, {platform.machine()} {os.cpu_count()} cores (shared)"
    )
    apps = [App("this checkout", ROOT, DB_NAME)]
    for i, app_dir in enumerate(args.app_dir or []):
        apps.append(App(f"--app-dir {app_dir}", Path(app_dir), f"{DB_NAME}_other{i}"))
    with (
        tempfile.TemporaryDirectory(prefix="webhook-bench-") as data_dir,
        EmbeddedMongo(storage_path=data_dir) as embedded,
        ReceiverProcess() as receiver,
        contextlib.ExitStack() as stack,
    ):
        print(f"SecantusDB: {' '.join(embedded.command()[3:])}")
        secret = secrets.token_urlsafe(48)
        servers: list[ApiServer] = []
        for app in apps:
            settings = Settings(app_env="test", mongodb_uri=embedded.uri, mongodb_db=app.db_name, jwt_secret=secret)
            mongo: AsyncMongoClient = AsyncMongoClient(embedded.uri, tz_aware=True)
            try:
                app.product_ids, app.buyers, app.admin = await seed(mongo[app.db_name], settings)
            finally:
                await mongo.close()
            env = {
                "MONGODB_URI": embedded.uri, "MONGODB_DB": app.db_name, "JWT_SECRET": secret,
                "RATE_LIMIT_ENABLED": "false", "LOG_LEVEL": "WARNING", "WEBHOOK_ALLOW_PRIVATE_URLS": "true",
            }  # fmt: skip
            server = ApiServer(env=env)
            server.cwd = str(app.app_dir)
            servers.append(stack.enter_context(server))
        print(
            f"webhook settings: defaults (poll {Settings.model_fields['webhook_poll_interval_seconds'].default} s, concurrency {Settings.model_fields['webhook_concurrency'].default}), loopback allowed"
        )
        async with contextlib.AsyncExitStack() as clients:
            apis = [
                await clients.enter_async_context(httpx.AsyncClient(base_url=server.base_url, timeout=120))
                for server in servers
            ]
            for app, server in zip(apps, servers, strict=True):
                await orders_round(server.base_url, app.product_ids, app.buyers, 1.0, app.turn, {})  # warm-up
                # Every buyer's login session in the API's session cache before the first round: otherwise
                # the rounds that reach buyers not yet seen pay two more reads per order than the others.
                await warm_sessions(server.base_url, app.buyers)
            # Every (checkout, mode) pair once per round, the order reversed every other round (ABBA).
            pairs = [(i, mode) for i in range(len(apps)) for mode in ("none", "subscribed")]
            for r in range(args.rounds):
                for i, mode in pairs if r % 2 == 0 else pairs[::-1]:
                    await one_round(apps[i], servers[i], apis[i], mode, receiver, args.seconds)
            arrivals = first_arrivals(receiver)
            for app, api in zip(apps, apis, strict=True):
                await bulk_delivery(app, api, receiver)

    def rate(rows):
        return sum(n for n, _e, _l in rows) / sum(e for _n, e, _l in rows)

    def lat(rows):
        return [x for _n, _e, ls in rows for x in ls]

    print()
    print(f"**POST /orders, {CLIENTS} clients, {args.rounds} alternating rounds of {args.seconds:g} s per mode**")
    print()
    print("| checkout | mode | orders | orders/s | p50 ms | p99 ms |")
    print("|---|---|---:|---:|---:|---:|")
    for app in apps:
        for mode in ("none", "subscribed"):
            rows = app.results[mode]
            print(
                f"| {app.title} | {mode} | {sum(n for n, _e, _l in rows)} | {rate(rows):.1f} | "
                f"{percentile(lat(rows), 0.5) * 1000:.1f} | {percentile(lat(rows), 0.99) * 1000:.1f} |"
            )
    for app in apps:
        none, sub = rate(app.results["none"]), rate(app.results["subscribed"])
        per_round = ", ".join(
            f"{a[0] / a[1]:.1f} vs {b[0] / b[1]:.1f}"
            for a, b in zip(app.results["subscribed"], app.results["none"], strict=True)
        )
        lower = [arrivals[o][0] - t for o, t in app.subscribed_orders.items() if o in arrivals]
        upper = [
            arrivals[o][1] - datetime.fromisoformat(arrivals[o][2]["created_at"].replace("Z", "+00:00")).timestamp()
            for o in app.subscribed_orders if o in arrivals
        ]  # fmt: skip
        missing = [o for o in app.subscribed_orders if o not in arrivals]
        delivered, elapsed, done = app.bulk
        print(f"\n**{app.title}**: subscribed / none = **{sub / none:.2f}×** (per round: {per_round})")
        print(
            f"commit → first attempt, {len(lower)} order events (missing {len(missing)}): "
            f"from the 201: p50 {percentile(lower, 0.5) * 1000:.0f} ms, **p95 {percentile(lower, 0.95) * 1000:.0f} ms**, "
            f"max {max(lower, default=0) * 1000:.0f} ms; from created_at (before commit): "
            f"p50 {percentile(upper, 0.5) * 1000:.0f} ms, p95 {percentile(upper, 0.95) * 1000:.0f} ms"
        )
        print(
            f"{BULK_EVENTS} events (one bulk chunk) delivered: {delivered} in {elapsed:.2f} s = "
            f"**{delivered / elapsed:.0f} deliveries/s**{'' if done else ' (TIMED OUT)'}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each round")
    parser.add_argument("--rounds", type=int, default=4, help="rounds per mode (alternating)")
    parser.add_argument(
        "--app-dir", action="append", help="also serve this checkout's backend_app, interleaved (repeatable)"
    )
    asyncio.run(run(parser.parse_args()))
