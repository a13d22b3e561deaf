"""Per-request cost of the platform middleware (request id, metrics, access log, security headers, rate limit,
body limit) and of the audit trail on admin writes.

Calls a trivial route in-process (httpx ``ASGITransport``, no network, no
database access in the route) and reports the mean, median and p95 latency per
request for:

- ``bare``: a FastAPI app with only that route;
- ``stack, limits off``: ``create_app`` with ``RATE_LIMIT_ENABLED=false``;
- ``stack, memory://``: rate limiting counted in process memory;
- ``stack, redis://``: rate limiting counted in a local ``redis-server``
  (skipped when the binary is missing);
- ``bare + MetricsMiddleware`` and ``stack, no metrics`` (``stack, limits
  off`` without it): the Prometheus middleware's per-request cost,
  alone and within the stack. Configurations take turns in rounds of
  ``ROUND`` requests so the shared machine's drift hits them alike.
  Run once more with ``PROMETHEUS_MULTIPROC_DIR=<empty dir>`` for the cost in
  multiprocess mode (chosen when prometheus_client is imported).

Then the audit trail's cost on an admin write, on the same database, in the
same run (``--writes`` sequential writes each):

- ``driver: update``: the raw driver's ``find_one_and_update`` of a product
  (what a catalog ``PATCH`` wrote before the audit trail);
- ``driver: txn + audit``: the raw driver doing what an audited write does: a
  transaction with the read of the old state, the update and the audit insert;
- ``API: PATCH /products/{id}``: the whole audited request through the app
  (auth, validation, transaction, audit entry, catalog version bump).

Run: ``.venv/bin/python -m benchmarks.middleware_overhead [--requests 3000] [--writes 300]``.
The embedded database is started only because ``create_app``'s lifespan
opens a client; the measured route never touches it. Logs go to a temporary
directory (the access log line is part of the measured cost).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from bson import ObjectId
from fastapi import FastAPI
from pymongo import AsyncMongoClient, ReturnDocument

from backend_app.core.middleware import MetricsMiddleware
from backend_app.core.security import _hash_sync
from backend_app.devtools.embedded_db import EmbeddedMongo
from backend_app.devtools.redis_server import REDIS_SERVER, RedisServer
from backend_app.devtools.seed import seed_user
from backend_app.main import create_app
from config import Settings

#: Requests per configuration per round: configurations take turns, so drift of the shared machine hits all alike.
ROUND = 100


async def measure_interleaved(apps: list[FastAPI], requests: int) -> list[tuple[float, float, float]]:
    """Mean, median and p95 latency (µs) of ``GET /bench`` on each of ``apps``, measured in alternating rounds."""
    samples: list[list[float]] = [[] for _ in apps]
    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for app in apps:
            await stack.enter_async_context(LifespanManager(app))
            transport = httpx.ASGITransport(app=app)
            clients.append(
                await stack.enter_async_context(httpx.AsyncClient(transport=transport, base_url="http://bench"))
            )
        for http in clients:
            for _ in range(200):  # warm-up
                await http.get("/bench")
        for first in range(0, requests, ROUND):
            for http, into in zip(clients, samples, strict=True):
                for n in range(first, min(first + ROUND, requests)):
                    # Vary the caller so no rate limit is hit: the cost measured is counting, not refusing.
                    headers = {"X-Forwarded-For": f"198.51.100.{n % 250}"}
                    started = time.perf_counter()
                    response = await http.get("/bench", headers=headers)
                    into.append((time.perf_counter() - started) * 1e6)
                    assert response.status_code == 200, response.text
    return [summary(list(run)) for run in samples]


def without_metrics(app: FastAPI) -> FastAPI:
    """``app`` with the Prometheus middleware taken out of its stack (before the stack is built)."""
    app.user_middleware = [m for m in app.user_middleware if m.cls is not MetricsMiddleware]
    return app


def summary(samples: list[float]) -> tuple[float, float, float]:
    """Mean, median and p95 of ``samples``."""
    samples.sort()
    return statistics.fmean(samples), samples[len(samples) // 2], samples[int(len(samples) * 0.95)]


async def timed(n: int, call: Any) -> tuple[float, float, float]:
    """Mean, median and p95 (µs) of ``n`` sequential awaits of ``call(i)``, after 20 warm-up calls."""
    for i in range(20):
        await call(i)
    samples = []
    for i in range(n):
        started = time.perf_counter()
        await call(i)
        samples.append((time.perf_counter() - started) * 1e6)
    return summary(samples)


async def measure_audit(uri: str, settings: Settings, writes: int) -> list[tuple[str, float, float, float]]:
    """The audit trail's cost on an admin write: raw driver without and with it, then the API's audited PATCH."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    db = client["bench_audit"]
    products, audit_log = db["products"], db["audit_log"]
    product_id = (await products.insert_one({"name": "Shirt", "price": 1, "deleted_at": None})).inserted_id

    async def plain_update(i: int) -> None:
        await products.find_one_and_update(
            {"_id": product_id, "deleted_at": None}, {"$set": {"name": f"n{i}"}}, return_document=ReturnDocument.AFTER
        )

    async def audited_update(i: int) -> None:
        async def work(session: Any) -> None:
            before = await products.find_one({"_id": product_id, "deleted_at": None}, session=session)
            after = await products.find_one_and_update(
                {"_id": product_id, "deleted_at": None},
                {"$set": {"name": f"a{i}"}},
                return_document=ReturnDocument.AFTER,
                session=session,
            )
            await audit_log.insert_one(
                {
                    "_id": ObjectId(),
                    "actor": "bench",
                    "before": {"name": before["name"]},
                    "after": {"name": after["name"]},
                },
                session=session,
            )

        async with client.start_session() as session:
            await session.with_transaction(work)

    results = [("driver: update", *await timed(writes, plain_update))]
    results.append(("driver: txn + audit", *await timed(writes, audited_update)))
    await client.drop_database("bench_audit")
    await client.close()

    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with LifespanManager(app), httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
        headers = await seed_user(
            app.state.db, settings, username="bench_admin", role="admin", password_hash=_hash_sync("x" * 12)
        )
        created = await http.post("/products", json={"name": "Shirt", "price": 1.0, "sizes": []}, headers=headers)
        api_id = created.json()["id"]

        async def api_patch(i: int) -> None:
            response = await http.patch(f"/products/{api_id}", json={"name": f"p{i}"}, headers=headers)
            assert response.status_code == 200, response.text

        results.append(("API: PATCH /products/{id}", *await timed(writes, api_patch)))
        await app.state.mongo_client.drop_database(settings.mongodb_db)
    return results


