"""Benchmark: ``POST /orders`` scaling out over API processes, beside the raw driver's ``insert_one``.

One run, one embedded SecantusDB with durable commits (``EmbeddedMongo`` defaults:
on-disk storage in a temporary directory, ``--sync-on-commit``), and these
process layouts of ``python -m backend_app serve``, all started at once:

- ``w1``: one process (``WEB_CONCURRENCY=1``), the reference of the targets;
- ``w2``: ``WEB_CONCURRENCY=2`` on one port;
- ``w4``: ``WEB_CONCURRENCY=4`` on one port;
- ``two-serve``: two ``serve`` processes (``WEB_CONCURRENCY=1`` each) on two ports,
  client *i* talking to port *i* mod 2.

Each layout is warmed up (:data:`WARMUP_SECONDS` of orders on a product of its own).
Then, for each of four workloads at :data:`CLIENTS` concurrent clients (each client
one HTTP connection, opened for each slice), every layout runs ``--seconds``/(2 x
``--rounds``) at a time, in order and then in reverse order (w1 w2 w4 two-serve
two-serve w4 w2 w1), ``--rounds`` times: the
server's write rate falls as its oplog fills and the shared machine's load
changes by the minute, and a layout measured minutes after another would be
judged on a different server; interleaved, a steady drift weighs on every layout
alike. PyMongo ``insert_one`` of an order-shaped document with the app's write
concern (majority + j) at 16 clients, the reference, runs before each workload
and after the last (every API process up, idle). The workloads:

- ``hot``: one-line orders (qty 1) of ONE product;
- ``distinct``: one-line orders, client *i* buying product *i*;
- ``overlap``: three-line orders on 3 of :data:`OVERLAP_PRODUCTS` products, client *i*
  buying products *i*, *i*+1, *i*+2 (mod 6), so each product is in the orders of 8 clients;
- ``one-account``: ONE account placing 16 orders at once (client *i* buying product *i*),
  so every order of a batch competes for the same owner's reservations.

Every row gets products and buyers of its own, seeded before the warm-ups: products
through the served checkout's ``POST /products/batch`` (so they have that
checkout's stock fields), users and logins through ``backend_app.devtools.seed``.
In ``hot``, ``distinct`` and ``overlap`` each client rotates over enough accounts
that none holds more than :data:`PENDING_PER_BUYER` pending orders (under the default
cap of 10, as in a flash sale with many buyers). The reservation caps are raised
for the API processes (:data:`RAISED_CAPS`, only the ones the served checkout's
``config.settings.Settings`` has), for ``one-account``. Stock is 10^8 units per
product: nothing sells out.

Row columns: orders/s (``201`` only), p50 and p99 latency of the ``201`` s (client
side, HTTP over loopback), p99/p50, ``503`` count, count of every other failure
(any other status, timeouts, connection errors), orders/s ÷ the mean of the raw
``insert_one``/s before and after its workload, the clients' connections per server process in the middle of each
slice (``ss``; uvicorn's workers share one listening socket, so the kernel decides
which worker accepts which connection) and the zero-oversell check: for
the row's products, the units of the orders in the database that hold stock (any
status but ``cancelled``/``expired``) must equal the fall of available stock since
the row started. Stock is read generically: per size, ``available`` if stored,
else on hand (``on_hand`` or ``quantity``) minus ``allocated`` (0 when absent);
when a size stores all three, on hand − allocated = available is checked too.

Targets (PASS/FAIL), per workload: orders/s at ``w2`` (and ``two-serve``) ≥ the
``w1`` figure of the same run, at ``w4`` ≥ 0.9× it; p99 ≤ 3× ``w1``'s p99 and
≤ 5× its own p50; no 503; zero oversell.

``--app-dir DIR`` also serves another checkout (after this one, same server, a
database of its own) and prints its tables and targets too; ``--env
KEY=VALUE`` adds settings to the API processes of every layout.

Bounded: each row stops after ``--seconds`` or :data:`MAX_RATE_PER_CLIENT` ×
``--seconds`` orders per client, each request after :data:`REQUEST_TIMEOUT` s;
loopback only; every process it starts is stopped on exit, Ctrl-C or SIGTERM.

Run from the repository root::

    .venv/bin/python benchmarks/order_scaleout.py                          # 5 s per row, everything
    .venv/bin/python benchmarks/order_scaleout.py --seconds 3 --layouts w1,w2 --workloads hot
    .venv/bin/python benchmarks/order_scaleout.py --app-dir /tmp/other-checkout --env ORDER_SWEEP_INTERVAL_SECONDS=600
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from bson import ObjectId
from pymongo import AsyncMongoClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend_app.core.security import _hash_sync
from backend_app.devtools.api_server import ApiServer
from backend_app.devtools.embedded_db import EmbeddedMongo, free_port
from backend_app.devtools.seed import seed_user
from backend_app.main import INDEX_INSTALLERS
from benchmarks.order_contention import RawInserts, Result
from config import Settings

CLIENTS = 16
#: Units of each product's one size: no row sells out.
STOCK = 10**8
OVERLAP_PRODUCTS = 6
#: Most pending orders a rotating buyer holds at the end of a row (the default cap is 10).
PENDING_PER_BUYER = 8
#: Bound on a row's count: at most this many orders per client per second of the row.
MAX_RATE_PER_CLIENT = 25
WARMUP_SECONDS = 1.5
REQUEST_TIMEOUT = 30.0
#: Raised for the API processes when the served checkout has the setting: one account may then hold
#: every order ``one-account`` places.
RAISED_CAPS = {
    "ORDER_MAX_PENDING": "1000000",
    "ORDER_MAX_PENDING_UNITS": "1000000000",
    "ORDER_MAX_UNITS_PER_LINE": "1000000",
}
#: Order statuses that hold no stock (the stock went back).
RELEASED = frozenset({"cancelled", "expired"})


@dataclass(frozen=True)
class Layout:
    """API processes of one layout: ``WEB_CONCURRENCY`` of each ``serve`` process, each on its own port."""

    label: str
    workers: tuple[int, ...]
    #: The layout whose targets apply (``w2`` for ``two-serve``); ``None`` for the reference.
    judged_as: str | None


LAYOUTS = {
    "w1": Layout("1 process (WEB_CONCURRENCY=1)", (1,), None),
    "w2": Layout("WEB_CONCURRENCY=2, one port", (2,), "w2"),
    "w4": Layout("WEB_CONCURRENCY=4, one port", (4,), "w4"),
    "two-serve": Layout("two `serve` processes, two ports", (1, 1), "w2"),
}
#: Fraction of ``w1``'s orders/s each layout must reach.
THROUGHPUT_TARGET = {"w2": 1.0, "w4": 0.9}


@dataclass(frozen=True)
class Workload:
    """Products of a row (``products``), the product indexes of client *i*'s lines, one shared account or not."""

    label: str
    products: int
    lines: Any  # Callable[[int], list[int]]
    one_account: bool = False


