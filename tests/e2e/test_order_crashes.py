"""Orders survive crashes: of the API at each step of placing, and of the database.

End to end: real uvicorn processes (``ApiServer``) and SecantusDB processes
(``EmbeddedMongo``), killed for real.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from backend_app.devtools.api_server import ApiServer
from backend_app.devtools.embedded_db import EmbeddedMongo
from backend_app.devtools.seed import seed_user
from backend_app.orders.faults import FAULT_EXIT_STATUS
from backend_app.orders.faults import PLACING_STEPS as STEPS
from backend_app.products.repository import new_product_document
from backend_app.products.schemas import ProductCreate
from config import Settings
from tests.support.helpers import stored_available
from tests.support.inventory import inventory_violations
from tests.support.servers import api_env, prepared_database

START_STOCK = 50
#: Headers of the extra shoppers :func:`_seed` created, by username.
SHOPPERS: dict[str, dict[str, str]] = {}


async def _seed(
    uri: str, db_name: str, secret: str, password_hash: str, *, shoppers: int = 1
) -> tuple[dict[str, str], dict[str, str]]:
    """An admin and shoppers (``crash_shopper``, ``crash_shopper_1``, ...) with live logins; indexes installed.

    Returns the admin's headers and the first shopper's; the others' are in ``SHOPPERS``.
    """
    settings = Settings(app_env="test", mongodb_uri=uri, mongodb_db=db_name, jwt_secret=secret)
    async with prepared_database(uri, db_name) as db:
        admin = await seed_user(db, settings, username="crash_admin", role="admin", password_hash=password_hash)
        shopper = await seed_user(db, settings, username="crash_shopper", role="user", password_hash=password_hash)
        SHOPPERS.clear()
        for i in range(1, shoppers):
            name = f"crash_shopper_{i}"
            SHOPPERS[name] = await seed_user(db, settings, username=name, role="user", password_hash=password_hash)
    return admin, shopper


def _units_recorded(orders: list[dict[str, Any]], product_id: str) -> int:
    """Units of ``product_id`` held by pending or completed orders."""
    return sum(
        line["qty"]
        for order in orders
        if order["status"] in ("pending", "completed")
        for line in order["items"]
        if line["productDetails"]["id"] == product_id
    )


def test_api_killed_at_each_step_of_placing_leaks_nothing(
    mongo_server: EmbeddedMongo, db_name: str, tmp_path: Path, password_hash: str
) -> None:
    """For each step of the write path, an API process exits there in the middle of a two-line order
    (with an Idempotency-Key); after a restart, each product's stock = start - units of recorded orders.

    Each step has its own shopper and two products: a transaction left open by a dead process
    keeps the documents it wrote (products, the owner's holds) busy until the server reaps
    it (60 s, as MongoDB's ``transactionLifetimeLimitSeconds``), see docs/architecture.md (Orders and stock).
    """
    secret = secrets.token_urlsafe(48)
    admin, _ = asyncio.run(_seed(mongo_server.uri, db_name, secret, password_hash, shoppers=len(STEPS) + 1))
    shoppers = dict(zip(STEPS, SHOPPERS.items(), strict=True))
    env = api_env(mongo_server.uri, db_name, secret, tmp_path)
    products = asyncio.run(
        _insert_products(mongo_server.uri, db_name, [f"{step}-{i}" for step in STEPS for i in range(2)])
    )
    products = {step: products[2 * k : 2 * k + 2] for k, step in enumerate(STEPS)}
    for step in STEPS:
        body = {"items": [{"productId": products[step][0], "qty": 2}, {"productId": products[step][1], "qty": 3}]}
        with ApiServer(env={**env, "ORDER_FAULT_STEP": step}) as crashing:
            headers = {**shoppers[step][1], "Idempotency-Key": f"crash-{step}"}
            with pytest.raises(httpx.HTTPError):
                response = httpx.post(f"{crashing.base_url}/orders", json=body, headers=headers, timeout=30)
                pytest.fail(f"{step}: answered {response.status_code} {response.text}")
            assert crashing.wait(timeout_s=10) == FAULT_EXIT_STATUS, step
    with ApiServer(env=env) as server:
        all_orders = httpx.get(f"{server.base_url}/orders", params={"limit": 100}, headers=admin).json()["data"]
        # only a crash after the commit leaves an order (whose 201 was never sent)
        assert [(o["userId"], o["status"]) for o in all_orders] == [(shoppers["committed"][0], "pending")]
        for step, ids in products.items():
            orders = [o for o in all_orders if o["userId"] == shoppers[step][0]]
            for product_id in ids:
                stock = httpx.get(f"{server.base_url}/products/{product_id}").json()["stock"]
                assert stock == START_STOCK - _units_recorded(orders, product_id), (step, product_id)
        # the shopper whose order committed can retry with the same key: the first order is replayed
        _username, headers = shoppers["committed"]
        replay = httpx.post(
            f"{server.base_url}/orders",
            json={
                "items": [
                    {"productId": products["committed"][0], "qty": 2},
                    {"productId": products["committed"][1], "qty": 3},
                ]
            },
            headers={**headers, "Idempotency-Key": "crash-committed"},
        )
        assert replay.status_code == 201 and replay.json()["id"] == all_orders[0]["id"]
    assert asyncio.run(_violations(mongo_server.uri, db_name)) == []


async def _violations(uri: str, db_name: str) -> list[str]:
    """The inventory invariant's violations in ``db_name`` (``tests.support.inventory``)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    try:
        return await inventory_violations(client[db_name])
    finally:
        await client.close()


async def _insert_products(uri: str, db_name: str, names: list[str]) -> list[str]:
    """Insert live products named ``names`` with ``START_STOCK`` units of size ``m``; their ids."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    now = datetime.now(UTC)
    docs = [
        new_product_document(
            ProductCreate(name=name, price=Decimal("1.25"), sizes=[{"size": "m", "quantity": START_STOCK}]), now=now
        )
        for name in names
    ]
    try:
        result = await client[db_name]["products"].insert_many(docs)
    finally:
        await client.close()
    return [str(pid) for pid in result.inserted_ids]


async def _place_until_killed(base: str, headers: dict[str, str], product_id: str, db: EmbeddedMongo) -> list[str]:
    """Place orders from 8 clients; SIGKILL the database after 40 acknowledgements; return the acknowledged ids."""
    acknowledged: list[str] = []
    killed = asyncio.Event()

    async def shopper(client: httpx.AsyncClient) -> None:
        while not killed.is_set():
            try:
                response = await client.post("/orders", json={"items": [{"productId": product_id, "qty": 1}]})
            except httpx.HTTPError:
                continue
            if response.status_code == 201:
                acknowledged.append(response.json()["id"])
                if len(acknowledged) >= 40 and not killed.is_set():
                    db.kill()
                    killed.set()

    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
        await asyncio.wait_for(asyncio.gather(*[shopper(client) for _ in range(8)]), timeout=120)
    return acknowledged


def _on_disk_shop(
    tmp_path: Path, password_hash: str, db_name: str, **env_extra: str
) -> tuple[EmbeddedMongo, dict[str, str], dict[str, str], dict[str, str]]:
    """An on-disk embedded database in ``tmp_path/db`` (the app's default flags) with an admin and a
    shopper seeded; returns it, the API server's environment, and both users' headers."""
    db = EmbeddedMongo(storage_path=tmp_path / "db").start()
    secret = secrets.token_urlsafe(48)
    try:
        admin, shopper = asyncio.run(_seed(db.uri, db_name, secret, password_hash))
    except BaseException:
        db.stop()
        raise
    return db, api_env(db.uri, db_name, secret, tmp_path, ORDER_MAX_PENDING="1000", **env_extra), admin, shopper


def test_acknowledged_orders_survive_a_database_crash(tmp_path: Path, password_hash: str) -> None:
    """SIGKILL of the (on-disk, --sync-on-commit) database under order load loses no acknowledged order."""
    data, db_name = tmp_path / "db", "durability"
    db, env, admin, shopper = _on_disk_shop(tmp_path, password_hash, db_name)
    port = db.port
    try:
        with ApiServer(env=env) as server:
            product_id = httpx.post(
                f"{server.base_url}/products",
                json={"name": "Flash", "price": 5, "sizes": [{"size": "m", "quantity": 10_000}]},
                headers=admin,
            ).json()["id"]
            acknowledged = asyncio.run(_place_until_killed(server.base_url, shopper, product_id, db))
        db = EmbeddedMongo(storage_path=data, port=port).start()
        found = asyncio.run(_find_orders(db.uri, db_name))
        assert set(acknowledged) <= set(found), f"lost {len(set(acknowledged) - set(found))} of {len(acknowledged)}"
        stock = asyncio.run(stored_available(db.uri, db_name))
        assert stock == 10_000 - len(found)  # stock agrees with the orders that survived
    finally:
        db.stop()


async def _find_orders(uri: str, db_name: str) -> list[str]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    try:
        return [str(doc["_id"]) async for doc in client[db_name]["orders"].find({}, {"_id": 1})]
    finally:
        await client.close()


def test_outage_gives_503_then_recovers(tmp_path: Path, password_hash: str) -> None:
    """Database killed under order load: every call answers 503 database_unavailable within the
    server selection timeout + 1 s, never 500; once it is back, the service recovers by itself."""
    data, db_name = tmp_path / "db", "outage"
    db, env, admin, shopper = _on_disk_shop(tmp_path, password_hash, db_name, CACHE_ENABLED="false")
    port = db.port
    try:
        with ApiServer(env=env) as server:
            base = server.base_url
            product_id = httpx.post(
                f"{base}/products",
                json={"name": "Outage", "price": 5, "sizes": [{"size": "m", "quantity": 10_000}]},
                headers=admin,
            ).json()["id"]
            outcome = asyncio.run(_load_through_outage(base, shopper, admin, product_id, db, data, port))
            db = outcome["db"]
            assert outcome["during"], "no request was made during the outage"
            for status, code, seconds, what in outcome["during"]:
                assert status == 503 and code == "database_unavailable", what
                assert seconds <= 1.0 + 1.0 + 0.5, (what, seconds)  # selection timeout 1 s + 1 s (+ loopback slack)
            assert outcome["after"] == 201
    finally:
        db.stop()


async def _load_through_outage(
    base: str,
    shopper: dict[str, str],
    admin: dict[str, str],
    product_id: str,
    db: EmbeddedMongo,
    data: Path,
    port: int,
) -> dict[str, Any]:
    order = {"items": [{"productId": product_id, "qty": 1}]}
    during: list[tuple[int, str | None, float, str]] = []
    load_statuses: set[int] = set()
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        stop = asyncio.Event()

        async def load() -> None:
            while not stop.is_set():
                response = await client.post("/orders", json=order, headers=shopper)
                load_statuses.add(response.status_code)

        loaders = [asyncio.create_task(load()) for _ in range(4)]
        await asyncio.sleep(1.0)
        db.kill()
        calls = [
            ("POST", "/orders", order, shopper),
            ("GET", "/orders/crash_shopper", None, shopper),
            ("GET", "/products", None, None),
            ("GET", f"/products/{product_id}", None, None),
            ("PATCH", f"/products/{product_id}", {"price": 6}, admin),
            ("GET", "/dashboard/summary", None, admin),
            ("POST", "/auth/login", {"username": "crash_shopper", "password": "x" * 12}, None),
        ]
        for method, path, body, headers in calls:
            started = time.perf_counter()
            response = await client.request(method, path, json=body, headers=headers)
            code = (
                response.json().get("code")
                if response.headers.get("content-type", "").startswith("application/problem+json")
                else None
            )
            during.append((response.status_code, code, time.perf_counter() - started, f"{method} {path}"))
        stop.set()
        results = await asyncio.gather(*loaders, return_exceptions=True)
        assert not [r for r in results if isinstance(r, BaseException)]
        db = EmbeddedMongo(storage_path=data, port=port).start()
        after = None
        for _ in range(50):
            response = await client.post("/orders", json=order, headers=shopper)
            after = response.status_code
            if after == 201:
                break
            await asyncio.sleep(0.2)
    assert load_statuses <= {201, 503}, load_statuses  # never a 500
    return {"during": during, "after": after, "db": db}
