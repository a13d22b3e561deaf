"""Catalog read throughput with the server-side page cache on and off, and PyMongo direct for reference.

Starts SecantusDB, creates the DummyJSON catalog scaled to 2,000 products with
the app's ``products.service.create_product`` (the 194 products repeated,
names suffixed ``(2)``, ``(3)``...; sizes and stock from ``product_body`` of
``replay_dummyjson.py``), starts uvicorn (``RATE_LIMIT_ENABLED=false``,
``MONGODB_MAX_TIME_MS=60000``) on a free port per configuration, and for each
read keeps 16 connections busy for a fixed time, reporting requests per
second and p50/p99 latency:

- ``GET /products`` (first page), ``?name=phone``, ``?size=M``;
- against a server with ``CACHE_ENABLED=true`` (in-process cache; warmed
  first), one with ``CACHE_ENABLED=false``, and optionally one with
  ``CACHE_URI`` (``--cache-uri redis://...``, a Redis you run);
- a revalidation (``If-None-Match`` with the current tag → 304) on the cached server;
- the ceiling of this machine's HTTP stack: a 404 for an unknown route
  (middleware, no database work), on the same server with the same client;
- the same three queries sent straight to the database with PyMongo's async
  client (the repository's filter and projection, 11 rows as the API fetches).

It checks that every configuration returns the same bodies, and exits 1 if
the cached first page serves less than 5× the uncached rate.

Usage::

    .venv/bin/python benchmarks/catalog_cache.py [--data DIR] [--products 2000] [--seconds 5] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.replay_dummyjson import Timings, product_body

DB_NAME = "catalog_bench"
#: The measured reads: label → query parameters of ``GET /products``.
QUERIES: dict[str, dict[str, str]] = {
    "first page": {},
    "name filter": {"name": "phone"},
    "size filter": {"size": "M"},
}
#: The rate the cached first page must reach, as a multiple of the uncached one (issue).
REQUIRED_SPEED_UP = 5.0


def scaled_catalog(products: list[dict[str, Any]], total: int) -> list[dict[str, Any]]:
    """``total`` ``POST /products`` bodies: the DummyJSON products repeated, copies named ``"<title> (n)"``."""
    bodies = []
    for i in range(total):
        body = product_body(products[i % len(products)])
        copy = i // len(products)
        if copy:
            body["name"] = f"{body['name']} ({copy + 1})"
        bodies.append(body)
    return bodies


async def load(
    timings: Timings, name: str, call: Callable[[], Awaitable[Any]], *, seconds: float, concurrency: int
) -> None:
    """Keep ``concurrency`` callers running ``call`` back to back for ``seconds``; record each latency."""
    samples = timings.samples[name]
    deadline = time.perf_counter() + seconds

    async def caller() -> None:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            await call()
            samples.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    timings.wall[name] = time.perf_counter() - start


def rate(timings: Timings, name: str) -> float:
    """Requests per second of the measured read ``name``."""
    return len(timings.samples[name]) / timings.wall[name]


def http_read(
    http: httpx.AsyncClient, params: dict[str, str], expected: int = 200, **headers: str
) -> Callable[[], Awaitable[None]]:
    """A ``GET /products`` call that fails loudly on any other status than ``expected``."""

    async def call() -> None:
        response = await http.get("/products", params=params, headers=headers)
        if response.status_code != expected:
            raise RuntimeError(f"GET /products {params}: {response.status_code} {response.text[:200]}")

    return call


async def measure_api(
    timings: Timings, label: str, base_url: str, *, seconds: float, concurrency: int, revalidate: bool = False
) -> dict[str, bytes]:
    """Warm up and measure every query against ``base_url``; return each query's body."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    bodies: dict[str, bytes] = {}
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as http:
        for query, params in QUERIES.items():
            first = await http.get("/products", params=params)
            bodies[query] = first.content
            await load(timings, "warm-up", http_read(http, params), seconds=min(1.0, seconds), concurrency=concurrency)
            await load(timings, f"{label}: {query}", http_read(http, params), seconds=seconds, concurrency=concurrency)
        if revalidate:
            etag = (await http.get("/products")).headers["etag"]
            call = http_read(http, {}, expected=304, **{"If-None-Match": etag})
            await load(timings, f"{label}: 304 first page", call, seconds=seconds, concurrency=concurrency)

            async def no_route() -> None:
                await http.get("/no-such-route")

            await load(timings, "ceiling: 404, no db work", no_route, seconds=seconds, concurrency=concurrency)
    del timings.samples["warm-up"], timings.wall["warm-up"]
    return bodies


