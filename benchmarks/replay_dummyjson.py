"""Replay the DummyJSON catalog and carts against a running storefront over HTTP.

Creates the 194 products (stock from the data; clothing and shoe categories
get sizes S/M/L), places the 208 carts as orders for their users (as an admin,
who may order for anyone, docs/contract.md §3), then checks:

- every accepted order's ``total`` equals the cart's ``total`` exactly;
- every product's stock fell by exactly what the accepted orders took;
- ``GET /orders/{user_id}`` shows each accepted cart's product names.

It prints requests per second and latency percentiles for each call.

Usage::

    # start its own SecantusDB and uvicorn on free ports (default):
    .venv/bin/python benchmarks/replay_dummyjson.py
    # or drive a service that is already running (needs an admin's token):
    .venv/bin/python benchmarks/replay_dummyjson.py --base-url http://127.0.0.1:8000 --admin-token "$TOKEN"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZED_CATEGORIES = {"mens-shirts", "mens-shoes", "womens-dresses", "womens-shoes", "tops"}
SIZES = ("S", "M", "L")


class Timings:
    """Latencies (seconds) and wall time per call name."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.wall: dict[str, float] = {}

    async def run(self, name: str, calls: list[Callable[[], Awaitable[Any]]], concurrency: int) -> list[Any]:
        """Run ``calls`` with at most ``concurrency`` in flight; record each latency."""
        gate = asyncio.Semaphore(concurrency)

        async def timed(call: Callable[[], Awaitable[Any]]) -> Any:
            async with gate:
                start = time.perf_counter()
                result = await call()
                self.samples[name].append(time.perf_counter() - start)
                return result

        start = time.perf_counter()
        results = await asyncio.gather(*(timed(c) for c in calls))
        self.wall[name] = time.perf_counter() - start
        return results

    def report(self) -> str:
        lines = [f"{'call':<28}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"]
        for name, samples in self.samples.items():
            ordered = sorted(samples)
            p50 = statistics.median(ordered) * 1000
            p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
            lines.append(f"{name:<28}{len(samples):>9}{len(samples) / self.wall[name]:>9.1f}{p50:>9.1f}{p99:>9.1f}")
        return "\n".join(lines)


def product_body(item: dict[str, Any]) -> dict[str, Any]:
    """The ``POST /products`` body for one DummyJSON product."""
    body: dict[str, Any] = {
        "name": item["title"],
        "price": item["price"],
        "description": item.get("description", "")[:2000],
        "category": item["category"],
        "rating": item.get("rating"),
    }
    if item["category"] in SIZED_CATEGORIES:
        share, rest = divmod(item["stock"], len(SIZES))
        body["sizes"] = [{"size": s, "quantity": share + (1 if i < rest else 0)} for i, s in enumerate(SIZES)]
    else:
        body["stock"] = item["stock"]
    return body


