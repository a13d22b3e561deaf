"""Per-request cost of the platform middleware (request id, access log, security headers, rate limit, body limit).

Calls a trivial route in-process (httpx ``ASGITransport``, no network, no
database access in the route) and reports the mean and p95 latency per
request for:

- ``bare``: a FastAPI app with only that route;
- ``stack, limits off``: ``create_app`` with ``RATE_LIMIT_ENABLED=false``;
- ``stack, memory://``: rate limiting counted in process memory;
- ``stack, redis://``: rate limiting counted in a local ``redis-server``
  (skipped when the binary is missing).

Run: ``.venv/bin/python -m benchmarks.middleware_overhead [--requests 3000]``.
The embedded database is started only because ``create_app``'s lifespan
opens a client; the measured route never touches it. Logs go to a temporary
directory (the access log line is part of the measured cost).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from backend_app.devtools.embedded_db import EmbeddedMongo
from backend_app.devtools.redis_server import REDIS_SERVER, RedisServer
from backend_app.main import create_app
from config import Settings


async def measure(app: FastAPI, requests: int) -> tuple[float, float]:
    """Mean and p95 latency (µs) of ``GET /bench`` on ``app``."""
    transport = httpx.ASGITransport(app=app)
    async with LifespanManager(app), httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
        for _ in range(200):  # warm-up
            await http.get("/bench")
        samples = []
        for n in range(requests):
            # Vary the caller so no rate limit is hit: the cost measured is counting, not refusing.
            headers = {"X-Forwarded-For": f"198.51.100.{n % 250}"}
            started = time.perf_counter()
            response = await http.get("/bench", headers=headers)
            samples.append((time.perf_counter() - started) * 1e6)
            assert response.status_code == 200, response.text
    samples.sort()
    return statistics.fmean(samples), samples[int(len(samples) * 0.95)]


def with_bench_route(app: FastAPI) -> FastAPI:
    async def bench() -> dict[str, Any]:
        return {"ok": True}

    app.add_api_route("/bench", bench, methods=["GET"])
    return app


async def main(requests: int) -> None:
    log_dir = tempfile.mkdtemp(prefix="bench-logs-")
    results: list[tuple[str, float, float]] = []
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
        results.append(("bare FastAPI", *await measure(with_bench_route(FastAPI()), requests)))
        configs: list[tuple[str, dict[str, Any]]] = [
            ("stack, limits off", {"rate_limit_enabled": False}),
            ("stack, memory://", {"rate_limit_enabled": True}),
        ]
        with contextlib.ExitStack() as stack:
            if REDIS_SERVER:
                redis = stack.enter_context(RedisServer(workdir=log_dir))
                configs.append(("stack, redis://", {"rate_limit_enabled": True, "rate_limit_storage_uri": redis.url}))
            for label, overrides in configs:
                app = with_bench_route(create_app(Settings(**{**base, **overrides})))
                results.append((label, *await measure(app, requests)))
    # Print after the runs: the app's JSON logs also go to stdout.
    print(f"\n{requests} sequential requests per configuration (GET /bench, in-process ASGI)")
    print(f"{'configuration':<20} {'mean µs':>9} {'p95 µs':>9}")
    for label, mean, p95 in results:
        print(f"{label:<20} {mean:>9.0f} {p95:>9.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    asyncio.run(main(parser.parse_args().requests))