def with_bench_route(app: FastAPI) -> FastAPI:
    async def bench() -> dict[str, Any]:
        return {"ok": True}

    app.add_api_route("/bench", bench, methods=["GET"])
    return app


async def main(requests: int, writes: int) -> None:
    log_dir = tempfile.mkdtemp(prefix="bench-logs-")
    results: list[tuple[str, float, float, float]] = []
    with EmbeddedMongo(storage_path=":memory:") as db:
        base: dict[str, Any] = {
            "app_env": "test",
            "mongodb_uri": db.uri,
            "mongodb_db": "bench",
            "log_dir": log_dir,
            "log_level": "INFO",
            "rate_limit_default": "1000000/minute",
            "trusted_proxies": ["127.0.0.1"],
        }
        bare_with_metrics = with_bench_route(FastAPI())
        bare_with_metrics.add_middleware(MetricsMiddleware)
        configs: list[tuple[str, FastAPI]] = [
            ("bare FastAPI", with_bench_route(FastAPI())),
            ("bare + MetricsMiddleware", bare_with_metrics),
            ("stack, limits off", with_bench_route(create_app(Settings(**{**base, "rate_limit_enabled": False})))),
            (
                "stack, no metrics",
                without_metrics(with_bench_route(create_app(Settings(**{**base, "rate_limit_enabled": False})))),
            ),
            ("stack, memory://", with_bench_route(create_app(Settings(**{**base, "rate_limit_enabled": True})))),
        ]
        with contextlib.ExitStack() as stack:
            if REDIS_SERVER:
                redis = stack.enter_context(RedisServer(workdir=log_dir))
                redis_settings = Settings(**{**base, "rate_limit_enabled": True, "rate_limit_storage_uri": redis.url})
                configs.append(("stack, redis://", with_bench_route(create_app(redis_settings))))
            measured = await measure_interleaved([app for _, app in configs], requests)
        results.extend((label, *figures) for (label, _), figures in zip(configs, measured, strict=True))
        audit_settings = Settings(**{**base, "rate_limit_enabled": False, "mongodb_db": "bench_api"})
        audit_results = await measure_audit(db.uri, audit_settings, writes)
    # Print after the runs: the app's JSON logs also go to stdout.
    mode = "multiprocess" if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else "single-process"
    print(f"\n{requests} sequential requests per configuration (GET /bench, in-process ASGI; metrics {mode})")
    print(f"{'configuration':<28} {'mean µs':>9} {'p50 µs':>9} {'p95 µs':>9}")
    for label, mean, p50, p95 in results:
        print(f"{label:<28} {mean:>9.0f} {p50:>9.0f} {p95:>9.0f}")
    print(f"\n{writes} sequential admin writes per configuration (same embedded database)")
    print(f"{'configuration':<28} {'mean µs':>9} {'p50 µs':>9} {'p95 µs':>9}")
    for label, mean, p50, p95 in audit_results:
        print(f"{label:<28} {mean:>9.0f} {p50:>9.0f} {p95:>9.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--writes", type=int, default=300)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.writes))
