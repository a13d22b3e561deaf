"""Login burst vs. catalog latency: bcrypt must not block the event loop (docs/contract.md §3, auth issue §8).

Starts SecantusDB (``EmbeddedMongo``) and one uvicorn worker as subprocesses on
free loopback ports, then measures the latency of ``GET /products?limit=10``
from one sequential client:

1. idle: nothing else running;
2. under load: while waves of 50 concurrent ``POST /auth/login`` (bcrypt cost
   12, each a real password check) are in flight.

Target: p99 under load ≤ 3 × idle p99. Exits 1 when missed.

Usage::

    .venv/bin/python benchmarks/login_load.py [--samples 1000] [--logins 50] [--factor 3]

All traffic goes to 127.0.0.1; the run is bounded (samples and a time limit).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from pymongo import MongoClient

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend_app.core.security import PASSWORD_HASH_WORKERS, _hash_sync
from backend_app.devtools.api_server import ApiServer
from backend_app.devtools.embedded_db import EmbeddedMongo

PASSWORD = "bench-passw0rd"
ADMIN_PASSWORD = "bench-admin-passw0rd"
DB_NAME = "bench_login_load"
TIME_LIMIT_S = 300.0


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by the nearest-rank method, in the values' unit."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary(label: str, ms: list[float]) -> str:
    return (
        f"{label:<28} n={len(ms):<5} p50={statistics.median(ms):7.2f} ms  "
        f"p95={percentile(ms, 95):7.2f} ms  p99={percentile(ms, 99):7.2f} ms  max={max(ms):7.2f} ms"
    )


def seed(base: str, db_uri: str, users: int) -> None:
    """An admin (through ``create-admin``), 30 products (through the API), ``users`` shoppers."""
    env = {
        **os.environ,
        "APP_ENV": "test",
        "MONGODB_URI": db_uri,
        "MONGODB_DB": DB_NAME,
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
    subprocess.run(
        [
            sys.executable,
            "-m",
            "backend_app",
            "create-admin",
            "--username",
            "bench_admin",
            "--email",
            "bench_admin@example.com",
        ],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
    )
    token = httpx.post(f"{base}/auth/login", json={"username": "bench_admin", "password": ADMIN_PASSWORD}).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    for i in range(30):
        body = {"name": f"Product {i}", "price": 10 + i, "sizes": [{"size": "m", "quantity": 100}]}
        assert httpx.post(f"{base}/products", json=body, headers=headers).status_code == 201
    # Shoppers are stored directly with one precomputed hash: set-up, not the thing measured.
    password_hash = _hash_sync(PASSWORD)
    now = datetime.now(UTC)
    client: MongoClient = MongoClient(db_uri)
    client[DB_NAME].users.insert_many(
        [
            {
                "username": f"shopper_{i}",
                "email": f"shopper_{i}@example.com",
                "password_hash": password_hash,
                "full_name": None,
                "role": "user",
                "is_active": True,
                "created_at": now,
                "updated_at": now,
            }
            for i in range(users)
        ]
    )
    client.close()


async def probe(client: httpx.AsyncClient, samples: int) -> list[float]:
    """``samples`` sequential ``GET /products?limit=10``; latencies in ms."""
    out: list[float] = []
    for _ in range(samples):
        start = time.perf_counter()
        response = await client.get("/products", params={"limit": 10})
        out.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.text
    return out


async def login_waves(
    base: str, logins: int, min_waves: int, enough: asyncio.Event, done: asyncio.Event
) -> list[float]:
    """Waves of ``logins`` concurrent logins until ``min_waves`` ran and ``enough`` is set; latencies in ms."""
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=logins, max_keepalive_connections=logins)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:

        async def one(i: int) -> None:
            start = time.perf_counter()
            response = await client.post("/auth/login", json={"username": f"shopper_{i}", "password": PASSWORD})
            latencies.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200, response.text

        waves = 0
        while waves < min_waves or not enough.is_set():
            await asyncio.gather(*(one(i) for i in range(logins)))
            waves += 1
    done.set()
    return latencies


async def measure(base: str, samples: int, logins: int) -> tuple[list[float], list[float], list[float], float]:
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        await probe(client, 50)  # warm-up: connections, indexes, code paths
        idle = await probe(client, samples)

        enough, done = asyncio.Event(), asyncio.Event()
        started = time.perf_counter()
        load_task = asyncio.create_task(login_waves(base, logins, 1, enough, done))
        await asyncio.sleep(0.05)  # the burst is in flight
        loaded: list[float] = []
        while not done.is_set():
            start = time.perf_counter()
            response = await client.get("/products", params={"limit": 10})
            loaded.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200
            if len(loaded) >= samples:
                enough.set()
        login_ms = await load_task
        return idle, loaded, login_ms, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=1000, help="probe requests per phase (at least)")
    parser.add_argument("--logins", type=int, default=50, help="concurrent logins per wave")
    parser.add_argument("--factor", type=float, default=3.0, help="allowed p99 ratio, load / idle")
    args = parser.parse_args()

    print(f"CPUs: {os.cpu_count()}, bcrypt pool workers: {PASSWORD_HASH_WORKERS}, bcrypt cost 12")
    with (
        EmbeddedMongo(storage_path=":memory:") as db,
        ApiServer(env={"MONGODB_URI": db.uri, "MONGODB_DB": DB_NAME, "RATE_LIMIT_ENABLED": "false"}) as api,
    ):
        seed(api.base_url, db.uri, args.logins)
        idle, loaded, login_ms, wall = asyncio.run(
            asyncio.wait_for(measure(api.base_url, args.samples, args.logins), timeout=TIME_LIMIT_S)
        )

    idle_p99, load_p99 = percentile(idle, 99), percentile(loaded, 99)
    ratio = load_p99 / idle_p99
    print(summary("GET /products idle", idle))
    print(summary(f"GET /products, {args.logins} logins", loaded))
    print(summary("POST /auth/login", login_ms))
    print(f"logins: {len(login_ms)} in {wall:.1f} s ({len(login_ms) / wall:.1f}/s)")
    verdict = "PASS" if ratio <= args.factor else "FAIL"
    print(
        f"p99 under load / idle p99 = {load_p99:.2f} / {idle_p99:.2f} = {ratio:.2f}x "
        f"(target <= {args.factor}x): {verdict}"
    )
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
