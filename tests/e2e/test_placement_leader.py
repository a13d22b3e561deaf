"""The placement leader killed while two ``serve``-like processes take orders: none lost, none placed twice.

Two uvicorn processes share one database and elect one placement leader; the
other forwards its orders to it. The leader is SIGKILLed in the middle of a
stream of orders sent to both. Then: every ``201`` names a stored order, each
order is stored once, the survivor keeps answering ``201`` (it places orders
itself, then takes the lease), and the stock agrees with the orders.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from bson import ObjectId
from pymongo import AsyncMongoClient

from backend_app.core import leases
from backend_app.devtools.api_server import ApiServer
from backend_app.devtools.embedded_db import EmbeddedMongo
from backend_app.devtools.seed import seed_user
from backend_app.orders import forwarding
from backend_app.products import service as products_service
from backend_app.products.schemas import ProductCreate
from config import Settings
from tests.support.inventory import inventory_violations
from tests.support.servers import api_env, prepared_database

UNITS = 10_000


async def _prepare(uri: str, db_name: str, secret: str, password_hash: str) -> dict[str, Any]:
    settings = Settings(app_env="test", mongodb_uri=uri, mongodb_db=db_name, jwt_secret=secret)
    async with prepared_database(uri, db_name) as db:
        shopper = await seed_user(db, settings, username="lead_shopper", role="user", password_hash=password_hash)
        product = ProductCreate(name="Hot", price=Decimal("2.00"), sizes=[{"size": "m", "quantity": UNITS}])
        product_id = await products_service.create_product(db, product=product, actor="test")
    return {"shopper": shopper, "product_id": product_id}


async def _leader_pid(uri: str, db_name: str) -> int:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    try:
        for _ in range(50):
            doc = await client[db_name][leases.COLLECTION].find_one({"_id": forwarding.LEASE_PREFIX + "default"})
            if doc is not None:
                return int(doc["pid"])
            await asyncio.sleep(0.1)
    finally:
        await client.close()
    raise AssertionError("no placement lease was taken")


async def _stored(uri: str, db_name: str) -> tuple[list[dict[str, Any]], dict[str, Any], list[str]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    try:
        db = client[db_name]
        orders = await db["orders"].find({}, {"_id": 1, "items": 1}).to_list(None)
        product = await db["products"].find_one({})
        return orders, product["sizes"][0], await inventory_violations(db)
    finally:
        await client.close()


def test_the_leader_killed_mid_stream_loses_no_order_and_places_none_twice(
    mongo_server: EmbeddedMongo, db_name: str, tmp_path: Path, password_hash: str
) -> None:
    secret = secrets.token_urlsafe(48)
    seen = asyncio.run(_prepare(mongo_server.uri, db_name, secret, password_hash))
    env = api_env(
        mongo_server.uri, db_name, secret, tmp_path, ORDER_MAX_PENDING="100000", ORDER_MAX_PENDING_UNITS="100000"
    )
    with ApiServer(env=env) as first, ApiServer(env=env) as second:
        leader_pid = asyncio.run(_leader_pid(mongo_server.uri, db_name))
        servers = {s.pid: s for s in (first, second)}
        assert leader_pid in servers, (leader_pid, list(servers))
        survivor = next(s for pid, s in servers.items() if pid != leader_pid)
        time.sleep(1.2)  # both processes have read the lease: the survivor forwards to the leader

        async def stream() -> tuple[list[str], int, list[int]]:
            placed: list[str] = []
            lost_connections = 0
            after_kill: list[int] = []
            body = {"items": [{"productId": seen["product_id"], "qty": 1}]}
            async with httpx.AsyncClient(timeout=60, headers=seen["shopper"]) as http:

                async def one(server: ApiServer, killed: bool) -> None:
                    nonlocal lost_connections
                    try:
                        response = await http.post(f"{server.base_url}/orders", json=body)
                    except httpx.TransportError:  # the killed process's connections
                        lost_connections += 1
                        return
                    if response.status_code == 201:
                        placed.append(response.json()["id"])
                    if killed and server is survivor:
                        after_kill.append(response.status_code)

                for round_ in range(12):
                    if round_ == 4:
                        os.killpg(leader_pid, signal.SIGKILL)
                    killed = round_ >= 4
                    targets = [survivor] if killed else list(servers.values())
                    await asyncio.gather(*[one(s, killed) for s in targets for _ in range(6)])
            return placed, lost_connections, after_kill

        placed, _lost, after_kill = asyncio.run(stream())
    assert after_kill and set(after_kill) == {201}, after_kill
    orders, size, violations = asyncio.run(_stored(mongo_server.uri, db_name))
    stored = [doc["_id"] for doc in orders]
    assert len(stored) == len(set(stored))  # no order stored twice
    assert {ObjectId(i) for i in placed} <= set(stored)  # every 201 is stored
    assert len(placed) == len(set(placed))
    assert violations == []
    assert size["allocated"] == len(stored)  # one unit per stored order, each taken once


def test_a_follower_killed_after_the_leader_placed_its_order_leaves_one_order_and_its_key_replays(
    mongo_server: EmbeddedMongo, db_name: str, tmp_path: Path, password_hash: str
) -> None:
    """The follower forwards an order, the leader commits it, and the follower dies before its 201.

    (Had the leader not answered, the follower would have placed the order itself before dying at
    the same step: the property checked is the same either way.)

    The order exists once, its stock is allocated once, and the shopper's retry with the same
    ``Idempotency-Key`` (to the leader: the follower is gone) returns that order instead of a second one.
    """
    secret = secrets.token_urlsafe(48)
    seen = asyncio.run(_prepare(mongo_server.uri, db_name, secret, password_hash))
    env = api_env(mongo_server.uri, db_name, secret, tmp_path)
    with ApiServer(env=env) as leader:
        assert asyncio.run(_leader_pid(mongo_server.uri, db_name)) == leader.pid
        follower = ApiServer(env={**env, "ORDER_FAULT_STEP": "committed"}).start()
        try:
            time.sleep(1.2)  # the follower has read the lease: it forwards
            body = {"items": [{"productId": seen["product_id"], "qty": 3}]}
            headers = {**seen["shopper"], "Idempotency-Key": "forwarded-then-lost"}
            try:
                lost = httpx.post(f"{follower.base_url}/orders", json=body, headers=headers, timeout=30)
            except httpx.TransportError:
                lost = None
            assert lost is None, lost.text  # no answer: the follower exited after the leader's commit
            assert follower.wait(timeout_s=10) == 70  # the injected fault's exit status
        finally:
            follower.kill()
        orders, size, violations = asyncio.run(_stored(mongo_server.uri, db_name))
        assert len(orders) == 1 and size["allocated"] == 3 and violations == []
        replay = httpx.post(f"{leader.base_url}/orders", json=body, headers=headers, timeout=30)
        assert replay.status_code == 201 and replay.json()["id"] == str(orders[0]["_id"])
    orders, size, violations = asyncio.run(_stored(mongo_server.uri, db_name))
    assert len(orders) == 1 and size["allocated"] == 3 and violations == []
