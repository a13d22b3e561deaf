"""Stock as an inventory: on hand, allocated to pending orders, available (docs/architecture.md (Orders and stock)).

Every admin stock write sets what is on hand; orders allocate, cancel and
expiry release, completion fulfils. After every scenario the invariant is
recounted from the database (``tests.support.inventory``).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from bson import Decimal128, ObjectId
from pymongo import AsyncMongoClient

from backend_app.orders import service
from backend_app.products import importer
from tests.support.helpers import assert_problem, create_product
from tests.support.inventory import inventory_violations
from tests.support.lifespan import lifespan

Headers = dict[str, str]


async def _sizes(client: httpx.AsyncClient, pid: str) -> dict[str, tuple[int, int, int]]:
    """``{size: (quantity, allocated, available)}`` as ``GET /products/{id}`` shows them."""
    body = (await client.get(f"/products/{pid}")).json()
    assert body["stock"] == sum(s["available"] for s in body["sizes"])
    return {s["size"]: (s["quantity"], s["allocated"], s["available"]) for s in body["sizes"]}


async def _order(
    client: httpx.AsyncClient, headers: Headers, pid: str, qty: int, size: str | None = None, **extra: Any
):
    line: dict[str, Any] = {"productId": pid, "qty": qty}
    if size is not None:
        line["size"] = size
    return await client.post("/orders", json={"items": [line], **extra}, headers=headers)


async def _admin_stock_write(
    write: str,
    client: httpx.AsyncClient,
    admin: Headers,
    mongo: Any,
    pid: str,
    sizes: list[dict[str, Any]],
    tmp_path: Path,
    basis: str | None = None,
) -> tuple[int, Any]:
    """Write ``sizes`` of product ``pid`` (sku ``INV-1``) through one admin path; ``(status, body)``.

    ``import`` runs the importer's ``--upsert`` path (``importer.import_rows``) on a JSON Lines file.
    """
    params = {"stock_basis": basis} if basis else {}
    full = {"name": "Shirt", "price": 10, "sku": "INV-1", "sizes": sizes}
    if write == "put":
        r = await client.put(f"/products/{pid}", json=full, headers=admin, params=params)
    elif write == "patch":
        r = await client.patch(f"/products/{pid}", json={"sizes": sizes}, headers=admin, params=params)
    elif write == "quantity":
        r = await client.put(f"/products/{pid}/quantity", json=sizes[0], headers=admin, params=params)
    elif write == "batch":
        r = await client.post("/products/batch", json=[full], headers=admin, params={"upsert": "true", **params})
        item = r.json()["results"][0]
        return item["status"], item
    else:
        path = tmp_path / "catalog.jsonl"
        path.write_text(json.dumps(full) + "\n", encoding="utf-8")
        kwargs = {"basis": importer.StockBasis(basis)} if basis else {}
        report = await importer.import_rows(
            mongo, importer.read_rows(path), actor="cli:import-products", upsert=True, **kwargs
        )
        if report.refused:
            return 409, {"errors": [{"msg": reason} for _, reason in report.refused]}
        return 200, None
    return r.status_code, r.json()


ADMIN_WRITES = ["put", "patch", "quantity", "batch", "import"]


@pytest.mark.parametrize("write", ADMIN_WRITES)
async def test_restocking_to_the_shelf_count_during_a_pending_order_creates_no_stock(
    write, client, admin_headers, alice, mongo, tmp_path
):
    """10 units of M; a pending order holds all 10; the admin sets the shelf count (10); the order is
    cancelled: 10 are available, not 20."""
    pid = await create_product(client, admin_headers, sku="INV-1", sizes=[{"size": "M", "quantity": 10}])
    order = await _order(client, alice, pid, 10, "M")
    assert order.status_code == 201, order.text
    assert await _sizes(client, pid) == {"M": (10, 10, 0)}

    status, _ = await _admin_stock_write(
        write, client, admin_headers, mongo, pid, [{"size": "M", "quantity": 10}], tmp_path
    )
    assert status == 200
    assert await _sizes(client, pid) == {"M": (10, 10, 0)}

    cancelled = await client.patch(f"/orders/alice/{order.json()['id']}", json={"status": "cancelled"}, headers=alice)
    assert cancelled.status_code == 200
    assert await _sizes(client, pid) == {"M": (10, 0, 10)}
    assert (await client.get(f"/products/{pid}")).json()["stock"] == 10
    # the store cannot sell more than the shelf holds
    assert (await _order(client, alice, pid, 10, "M")).status_code == 201
    assert_problem(await _order(client, alice, pid, 1, "M"), 409, "insufficient_stock")
    assert await inventory_violations(mongo) == []


@pytest.mark.parametrize("write", ADMIN_WRITES)
async def test_a_stock_write_below_what_pending_orders_hold_is_refused_naming_the_size(
    write, client, admin_headers, alice, mongo, tmp_path
):
    pid = await create_product(client, admin_headers, sku="INV-1", sizes=[{"size": "M", "quantity": 10}])
    assert (await _order(client, alice, pid, 6, "M")).status_code == 201
    status, body = await _admin_stock_write(
        write, client, admin_headers, mongo, pid, [{"size": "M", "quantity": 5}], tmp_path
    )
    assert status == 409
    if write in ("put", "patch", "quantity"):
        assert body["code"] == "quantity_below_allocated"
        assert body["sizes"] == [{"size": "M", "quantity": 5, "allocated": 6}]
    else:
        assert "M: 5 on hand, 6 allocated" in body["errors"][0]["msg"]
    assert await _sizes(client, pid) == {"M": (10, 6, 4)}  # nothing was written
    assert await inventory_violations(mongo) == []


@pytest.mark.parametrize("write", ADMIN_WRITES)
async def test_stock_basis_available_reads_the_number_as_what_may_still_be_sold(
    write, client, admin_headers, alice, mongo, tmp_path
):
    pid = await create_product(client, admin_headers, sku="INV-1", sizes=[{"size": "M", "quantity": 10}])
    assert (await _order(client, alice, pid, 6, "M")).status_code == 201
    status, _ = await _admin_stock_write(
        write, client, admin_headers, mongo, pid, [{"size": "M", "quantity": 5}], tmp_path, basis="available"
    )
    assert status == 200
    assert await _sizes(client, pid) == {"M": (11, 6, 5)}
    assert await inventory_violations(mongo) == []


@pytest.mark.parametrize("write", ["put", "patch"])
async def test_removing_a_size_that_pending_orders_hold_is_refused(
    write, client, admin_headers, alice, mongo, tmp_path
):
    pid = await create_product(
        client, admin_headers, sku="INV-1", sizes=[{"size": "M", "quantity": 10}, {"size": "L", "quantity": 3}]
    )
    assert (await _order(client, alice, pid, 2, "L")).status_code == 201
    status, body = await _admin_stock_write(
        write, client, admin_headers, mongo, pid, [{"size": "M", "quantity": 10}], tmp_path
    )
    assert status == 409 and body["sizes"] == [{"size": "L", "quantity": None, "allocated": 2}]
    # a size nobody holds can go
    assert (await _order(client, alice, pid, 1, "M")).status_code == 201
    status, _ = await _admin_stock_write(
        write, client, admin_headers, mongo, pid, [{"size": "M", "quantity": 4}, {"size": "L", "quantity": 2}], tmp_path
    )
    assert status == 200
    assert await _sizes(client, pid) == {"M": (4, 1, 3), "L": (2, 2, 0)}
    assert await inventory_violations(mongo) == []


async def test_placing_allocates_cancel_releases_and_completion_takes_units_off_the_shelf(
    client, admin_headers, alice, mongo
):
    pid = await create_product(
        client, admin_headers, sizes=[{"size": "S", "quantity": 4}, {"size": "M", "quantity": 6}]
    )
    kept = (await _order(client, alice, pid, 5)).json()["id"]  # 4 of S, then 1 of M
    dropped = (await _order(client, alice, pid, 2, "M")).json()["id"]
    assert await _sizes(client, pid) == {"S": (4, 4, 0), "M": (6, 3, 3)}
    await client.patch(f"/orders/alice/{dropped}", json={"status": "cancelled"}, headers=alice)
    assert await _sizes(client, pid) == {"S": (4, 4, 0), "M": (6, 1, 5)}
    done = await client.patch(f"/orders/alice/{kept}", json={"status": "completed"}, headers=admin_headers)
    assert done.status_code == 200
    assert await _sizes(client, pid) == {"S": (0, 0, 0), "M": (5, 0, 5)}
    assert await inventory_violations(mongo) == []


async def test_cancel_expiry_and_completion_racing_for_one_order_change_stock_once(
    client, admin_headers, alice, mongo, mongo_server, db_name
):
    """Each round, the owner cancels, an admin completes and a sweeper on another connection (as
    another host) expires the same order at once: exactly one wins, stock changes once."""
    pid = await create_product(client, admin_headers, sizes=[{"size": "M", "quantity": 100}])
    other: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_server.uri, tz_aware=True)
    try:
        for _ in range(6):
            order_id = (await _order(client, alice, pid, 4, "M")).json()["id"]
            before = await _sizes(client, pid)
            cancel, complete, expired = await asyncio.gather(
                client.patch(f"/orders/alice/{order_id}", json={"status": "cancelled"}, headers=alice),
                client.patch(f"/orders/alice/{order_id}", json={"status": "completed"}, headers=admin_headers),
                service.expire_order(other[db_name], order_id=ObjectId(order_id)),
            )
            won = [
                name
                for name, ok in (
                    ("cancelled", cancel.status_code == 200),
                    ("completed", complete.status_code == 200),
                    ("expired", expired),
                )
                if ok
            ]
            assert len(won) == 1, (cancel.text, complete.text, expired)
            for lost in (cancel, complete):
                if lost.status_code != 200:
                    assert_problem(lost, 409, "invalid_status_transition")
            status = (await client.get(f"/orders/alice/{order_id}", headers=alice)).json()["status"]
            assert status == won[0]
            quantity, allocated, available = before["M"]
            after = await _sizes(client, pid)
            if won[0] == "completed":
                assert after == {"M": (quantity - 4, allocated - 4, available)}
            else:
                assert after == {"M": (quantity, allocated - 4, available + 4)}
    finally:
        await other.close()
    assert await inventory_violations(mongo) == []


async def test_fifty_buyers_of_twenty_units_across_sizes_leave_the_invariant_true(
    client, admin_headers, make_user, mongo
):
    pid = await create_product(
        client, admin_headers, sizes=[{"size": "S", "quantity": 8}, {"size": "M", "quantity": 12}]
    )
    buyers = [await make_user(f"buyer_{i}") for i in range(50)]
    responses = await asyncio.gather(*[_order(client, h, pid, 1) for h in buyers])
    assert sorted(r.status_code for r in responses) == [201] * 20 + [409] * 30
    assert await _sizes(client, pid) == {"S": (8, 8, 0), "M": (12, 12, 0)}
    assert await inventory_violations(mongo) == []


# --- Reservations limited in units -------------------------------------------------------------------


async def test_thirty_lines_of_a_thousand_units_merge_into_one_line_over_the_limit(client, admin_headers, alice, mongo):
    pid = await create_product(client, admin_headers, sizes=[{"size": "M", "quantity": 1_000_000}])
    body = {"items": [{"productId": pid, "qty": 1000} for _ in range(30)]}
    problem = assert_problem(await client.post("/orders", json=body, headers=alice), 422, "too_many_units_per_line")
    assert problem["productId"] == pid and problem["units"] == 30_000 and problem["limit"] == 100
    assert await _sizes(client, pid) == {"M": (1_000_000, 0, 1_000_000)}
    # split over sizes, the lines still count together
    pid2 = await create_product(
        client, admin_headers, sizes=[{"size": "S", "quantity": 90}, {"size": "M", "quantity": 90}]
    )
    split = {"items": [{"productId": pid2, "qty": 60, "size": "S"}, {"productId": pid2, "qty": 41, "size": "M"}]}
    assert_problem(await client.post("/orders", json=split, headers=alice), 422, "too_many_units_per_line")
    exactly = {"items": [{"productId": pid2, "qty": 60, "size": "S"}, {"productId": pid2, "qty": 40, "size": "M"}]}
    assert (await client.post("/orders", json=exactly, headers=alice)).status_code == 201
    assert await inventory_violations(mongo) == []


@pytest.mark.settings(order_max_pending_units=150)
async def test_an_owner_holds_at_most_the_pending_unit_cap_whoever_places(client, admin_headers, alice, mongo):
    pid = await create_product(client, admin_headers, sizes=[{"size": "M", "quantity": 1000}])
    first = await _order(client, alice, pid, 100)
    assert first.status_code == 201
    problem = assert_problem(await _order(client, alice, pid, 51), 409, "too_many_pending_units")
    assert (problem["held"], problem["requested"], problem["limit"]) == (100, 51, 150)
    # an admin ordering for alice counts against alice
    assert_problem(await _order(client, admin_headers, pid, 51, userId="alice"), 409, "too_many_pending_units")
    assert (await _order(client, admin_headers, pid, 50, userId="alice")).status_code == 201
    assert_problem(await _order(client, alice, pid, 1), 409, "too_many_pending_units")
    # cancelling frees the units
    await client.patch(f"/orders/alice/{first.json()['id']}", json={"status": "cancelled"}, headers=alice)
    assert (await _order(client, alice, pid, 100)).status_code == 201
    assert await _sizes(client, pid) == {"M": (1000, 150, 850)}
    assert await inventory_violations(mongo) == []


@pytest.mark.settings(order_max_pending_units=100, order_max_pending=1000)
async def test_two_app_processes_racing_cannot_pass_the_unit_cap(app, settings, client, admin_headers, alice, mongo):
    """Two apps (each its own client and batcher, as two workers or hosts) race 24 orders of 10 units."""

    from backend_app.main import create_app

    pid = await create_product(client, admin_headers, sizes=[{"size": "M", "quantity": 1000}])
    other = create_app(settings)
    async with lifespan(other):
        transport = httpx.ASGITransport(app=other)
        async with httpx.AsyncClient(transport=transport, base_url="http://other") as second:
            responses = await asyncio.gather(*[_order(c, alice, pid, 10) for _ in range(12) for c in (client, second)])
    assert sorted(r.status_code for r in responses) == [201] * 10 + [409] * 14
    assert await _sizes(client, pid) == {"M": (1000, 100, 900)}
    assert await inventory_violations(mongo) == []


# --- Who placed an order -----------------------------------------------------------------------------


async def test_an_order_records_who_placed_it_and_one_placed_for_someone_else_is_audited(
    client, admin_headers, alice, mongo
):
    pid = await create_product(client, admin_headers)
    own = (await _order(client, alice, pid, 1)).json()["id"]
    for_alice = (await _order(client, admin_headers, pid, 1, userId="alice")).json()["id"]
    stored = {str(d["_id"]): d async for d in mongo["orders"].find({})}
    assert stored[own]["placed_by"] == "alice"
    assert stored[for_alice]["placed_by"] == "root_admin" and stored[for_alice]["userId"] == "alice"
    entries = (await client.get("/audit", params={"entity_type": "order"}, headers=admin_headers)).json()["data"]
    assert [(e["actor"], e["entity_id"], e["after"]) for e in entries] == [
        ("root_admin", for_alice, {"userId": "alice", "placed_by": "root_admin", "status": "pending"})
    ]


# --- Conversion of stock stored before the inventory model --------------------------------------------


async def test_stock_stored_before_the_inventory_model_is_converted_once_at_start_up(client, admin_headers, mongo):
    """A size stored ``{size, quantity}`` held what was *available*; pending orders had taken theirs."""
    pid = ObjectId()
    await mongo["products"].insert_one(
        {"_id": pid, "name": "Old", "price": Decimal128("2.00"), "price_cents": 200, "sku": None,
         "sizes": [{"size": "M", "quantity": 7}, {"size": "L", "quantity": 0}], "deleted_at": None,
         "created_at": datetime.now(UTC),
         "updated_at": datetime.now(UTC)}
    )  # fmt: skip
    order = {"_id": ObjectId(), "userId": "olduser", "status": "pending", "pending_slot": 0,
             "items": [{"productId": pid, "name": "Old", "size": None, "qty": 5, "unit_price": Decimal128("2.00"),
                        "taken": [{"size": "M", "qty": 3}, {"size": "L", "qty": 2}]}],
             "total": Decimal128("10.00"), "created_at": datetime.now(UTC),
             "updated_at": datetime.now(UTC)}  # fmt: skip
    await mongo["orders"].insert_one(order)
    await mongo["schema_migrations"].delete_many({})
    await asyncio.gather(service.convert_to_inventory_model(mongo), service.convert_to_inventory_model(mongo))
    await service.convert_to_inventory_model(mongo)
    assert await _sizes(client, str(pid)) == {"M": (10, 3, 7), "L": (2, 2, 0)}
    assert await inventory_violations(mongo) == []
    # the converted order settles like any other
    await mongo["users"].insert_one({"username": "olduser"})  # no login needed: the admin cancels
    cancelled = await client.patch(
        f"/orders/olduser/{order['_id']}", json={"status": "cancelled"}, headers=admin_headers
    )
    assert cancelled.status_code == 200, cancelled.text
    assert await _sizes(client, str(pid)) == {"M": (10, 0, 10), "L": (2, 0, 2)}
    assert await inventory_violations(mongo) == []
