"""Stock survives an API process killed while an order leaves ``pending``, and caps hold across processes.

End to end: real uvicorn processes (``ApiServer``) against the session's
SecantusDB. Each scenario has its own database, because a transaction left
open by a killed process keeps the documents it wrote busy until the server
reaps it (60 s; docs/architecture.md (Orders and stock), failure cases).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient

from backend_app.devtools.api_server import ApiServer
from backend_app.devtools.embedded_db import EmbeddedMongo
from backend_app.devtools.seed import seed_user
from backend_app.orders import service as orders_service
from backend_app.orders.faults import FAULT_EXIT_STATUS, TRANSITION_STEPS
from backend_app.orders.schemas import OrderItemCreate
from backend_app.products import service as products_service
from backend_app.products.schemas import ProductCreate
from config import Settings
from tests.support.inventory import inventory_violations
from tests.support.servers import api_env, prepared_database

KINDS = ("cancelled", "completed", "expired")


async def _prepare(uri: str, db_name: str, secret: str, password_hash: str, *, quantity: int = 20) -> dict[str, Any]:
    """Indexes, an admin and a shopper with live logins, a product of ``quantity`` units (size ``m``) and a
    pending order of 3 of them."""
    settings = Settings(app_env="test", mongodb_uri=uri, mongodb_db=db_name, jwt_secret=secret)
    async with prepared_database(uri, db_name) as db:
        admin = await seed_user(db, settings, username="inv_admin", role="admin", password_hash=password_hash)
        shopper = await seed_user(db, settings, username="inv_shopper", role="user", password_hash=password_hash)
        product = ProductCreate(name="Crash", price=Decimal("3.00"), sizes=[{"size": "m", "quantity": quantity}])
        product_id = await products_service.create_product(db, product=product, actor="test")
        order_id = await orders_service.place_order(
            db, user_id="inv_shopper", items=[OrderItemCreate(productId=product_id, qty=3)]
        )
    return {"admin": admin, "shopper": shopper, "product_id": product_id, "order_id": order_id}


async def _state(uri: str, db_name: str, order_id: str) -> tuple[str, dict[str, Any], list[str]]:
    """The order's status, its product's size ``m`` as stored, and the invariant's violations."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    try:
        db = client[db_name]
        order = await db["orders"].find_one({"_id": ObjectId(order_id)})
        product = await db["products"].find_one({})
        return order["status"], product["sizes"][0], await inventory_violations(db)
    finally:
        await client.close()


def test_api_killed_at_each_step_of_cancel_complete_and_expiry_leaves_the_invariant_true(
    mongo_server: EmbeddedMongo, db_name: str, tmp_path: Path, password_hash: str
) -> None:
    """For cancel (owner), complete (admin) and expiry (the sweeper) and each step of leaving
    ``pending``, an API process exits there; afterwards the order and its stock agree: unchanged
    before the commit, changed exactly once after it, and the invariant holds."""
    secret = secrets.token_urlsafe(48)
    scenarios = [
        (kind, step, f"{db_name}_{k}_{i}") for k, kind in enumerate(KINDS) for i, step in enumerate(TRANSITION_STEPS)
    ]
    prepared = {name: asyncio.run(_prepare(mongo_server.uri, name, secret, password_hash)) for _, _, name in scenarios}
    time.sleep(2.1)  # the orders are now past a 1 s TTL (an ObjectId holds whole seconds)
    for kind, step, name in scenarios:
        seen = prepared[name]
        extra = {"ORDER_FAULT_STEP": step}
        if kind == "expired":
            extra |= {"ORDER_PENDING_TTL_SECONDS": "1", "ORDER_SWEEP_INTERVAL_SECONDS": "0.2"}
        crashing = ApiServer(env=api_env(mongo_server.uri, name, secret, tmp_path, **extra))
        if kind == "expired":
            # the sweeper runs at start-up: the process may die before it answers /health
            with pytest.raises(RuntimeError, match=f"exited with code {FAULT_EXIT_STATUS}"):
                crashing.start()
                assert crashing.wait(timeout_s=20) == FAULT_EXIT_STATUS, (kind, step)
                raise RuntimeError(f"exited with code {FAULT_EXIT_STATUS}")
            continue
        with crashing:
            if kind != "expired":
                headers = seen["shopper"] if kind == "cancelled" else seen["admin"]
                with pytest.raises(httpx.HTTPError):
                    response = httpx.patch(
                        f"{crashing.base_url}/orders/inv_shopper/{seen['order_id']}",
                        json={"status": kind},
                        headers=headers,
                        timeout=30,
                    )
                    pytest.fail(f"{kind}/{step}: answered {response.status_code} {response.text}")
            assert crashing.wait(timeout_s=20) == FAULT_EXIT_STATUS, (kind, step)
    for kind, step, name in scenarios:
        status, size, violations = asyncio.run(_state(mongo_server.uri, name, prepared[name]["order_id"]))
        assert violations == [], (kind, step, violations)
        if step == "transition_committed":
            expected = {"completed": (17, 0, 17)}.get(kind, (20, 0, 20))
            assert status == kind, (kind, step)
        else:
            expected = (20, 3, 17)
            assert status == "pending", (kind, step)
        assert (size["quantity"], size["allocated"], size["available"]) == expected, (kind, step, size)


def test_two_serve_processes_racing_cannot_pass_the_pending_unit_cap(
    mongo_server: EmbeddedMongo, db_name: str, tmp_path: Path, password_hash: str
) -> None:
    """Two uvicorn processes on one database; one shopper sends 12 orders of 10 units to each at once,
    with a cap of 100 units: exactly 10 are placed, in whichever process."""
    secret = secrets.token_urlsafe(48)
    seen = asyncio.run(_prepare(mongo_server.uri, db_name, secret, password_hash, quantity=1000))  # 3 units held
    env = api_env(mongo_server.uri, db_name, secret, tmp_path, ORDER_MAX_PENDING_UNITS="103", ORDER_MAX_PENDING="1000")
    with ApiServer(env=env) as first, ApiServer(env=env) as second:

        async def race() -> list[int]:
            async with httpx.AsyncClient(timeout=60, headers=seen["shopper"]) as http:
                body = {"items": [{"productId": seen["product_id"], "qty": 10}]}
                calls = [http.post(f"{s.base_url}/orders", json=body) for _ in range(12) for s in (first, second)]
                return [r.status_code for r in await asyncio.gather(*calls)]

        codes = asyncio.run(race())
    assert sorted(codes) == [201] * 10 + [409] * 14
    status, size, violations = asyncio.run(_state(mongo_server.uri, db_name, seen["order_id"]))
    assert violations == [] and status == "pending"
    assert (size["quantity"], size["allocated"], size["available"]) == (1000, 103, 897)