WORKLOADS = {
    "hot": Workload("hot product, 1 line", 1, lambda i: [0]),
    "distinct": Workload("distinct products, 1 line", CLIENTS, lambda i: [i]),
    "overlap": Workload(
        "3 lines of 6 products, overlapping", OVERLAP_PRODUCTS, lambda i: [(i + k) % OVERLAP_PRODUCTS for k in range(3)]
    ),
    "one-account": Workload("one account, 16 at once", CLIENTS, lambda i: [i], one_account=True),
}


class ServeProcess(ApiServer):
    """``python -m backend_app serve`` of a checkout (``cwd``) with ``WEB_CONCURRENCY=workers`` on ``port``."""

    name = "backend_app serve"

    def command(self) -> list[str]:
        """``python -m backend_app serve``; host, port and workers come from the environment."""
        return [sys.executable, "-m", "backend_app", "serve"]

    def environment(self) -> dict[str, str]:
        """:meth:`ApiServer.environment` plus ``HOST``, ``PORT`` and ``WEB_CONCURRENCY``."""
        inherited = {k: v for k, v in super().environment().items() if not k.startswith("ORDER_")}
        return {
            **inherited,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "WEB_CONCURRENCY": str(self.workers),
            **self.env,
        }


@dataclass
class Row:
    """One (workload, layout) row: its products, buyers (per client) and what was measured, over its slices."""

    layout: str
    workload: str
    product_ids: list[str]
    buyers: list[list[dict[str, str]]]
    turns: list[int] = field(default_factory=lambda: [0] * CLIENTS)
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    n503: int = 0
    other: int = 0
    bounded: bool = False
    connections: list[str] = field(default_factory=list)
    check: str = ""
    check_passed: bool = False
    #: CPU seconds the database server spent during the row's slices, and the machine's busy CPU seconds.
    db_cpu: float = 0.0
    machine_cpu: float = 0.0

    @property
    def result(self) -> Result:
        """The 201s' latencies over the row's measured time."""
        return Result(self.latencies, self.elapsed, 0)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of process ``pid`` so far (``/proc/PID/stat``; Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy (not idle, not waiting on I/O) since boot (``/proc/stat``; Linux)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def settings_of(app_dir: Path) -> set[str]:
    """Environment names of the settings of ``app_dir``'s ``config.settings.Settings`` (read in a child process)."""
    code = "import json; from config.settings import Settings; print(json.dumps(sorted(Settings.model_fields)))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=app_dir, capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return {name.upper() for name in json.loads(out.strip().splitlines()[-1])}


def commit_of(path: Path) -> str:
    """Short commit of the checkout at ``path`` (``+dirty`` with uncommitted changes), or ``n/a``."""
    head = subprocess.run(["git", "-C", str(path), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        return "n/a"
    dirty = subprocess.run(
        ["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    )
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def available_units(product: dict[str, Any]) -> tuple[int, list[str]]:
    """Available units of ``product`` summed over its sizes, and any size whose stock fields disagree.

    Per size: ``available`` when stored, else on hand (``on_hand``, else ``quantity``) minus
    ``allocated`` (0 when absent). A size storing all three must have on hand − allocated = available.
    """
    total, problems = 0, []
    for size in product.get("sizes") or []:
        on_hand = size.get("on_hand", size.get("quantity", 0))
        allocated = size.get("allocated")
        available = size.get("available")
        if available is None:
            available = on_hand - (allocated or 0)
        elif allocated is not None and on_hand - allocated != available:
            problems.append(
                f"size {size.get('size')}: on hand {on_hand} − allocated {allocated} ≠ available {available}"
            )
        if available < 0:
            problems.append(f"size {size.get('size')}: available {available} < 0")
        total += available
    return total, problems


async def stock_of(db, ids: list[str]) -> dict[str, tuple[int, list[str]]]:
    """:func:`available_units` of each product of ``ids``."""
    docs = db["products"].find({"_id": {"$in": [ObjectId(i) for i in ids]}})
    return {str(doc["_id"]): available_units(doc) async for doc in docs}


async def oversell_check(
    db, ids: list[str], before: dict[str, tuple[int, list[str]]], acknowledged: int
) -> tuple[str, bool]:
    """``(text, passed)``: ``ok``, or the discrepancy of units of stock-holding orders vs the fall of available stock.

    Also notes when the stock-holding orders of the products in the database are not
    the ``acknowledged`` count of 201s: more can be a request that failed on the client
    side after its commit; fewer is an acknowledged order lost, and fails the check.
    """
    after = await stock_of(db, ids)
    sold = dict.fromkeys(ids, 0)
    orders = 0
    wanted = [ObjectId(i) for i in ids] + ids  # the product id as ObjectId or as string, whichever is stored
    async for order in db["orders"].find({"items.productId": {"$in": wanted}}, {"status": 1, "items": 1}):
        if order.get("status") in RELEASED:
            continue
        orders += 1
        for item in order["items"]:
            if str(item["productId"]) in sold:
                sold[str(item["productId"])] += item["qty"]
    problems: list[str] = []
    for i, pid in enumerate(ids):
        fall = before[pid][0] - after[pid][0]
        if fall != sold[pid]:
            problems.append(f"product {i}: {sold[pid]} units in orders, available fell by {fall}")
        problems += [f"product {i} {p}" for p in after[pid][1]]
    passed = not problems and orders >= acknowledged
    if orders != acknowledged:
        problems.append(f"{orders} orders in the database, {acknowledged} acknowledged")
    return ("ok" if not problems else ("ok; " if passed else "") + "; ".join(problems)), passed


async def seed_accounts(db, settings: Settings, prefix: str, count: int, password_hash: str) -> list[dict[str, str]]:
    """``count`` users ``<prefix>_<n>`` with live logins (16 at a time): their bearer headers."""
    headers: list[dict[str, str]] = []
    for start in range(0, count, 16):
        names = [f"{prefix}_{n}" for n in range(start, min(count, start + 16))]
        headers += await asyncio.gather(
            *[seed_user(db, settings, username=n, role="user", password_hash=password_hash) for n in names]
        )
    return headers


async def seed_products(http: httpx.AsyncClient, admin: dict[str, str], names: list[str]) -> list[str]:
    """Products ``names`` (one size ``m`` of :data:`STOCK` units) through the served API: their ids.

    ``POST /products/batch`` when the checkout has it, else one ``POST /products`` each.
    """
    bodies = [{"name": n, "price": 19.99, "sizes": [{"size": "m", "quantity": STOCK}]} for n in names]
    response = await http.post("/products/batch", json=bodies, headers=admin)
    if response.status_code == 207:
        results = response.json()["results"]
        if all(r["status"] == 201 for r in results):
            return [r["id"] for r in results]
        raise RuntimeError(f"POST /products/batch refused products: {response.text[:500]}")
    ids = []
    for body in bodies:
        one = await http.post("/products", json=body, headers=admin)
        if one.status_code != 201:
            raise RuntimeError(f"POST /products: {one.status_code} {one.text[:300]}")
        ids.append(one.json()["id"])
    return ids


async def place_orders(
    clients: list[httpx.AsyncClient], row: Row, workload: Workload, seconds: float, label: str
) -> None:
    """Each client places orders for ``seconds`` (at most :data:`MAX_RATE_PER_CLIENT` × ``seconds``), into ``row``.

    Client *i* rotates over ``row.buyers[i]``, from where its previous slice of the row stopped.
    """
    limit = max(1, math.ceil(MAX_RATE_PER_CLIENT * seconds))
    shown: set[str] = set()
    deadline = time.perf_counter() + seconds

    def note(kind: str) -> None:
        if kind not in shown and len(shown) < 5:
            shown.add(kind)
            print(f"  [{label}] {kind}", file=sys.stderr, flush=True)

    async def client(i: int) -> None:
        items = [{"productId": row.product_ids[p], "qty": 1} for p in workload.lines(i)]
        for _ in range(limit):
            if time.perf_counter() >= deadline:
                return
            buyer = row.buyers[i][row.turns[i] % len(row.buyers[i])]
            row.turns[i] += 1
            started = time.perf_counter()
            try:
                response = await clients[i].post("/orders", json={"items": items}, headers=buyer)
            except httpx.HTTPError as exc:
                row.other += 1
                note(f"{type(exc).__name__}: {exc}"[:200])
                continue
            if response.status_code == 201:
                row.latencies.append(time.perf_counter() - started)
            else:
                row.n503 += response.status_code == 503
                row.other += response.status_code != 503
                note(f"{response.status_code} {response.text[:200]}")
        row.bounded = True

    started = time.perf_counter()
    await asyncio.gather(*[client(i) for i in range(len(clients))])
    row.elapsed += time.perf_counter() - started


async def connections_per_process(ports: list[int]) -> str:
    """Established connections on ``ports`` per server process (``ss -tnp``), e.g. ``4+4+5+3``; ``?`` without ss."""
    ports_filter = " or ".join(f"sport = :{port}" for port in ports)
    try:
        child = await asyncio.create_subprocess_exec(
            "ss", "-Htnp", "state", "established", f"( {ports_filter} )", stdout=subprocess.PIPE
        )
        out, _ = await child.communicate()
    except OSError:
        return "?"
    pids = re.findall(r"pid=(\d+)", out.decode())
    counts = {pid: pids.count(pid) for pid in sorted(set(pids), key=int)}
    return "+".join(str(n) for n in counts.values()) or "0"


async def run_slice(servers: list[ServeProcess], row: Row, seconds: float, db_pid: int) -> None:
    """One slice of ``row``: :data:`CLIENTS` fresh connections (client *i* to server *i* mod n) for ``seconds``.

    Fresh connections per slice: every worker is up by now, and the kernel spreads the accepts
    among the workers sharing a port as it would for new clients; the spread is sampled mid-slice.
    The database server's CPU time (process ``db_pid``) and the machine's are added to ``row``: a
    server near one full core is the ceiling of every layout, whatever the API processes do.
    """
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = [
        httpx.AsyncClient(base_url=servers[i % len(servers)].base_url, timeout=REQUEST_TIMEOUT, limits=limits)
        for i in range(CLIENTS)
    ]

    async def sample() -> str:
        await asyncio.sleep(seconds / 2)  # mid-slice: every client is connected
        return await connections_per_process([s.port for s in servers])

    try:
        label = f"{row.layout} {row.workload}"
        db_before, machine_before = cpu_seconds(db_pid), machine_busy_seconds()
        _, spread = await asyncio.gather(place_orders(clients, row, WORKLOADS[row.workload], seconds, label), sample())
        row.db_cpu += cpu_seconds(db_pid) - db_before
        row.machine_cpu += machine_busy_seconds() - machine_before
        row.connections.append(spread)
    finally:
        for c in clients:
            await c.aclose()


async def seed_rows(
    db, settings: Settings, http: httpx.AsyncClient, layouts: list[str], workloads: list[str], seconds: float, pw: str
) -> tuple[dict[str, Row], dict[tuple[str, str], Row]]:
    """Products and buyers of each layout's warm-up and of every row.

    Returns ``(warm-up rows by layout, rows by (workload, layout))``.

    Products go through ``POST /products/batch`` of the served checkout (its stock fields), as an admin.
    """
    admin = await seed_user(db, settings, username="scaleout_admin", role="admin", password_hash=pw)
    plans = [(f"{k} warm-up", k, "hot", WARMUP_SECONDS) for k in layouts]
    plans += [(f"{k} {w}", k, w, seconds) for w in workloads for k in layouts]
    names = [f"{name} {n}" for name, _k, w, _s in plans for n in range(WORKLOADS[w].products)]
    ids = await seed_products(http, admin, names)
    made: list[Row] = []
    for name, key, w, length in plans:
        product_ids, ids = ids[: WORKLOADS[w].products], ids[WORKLOADS[w].products :]
        prefix = name.replace(" ", "_")
        if WORKLOADS[w].one_account:
            buyers = [await seed_accounts(db, settings, prefix, 1, pw)] * CLIENTS
        else:
            per_client = max(1, math.ceil(MAX_RATE_PER_CLIENT * length / PENDING_PER_BUYER))
            flat = await seed_accounts(db, settings, prefix, CLIENTS * per_client, pw)
            buyers = [flat[i::CLIENTS] for i in range(CLIENTS)]
        made.append(Row(key, w, product_ids, buyers))
    warm = {row.layout: row for row in made[: len(layouts)]}
    return warm, {(row.workload, row.layout): row for row in made[len(layouts) :]}


async def run_app(
    *,
    app_dir: Path,
    env: dict[str, str],
    db,
    db_pid: int,
    settings: Settings,
    raw: RawInserts,
    args: argparse.Namespace,
) -> tuple[list[Result], list[Row]]:
    """Every layout of one checkout, up at once; each workload measured on every layout, interleaved.

    For each workload the layouts run in order and then in reverse order, ``--rounds`` times
    (``--seconds``/(2 x ``--rounds``) each time), so a steady drift of the shared machine or of the server's write rate weighs on every
    layout alike; raw ``insert_one`` runs before each workload and after the last. Returns the raw
    results (one more than the workloads) and the rows (in workload, then layout order).
    """
    layouts, workloads, pw = args.layouts, args.workloads, _hash_sync(secrets.token_urlsafe(16))
    with contextlib.ExitStack() as stack:
        servers: dict[str, list[ServeProcess]] = {}
        port_n = 0
        if args.server_logs:
            os.makedirs(args.server_logs, exist_ok=True)
        for key in layouts:
            for workers in LAYOUTS[key].workers:
                # Each layout is its own deployment: its own placement leader, where the checkout elects one.
                log_path = None
                if args.server_logs:
                    log_path = os.path.join(args.server_logs, f"{os.path.basename(app_dir)}-{key}-{port_n}.log")
                    port_n += 1
                server = ServeProcess(
                    env={**env, "ORDER_FORWARD_GROUP": key}, port=free_port(), workers=workers, log_path=log_path
                )
                server.cwd = app_dir
                servers.setdefault(key, []).append(server.start(timeout_s=120))
                stack.callback(server.stop)
        print(f"  started {', '.join(layouts)}; seeding", file=sys.stderr, flush=True)
        async with httpx.AsyncClient(base_url=servers[layouts[0]][0].base_url, timeout=120) as http:
            warm, rows = await seed_rows(db, settings, http, layouts, workloads, args.seconds, pw)
        for key in layouts:
            print(f"  warm-up {key}", file=sys.stderr, flush=True)
            await run_slice(servers[key], warm[key], WARMUP_SECONDS, db_pid)
        raws = [await raw(CLIENTS)]
        for w in workloads:
            before = {key: await stock_of(db, rows[(w, key)].product_ids) for key in layouts}
            for key in (layouts + layouts[::-1]) * args.rounds:
                await run_slice(servers[key], rows[(w, key)], args.seconds / (2 * args.rounds), db_pid)
            for key in layouts:
                row = rows[(w, key)]
                row.check, row.check_passed = await oversell_check(db, row.product_ids, before[key], len(row.latencies))
                print(f"  {w} {key}: {row.result.rate:.1f}/s, check {row.check}", file=sys.stderr, flush=True)
            raws.append(await raw(CLIENTS))
    return raws, [rows[(w, key)] for w in workloads for key in layouts]


def fmt(value: float) -> str:
    """A figure with one decimal, or ``—`` when there is none."""
    return "—" if value != value else f"{value:.1f}"  # NaN: no successful request


def results_table(title: str, raws: list[Result], rows: list[Row], workloads: list[str]) -> list[str]:
    """Markdown table of every row, with its ratio to the mean raw ``insert_one`` rate before and after
    its workload, then the raw table."""
    out = [
        f"**{title}**",
        "",
        "| workload | layout | orders/s | p50 ms | p99 ms | p99/p50 | 503s | other failed | × raw | db server CPU "
        "| machine CPU | conns/process | zero oversell |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in rows:
        r = row.result
        k = workloads.index(row.workload)
        raw_rate = (raws[k].rate + raws[k + 1].rate) / 2
        p50, p99 = r.percentile(0.5), r.percentile(0.99)
        bound = " (count bound hit)" if row.bounded else ""
        out.append(
            f"| {WORKLOADS[row.workload].label} | {row.layout} | {r.rate:.1f}{bound} | {fmt(p50)} | {fmt(p99)} | "
            f"{fmt(p99 / p50)} | {row.n503} | {row.other} | {r.rate / raw_rate:.2f} | "
            f"{row.db_cpu / row.elapsed:.0%} | {row.machine_cpu / row.elapsed:.0%} | "
            f"{' / '.join(row.connections)} | {row.check} |"
        )
    out += [
        "",
        f"**raw PyMongo `insert_one` (majority, j), {CLIENTS} clients, same server (every API process up, idle)**",
        "",
        "| measured | inserts/s | p50 ms | p99 ms |",
        "|---|---:|---:|---:|",
    ]
    for k, r in enumerate(raws):
        when = f"before {WORKLOADS[workloads[k]].label}" if k < len(workloads) else "after the last workload"
        out.append(f"| {when} | {r.rate:.1f} | {fmt(r.percentile(0.5))} | {fmt(r.percentile(0.99))} |")
    return out


def targets_table(rows: list[Row]) -> list[str]:
    """Markdown PASS/FAIL table of each row against the targets (relative ones against ``w1`` of the same run)."""
    base = {row.workload: row for row in rows if row.layout == "w1"}
    tally = {"PASS": 0, "FAIL": 0}

    def mark(ok: bool) -> str:
        tally["PASS" if ok else "FAIL"] += 1
        return "PASS" if ok else "FAIL"

    out = []
    for row in sorted(rows, key=lambda r: list(WORKLOADS).index(r.workload)):
        r, ref = row.result, base.get(row.workload)
        p50, p99 = r.percentile(0.5), r.percentile(0.99)
        judged = LAYOUTS[row.layout].judged_as
        if judged is None:
            ratio = p99_ratio = "—"
            throughput = p99_vs_base = "reference"
        elif ref is None or not ref.result.latencies:
            ratio = p99_ratio = "—"
            throughput = p99_vs_base = "n/a (no w1 row)"
        else:
            rate_ratio, latency_ratio = r.rate / ref.result.rate, p99 / ref.result.percentile(0.99)
            ratio, p99_ratio = f"{rate_ratio:.2f}", f"{latency_ratio:.2f}"
            throughput = mark(rate_ratio >= THROUGHPUT_TARGET[judged])
            p99_vs_base = mark(bool(r.latencies) and latency_ratio <= 3)
        own = mark(bool(r.latencies) and p99 <= 5 * p50)
        out.append(
            f"| {WORKLOADS[row.workload].label} | {row.layout} | {ratio} | {throughput} | {p99_ratio} | "
            f"{p99_vs_base} | {own} | {mark(row.n503 == 0)} | {mark(row.check_passed)} |"
        )
    targets = (
        "w2 and two-serve ≥ 1.0× w1's orders/s, w4 ≥ 0.9×; p99 ≤ 3× w1's p99 and ≤ 5× its own p50; "
        "no 503; zero oversell"
    )
    return [
        f"**Targets** ({targets}): {tally['PASS']} PASS, {tally['FAIL']} FAIL",
        "",
        "| workload | layout | orders/s ÷ w1 | throughput | p99 ÷ w1 p99 | p99 ≤ 3× w1 | p99 ≤ 5× p50 | no 503 "
        "| zero oversell |",
        "|---|---|---:|---|---:|---|---|---|---|",
        *out,
    ]


async def measure(args: argparse.Namespace) -> None:
    """The whole run: header, then per served checkout its results and targets tables."""
    extra = dict(kv.split("=", 1) for kv in args.env)
    apps = [("this checkout", ROOT)]
    if args.app_dir:
        apps.append((f"--app-dir {args.app_dir}", Path(args.app_dir).resolve()))
    header = [
        f"- date {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; benchmark commit {commit_of(ROOT)}; "
        f"{platform.machine()}, {os.cpu_count()} cores (shared); Python {platform.python_version()}",
        f"- {args.seconds:g} s per row ({2 * args.rounds} slices of {args.seconds / (2 * args.rounds):g} s: "
        f"layouts in order, then in reverse, {args.rounds} time(s); "
        f"at most {MAX_RATE_PER_CLIENT}/s per client), {CLIENTS} clients, one HTTP connection each; "
        f"warm-up {WARMUP_SECONDS:g} s per layout; layouts {', '.join(args.layouts)} all up at once",
    ]
    with (
        tempfile.TemporaryDirectory(prefix="order-scaleout-") as data_dir,
        tempfile.TemporaryDirectory(prefix="order-scaleout-logs-") as log_dir,
        EmbeddedMongo(storage_path=data_dir) as embedded,
    ):
        header.append(f"- SecantusDB flags: `{' '.join(embedded.command()[3:])}`")
        print("\n".join(header), flush=True)
        mongo: AsyncMongoClient = AsyncMongoClient(embedded.uri, tz_aware=True)
        raw = RawInserts(embedded.uri, args.seconds)
        try:
            await raw(1)  # the connection pool and the collection
            for n, (title, app_dir) in enumerate(apps):
                db_name = f"order_scaleout_{n}"
                secret = secrets.token_urlsafe(48)
                # The seeded logins' access tokens must outlive the seeding and every row: seeding thousands of
                # accounts at durable commits can take longer than the default 15 minutes.
                settings = Settings(
                    app_env="test",
                    mongodb_uri=embedded.uri,
                    mongodb_db=db_name,
                    jwt_secret=secret,
                    access_token_ttl_seconds=12 * 3600,
                )
                db = mongo[db_name]
                for install in INDEX_INSTALLERS:
                    await install(db)
                known = settings_of(app_dir)
                caps = {k: v for k, v in RAISED_CAPS.items() if k in known}
                env = {
                    "MONGODB_URI": embedded.uri,
                    "MONGODB_DB": db_name,
                    "JWT_SECRET": secret,
                    "RATE_LIMIT_ENABLED": "false",
                    "LOG_LEVEL": "WARNING",
                    "LOG_DIR": log_dir,
                    **caps,
                    **extra,
                }
                passed = ", ".join(f"{k}={v}" for k, v in {**caps, **extra}.items())
                missing = ", ".join(k for k in RAISED_CAPS if k not in known) or "none"
                print(
                    f"\n### {title} (commit {commit_of(app_dir)})\n\n- API settings passed: {passed}; "
                    f"not in this checkout's settings: {missing}\n",
                    flush=True,
                )
                print(f"{title}:", file=sys.stderr, flush=True)
                raws, rows = await run_app(
                    app_dir=app_dir, env=env, db=db, db_pid=embedded.pid or 0, settings=settings, raw=raw, args=args
                )
                tables = results_table(f"POST /orders, {title}", raws, rows, args.workloads)
                print("\n".join([*tables, "", *targets_table(rows)]), flush=True)
        finally:
            await raw.close()
            await mongo.close()


def main() -> int:
    """Parse the options and run :func:`measure`; SIGTERM stops it like Ctrl-C (every child stopped)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each row (default 5)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="times each row runs its layouts in order and in reverse (default 1): more rounds, more of the "
        "machine's minute-to-minute changes cancel out of the ratios",
    )
    parser.add_argument("--app-dir", default=None, help="also serve this checkout against the same server")
    parser.add_argument("--layouts", default=",".join(LAYOUTS), help=f"comma-separated, of {', '.join(LAYOUTS)}")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma-separated, of {', '.join(WORKLOADS)}")
    parser.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="extra environment of the API processes"
    )
    parser.add_argument("--server-logs", default=None, metavar="DIR", help="keep each API process's output in DIR")
    args = parser.parse_args()
    if any("=" not in kv for kv in args.env):
        parser.error("--env takes KEY=VALUE")
    args.layouts = [k.strip() for k in args.layouts.split(",") if k.strip()]
    args.workloads = [k.strip() for k in args.workloads.split(",") if k.strip()]
    unknown = [k for k in args.layouts if k not in LAYOUTS] + [k for k in args.workloads if k not in WORKLOADS]
    if unknown or not args.layouts or not args.workloads:
        parser.error(f"unknown or no layout or workload: {', '.join(unknown)}")

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    # A background job of a non-interactive shell starts with SIGINT ignored; Ctrl-C and ``kill -INT`` must stop it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        asyncio.run(measure(args))
    except KeyboardInterrupt:
        print("interrupted; every process started was stopped", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