async def measure_pymongo(timings: Timings, mongo_uri: str, *, seconds: float, concurrency: int) -> None:
    """The same three queries straight to the database: ``find(filter, projection).sort(_id).limit(11)``.

    The filter and projection are the repository's (``ProductFilter.to_query``,
    ``LIST_PROJECTION``); 11 rows, as the API fetches ``limit + 1``.
    """
    from pymongo import ASCENDING, AsyncMongoClient

    from backend_app.products import repository
    from backend_app.products.repository import ProductFilter

    client: AsyncMongoClient = AsyncMongoClient(mongo_uri, maxPoolSize=concurrency)
    products = client[DB_NAME][repository.COLLECTION]
    try:
        for query, params in QUERIES.items():
            where = ProductFilter(name_pattern=params.get("name"), size=params.get("size")).to_query()

            async def call(where: dict[str, Any] = where) -> None:
                found = products.find(where, repository.LIST_PROJECTION).sort("_id", ASCENDING).limit(11)
                await found.to_list()

            await load(timings, "warm-up", call, seconds=min(1.0, seconds), concurrency=concurrency)
            await load(timings, f"PyMongo direct: {query}", call, seconds=seconds, concurrency=concurrency)
    finally:
        await client.close()
    del timings.samples["warm-up"], timings.wall["warm-up"]


async def seed(timings: Timings, mongo_uri: str, bodies: list[dict[str, Any]], concurrency: int) -> None:
    """Create the products with the app's own ``products.service.create_product`` (validation, insert, version bump).

    Through the service rather than ``POST /products``, so seeding needs no admin login and is
    not part of what is measured.

    Raises:
        pydantic.ValidationError: a body is not a valid ``ProductCreate``.
    """
    from pymongo import AsyncMongoClient

    from backend_app.products import service
    from backend_app.products.schemas import ProductCreate

    client: AsyncMongoClient = AsyncMongoClient(mongo_uri, maxPoolSize=concurrency)
    db = client[DB_NAME]

    def create(body: dict[str, Any]) -> Callable[[], Awaitable[str]]:
        return lambda: service.create_product(db, product=ProductCreate.model_validate(body), actor="benchmark")

    try:
        await timings.run("create_product (seed)", [create(b) for b in bodies], concurrency)
    finally:
        await client.close()


async def run(args: argparse.Namespace) -> int:
    """Start the servers, seed, measure, print; 0 when the cached first page is ≥ 5× the uncached rate."""
    from backend_app.devtools.api_server import ApiServer
    from backend_app.devtools.embedded_db import EmbeddedMongo

    products = json.loads((args.data / "products.json").read_text())
    bodies = scaled_catalog(products, args.products)
    timings = Timings()
    with EmbeddedMongo(storage_path=":memory:") as mongo:
        await seed(timings, mongo.uri, bodies, args.concurrency)
        base_env = {
            "MONGODB_URI": mongo.uri,
            "MONGODB_DB": DB_NAME,
            "RATE_LIMIT_ENABLED": "false",
            # 16 uncached scans queue up in the embedded server past the default 2 s limit (then 503).
            "MONGODB_MAX_TIME_MS": "60000",
        }
        configs: list[tuple[str, dict[str, str]]] = [
            ("API cache on", {"CACHE_ENABLED": "true"}),
            ("API cache off", {"CACHE_ENABLED": "false"}),
        ]
        if args.cache_uri:
            configs.append(("API cache redis", {"CACHE_ENABLED": "true", "CACHE_URI": args.cache_uri}))
        seen: dict[str, dict[str, bytes]] = {}
        for n, (label, overrides) in enumerate(configs):
            with ApiServer(env={**base_env, **overrides}) as api:
                seen[label] = await measure_api(
                    timings, label, api.base_url, seconds=args.seconds, concurrency=args.concurrency, revalidate=n == 0
                )
        await measure_pymongo(timings, mongo.uri, seconds=args.seconds, concurrency=args.concurrency)

    print(f"\n{args.products} products, {args.concurrency} concurrent connections, {args.seconds:g} s per read")
    print(timings.report())
    print()
    reference = seen["API cache off"]
    mismatched = [f"{label}: {q}" for label, got in seen.items() for q in QUERIES if got[q] != reference[q]]
    if mismatched:
        print(f"FAILED: bodies differ from the uncached server's for {mismatched}")
        return 1
    print(f"bodies identical with the cache on and off for {len(QUERIES)} queries")
    status = 0
    for query in QUERIES:
        on = rate(timings, f"API cache on: {query}")
        off = rate(timings, f"API cache off: {query}")
        print(f"cached / uncached, {query}: {on / off:.1f}x")
        if query == "first page" and on / off < REQUIRED_SPEED_UP:
            print(f"FAILED: the cached first page is not {REQUIRED_SPEED_UP:g}x the uncached rate")
            status = 1
    return status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "dummyjson")
    parser.add_argument("--products", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per read")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--cache-uri", help="also measure with CACHE_URI (e.g. redis://127.0.0.1:6379/1)")
    args = parser.parse_args()
    if not (args.data / "products.json").exists():
        parser.error(f"no DummyJSON data at {args.data}")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