async def replay(base_url: str, admin_token: str, data_dir: Path, concurrency: int) -> int:
    """Drive the service; return 0 when every check holds, 1 otherwise."""
    products = json.loads((data_dir / "products.json").read_text())
    users = {u["id"]: u["username"] for u in json.loads((data_dir / "users.json").read_text())}
    carts = json.loads((data_dir / "carts.json").read_text())
    admin = {"Authorization": f"Bearer {admin_token}"}
    timings = Timings()
    failures: list[str] = []

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, headers=admin, timeout=30, limits=limits) as http:

        def create(item: dict[str, Any]) -> Callable[[], Awaitable[httpx.Response]]:
            return lambda: http.post("/products", json=product_body(item))

        created = await timings.run("POST /products", [create(p) for p in products], concurrency)
        ids: dict[int, str] = {}
        for item, response in zip(products, created, strict=True):
            if response.status_code != 201:
                failures.append(f"product {item['id']}: {response.status_code} {response.text[:200]}")
            else:
                ids[item["id"]] = response.json()["id"]
        initial_stock = {p["id"]: p["stock"] for p in products}

        def place(cart: dict[str, Any]) -> Callable[[], Awaitable[httpx.Response]]:
            body = {
                "userId": users[cart["userId"]],
                "items": [{"productId": ids[line["id"]], "qty": line["quantity"]} for line in cart["products"]],
            }
            return lambda: http.post("/orders", json=body)

        placed = await timings.run("POST /orders", [place(c) for c in carts], concurrency)
        accepted: dict[str, dict[str, Any]] = {}
        sold: dict[int, int] = defaultdict(int)
        statuses: dict[int, int] = defaultdict(int)
        for cart, response in zip(carts, placed, strict=True):
            statuses[response.status_code] += 1
            if response.status_code == 201:
                accepted[response.json()["id"]] = cart
                for line in cart["products"]:
                    sold[line["id"]] += line["quantity"]
            elif response.status_code != 409:
                failures.append(f"cart {cart['id']}: {response.status_code} {response.text[:200]}")

        def list_orders(username: str) -> Callable[[], Awaitable[httpx.Response]]:
            return lambda: http.get(f"/orders/{username}", params={"limit": 100})

        usernames = sorted({users[c["userId"]] for c in carts})
        listed = await timings.run("GET /orders/{user_id}", [list_orders(u) for u in usernames], concurrency)
        seen_orders: dict[str, dict[str, Any]] = {}
        for response in listed:
            for order in response.json()["data"]:
                seen_orders[order["id"]] = order
        for order_id, cart in accepted.items():
            order = seen_orders.get(order_id)
            if order is None:
                failures.append(f"order {order_id} of cart {cart['id']} not listed")
                continue
            if Decimal(str(order["total"])) != Decimal(str(cart["total"])):
                failures.append(f"cart {cart['id']}: total {order['total']} != {cart['total']}")
            # Duplicate lines of a cart are merged into one (docs/contract.md §5), first-seen order kept.
            expected_lines: dict[str, int] = {}
            for line in cart["products"]:
                expected_lines[line["title"]] = expected_lines.get(line["title"], 0) + line["quantity"]
            got_lines = {line["productDetails"]["name"]: line["qty"] for line in order["items"]}
            if list(got_lines.items()) != list(expected_lines.items()):
                failures.append(f"cart {cart['id']}: lines {got_lines} != {expected_lines}")

        def detail(product_id: str) -> Callable[[], Awaitable[httpx.Response]]:
            return lambda: http.get(f"/products/{product_id}")

        details = await timings.run("GET /products/{id}", [detail(ids[p["id"]]) for p in products], concurrency)
        for item, response in zip(products, details, strict=True):
            expected = initial_stock[item["id"]] - sold[item["id"]]
            if response.json()["stock"] != expected:
                failures.append(f"product {item['id']}: stock {response.json()['stock']} != {expected}")

        def page(offset: int) -> Callable[[], Awaitable[httpx.Response]]:
            return lambda: http.get("/products", params={"limit": 20, "offset": offset})

        pages = [page(o) for o in range(0, len(products), 20)] * 10
        await timings.run("GET /products (pages)", pages, concurrency)

        def search(term: str) -> Callable[[], Awaitable[httpx.Response]]:
            return lambda: http.get("/products", params={"name": term, "limit": 20})

        terms = ["phone", "shirt", "^apple", "watch", "oil", "ring"] * 20
        await timings.run("GET /products?name=", [search(t) for t in terms], concurrency)

    print(f"products created: {len(ids)}/{len(products)}")
    print(f"orders: {dict(sorted(statuses.items()))} (201 accepted, 409 insufficient stock)")
    print(f"accepted orders checked (exact total, product names and merged qty per line): {len(accepted)}")
    print(f"products checked (stock = initial - sold): {len(products)}")
    print(f"units sold: {sum(sold.values())}")
    print()
    print(timings.report())
    print()
    if failures:
        print(f"FAILED checks ({len(failures)}):")
        for failure in failures[:50]:
            print("  " + failure)
        return 1
    print("all checks passed")
    return 0


async def spawn_and_replay(data_dir: Path, concurrency: int) -> int:
    """Start SecantusDB and uvicorn on free ports, seed an admin, replay, stop both."""
    from pymongo import AsyncMongoClient

    from backend_app.core.security import _hash_sync
    from backend_app.devtools.api_server import ApiServer
    from backend_app.devtools.embedded_db import EmbeddedMongo
    from backend_app.devtools.seed import seed_user
    from config import Settings

    secret = uuid.uuid4().hex * 2
    with EmbeddedMongo(storage_path=":memory:") as mongo:
        settings = Settings(app_env="test", mongodb_uri=mongo.uri, mongodb_db="replay", jwt_secret=secret)
        env = {"MONGODB_URI": mongo.uri, "MONGODB_DB": "replay", "JWT_SECRET": secret, "RATE_LIMIT_ENABLED": "false"}
        with ApiServer(env=env) as api:
            client: AsyncMongoClient = AsyncMongoClient(mongo.uri)
            headers = await seed_user(
                client["replay"],
                settings,
                username="replay_admin",
                role="admin",
                password_hash=_hash_sync(uuid.uuid4().hex),
            )
            await client.close()
            return await replay(api.base_url, headers["Authorization"].removeprefix("Bearer "), data_dir, concurrency)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "dummyjson")
    parser.add_argument("--base-url", help="a running service; default: start one")
    parser.add_argument("--admin-token", help="an admin's access token (with --base-url)")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    if not (args.data / "products.json").exists():
        parser.error(f"no DummyJSON data at {args.data}")
    if args.base_url:
        if not args.admin_token:
            parser.error("--base-url needs --admin-token")
        return asyncio.run(replay(args.base_url, args.admin_token, args.data, args.concurrency))
    return asyncio.run(spawn_and_replay(args.data, args.concurrency))


if __name__ == "__main__":
    sys.exit(main())
