"""Pending orders are stock reservations: capped per owner, expiring after a TTL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient

from backend_app.orders import service
from tests.support.helpers import assert_problem, create_product, public_stock
from tests.support.lifespan import lifespan


async def _order(client, headers, pid, qty=1, **extra):
    return await client.post("/orders", json={"items": [{"productId": pid, "qty": qty}], **extra}, headers=headers)


@pytest.mark.settings(order_max_pending=3)
async def test_cap_counts_the_owner_whoever_places_and_frees_on_cancel(client, admin_headers, alice):
    pid = await create_product(client, admin_headers, sizes=[{"size": "m", "quantity": 100}])
    first = await _order(client, alice, pid)
    assert (await _order(client, alice, pid)).status_code == 201
    # an admin placing for alice counts against alice's cap, not the admin's
    assert (await _order(client, admin_headers, pid, userId="alice")).status_code == 201
    body = assert_problem(await _order(client, alice, pid), 409, "too_many_pending_orders")
    assert body["limit"] == 3
    assert_problem(await _order(client, admin_headers, pid, userId="alice"), 409, "too_many_pending_orders")
    assert await public_stock(client, pid) == 97  # the refused orders took nothing
    # the admin's own cap is untouched
    assert (await _order(client, admin_headers, pid)).status_code == 201
    # cancelling (or completing) one frees a reservation
    cancelled = await client.patch(f"/orders/alice/{first.json()['id']}", json={"status": "cancelled"}, headers=alice)
    assert cancelled.status_code == 200
    assert (await _order(client, alice, pid)).status_code == 201
    assert_problem(await _order(client, alice, pid), 409, "too_many_pending_orders")


@pytest.mark.settings(order_max_pending=5)
async def test_cap_holds_under_concurrent_placements(client, admin_headers, alice):
    pid = await create_product(client, admin_headers, sizes=[{"size": "m", "quantity": 100}])
    responses = await asyncio.gather(*[_order(client, alice, pid) for _ in range(20)])
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] * 5 + [409] * 15
    for r in responses:
        if r.status_code == 409:
            assert_problem(r, 409, "too_many_pending_orders")
    pending = (await client.get("/orders", params={"status": "pending"}, headers=alice)).json()["data"]
    assert len(pending) == 5 and await public_stock(client, pid) == 95


@pytest.mark.settings(order_max_pending=2)
async def test_cap_across_two_app_processes(app, settings, client, admin_headers, alice):
    """Two apps (each its own client and batcher, as two workers or hosts) cannot pass the cap together."""
    import httpx

    from backend_app.main import create_app

    pid = await create_product(client, admin_headers, sizes=[{"size": "m", "quantity": 100}])
    other = create_app(settings)
    async with lifespan(other):
        transport = httpx.ASGITransport(app=other)
        async with httpx.AsyncClient(transport=transport, base_url="http://other") as second:
            responses = await asyncio.gather(*[_order(c, alice, pid) for _ in range(6) for c in (client, second)])
    assert sorted(r.status_code for r in responses) == [201] * 2 + [409] * 10
    assert await public_stock(client, pid) == 98


async def test_expired_cannot_be_set_through_the_api(client, admin_headers, alice):
    pid = await create_product(client, admin_headers)
    order_id = (await _order(client, alice, pid)).json()["id"]
    for headers in (alice, admin_headers):
        response = await client.patch(f"/orders/alice/{order_id}", json={"status": "expired"}, headers=headers)
        assert_problem(response, 422)
    assert (await client.get(f"/orders/alice/{order_id}", headers=alice)).json()["status"] == "pending"


@pytest.mark.settings(order_pending_ttl_seconds=1, order_sweep_interval_seconds=0.1)
async def test_pending_orders_expire_and_return_stock_once(client, admin_headers, alice):
    pid = await create_product(
        client, admin_headers, sizes=[{"size": "s", "quantity": 4}, {"size": "m", "quantity": 6}]
    )
    expiring = (await _order(client, alice, pid, qty=7)).json()["id"]
    completed = (await _order(client, alice, pid, qty=1)).json()["id"]
    assert (
        await client.patch(f"/orders/alice/{completed}", json={"status": "completed"}, headers=admin_headers)
    ).status_code == 200
    assert await public_stock(client, pid) == 2
    for _ in range(60):
        order = (await client.get(f"/orders/alice/{expiring}", headers=alice)).json()
        if order["status"] == "expired":
            break
        await asyncio.sleep(0.1)
    assert order["status"] == "expired"
    await asyncio.sleep(0.5)  # more sweeps: nothing returned twice
    sizes = {s["size"]: s["available"] for s in (await client.get(f"/products/{pid}")).json()["sizes"]}
    assert sizes == {"s": 4, "m": 5}  # 7 came back to the sizes they were taken from; the completed 1 did not
    assert (await client.get(f"/orders/alice/{completed}", headers=alice)).json()["status"] == "completed"
    # expired is terminal and shown in every view
    assert_problem(
        await client.patch(f"/orders/alice/{expiring}", json={"status": "cancelled"}, headers=alice),
        409,
        "invalid_status_transition",
    )
    listed = (await client.get("/orders/alice", headers=alice)).json()["data"]
    assert {o["id"]: o["status"] for o in listed} == {expiring: "expired", completed: "completed"}
    only = (await client.get("/orders", params={"status": "expired"}, headers=admin_headers)).json()["data"]
    assert [o["id"] for o in only] == [expiring]
    summary = (await client.get("/dashboard/summary", headers=admin_headers)).json()
    assert summary["orders_by_status"] == {"pending": 0, "completed": 1, "cancelled": 0, "expired": 1}
    assert summary["total_orders"] == 2


@pytest.mark.settings(order_pending_ttl_seconds=0, order_sweep_interval_seconds=0.1)
async def test_ttl_zero_never_expires(client, admin_headers, alice, mongo):
    pid = await create_product(client, admin_headers)
    order_id = (await _order(client, alice, pid)).json()["id"]
    assert await service.expire_due_orders(mongo, ttl_seconds=0, now=datetime.now(UTC) + timedelta(days=400)) == 0
    await asyncio.sleep(0.3)
    assert (await client.get(f"/orders/alice/{order_id}", headers=alice)).json()["status"] == "pending"


async def test_two_sweepers_racing_return_stock_exactly_once(client, admin_headers, make_user, mongo_server, db_name):
    """Two sweepers on separate connections (as two hosts) race over the same overdue orders."""
    pid = await create_product(client, admin_headers, sizes=[{"size": "m", "quantity": 100}])
    order_ids = []
    for i in range(4):
        headers = await make_user(f"shopper_{i}")
        for _ in range(3):
            order_ids.append((await _order(client, headers, pid, qty=2)).json()["id"])
    assert await public_stock(client, pid) == 76
    later = datetime.now(UTC) + timedelta(hours=2)
    clients = [AsyncMongoClient(mongo_server.uri, tz_aware=True) for _ in range(2)]
    try:
        counts = await asyncio.gather(
            *[service.expire_due_orders(c[db_name], ttl_seconds=3600, now=later) for c in clients for _ in range(2)]
        )
    finally:
        for c in clients:
            await c.close()
    assert sum(counts) == 12
    assert await public_stock(client, pid) == 100
    statuses = {
        o["status"] for o in (await client.get("/orders", params={"limit": 100}, headers=admin_headers)).json()["data"]
    }
    assert statuses == {"expired"}
