"""One placement leader per database: orders of every process go through the leader's batcher.

Two apps on one database stand for two workers or hosts (each its own client,
batcher and internal endpoint). The lease is a hint: these tests check that
whichever process places an order, it is placed exactly once, refused the same
way, and still placed when the leader is gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId
from fastapi import FastAPI

from backend_app.core import leases
from backend_app.main import create_app
from backend_app.orders import forwarding
from backend_app.orders.allocation import Line
from backend_app.orders.batch_checks import DEFAULT_LIMITS, OrderToPlace
from backend_app.orders.placement import batcher_for
from config import Settings
from tests.support.helpers import create_product, public_stock
from tests.support.lifespan import lifespan

Headers = dict[str, str]


async def _order(http: httpx.AsyncClient, headers: Headers, product_id: str, qty: int = 1) -> httpx.Response:
    body = {"userId": "alice", "items": [{"productId": product_id, "qty": qty}]}
    return await http.post("/orders", json=body, headers=headers)


async def _wait_for_one_leader(*apps: FastAPI) -> tuple[FastAPI, FastAPI]:
    """(leader, follower) once both apps have read the same lease (renewed every second)."""
    for _ in range(50):
        found = [forwarding.leader_for(a.state.db) for a in apps]
        addresses = [f.leader_address() if f else None for f in found]
        if addresses.count(None) == 1 and all(f is not None and f.lease is not None for f in found):
            leader = apps[addresses.index(None)]
            return leader, apps[1 - addresses.index(None)]
        await asyncio.sleep(0.1)
    raise AssertionError("no single placement leader was elected")


@pytest.fixture
async def second(settings: Settings, app: FastAPI) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """A second app on the test's database, as another worker would be."""
    other = create_app(settings)
    transport = httpx.ASGITransport(app=other)
    async with lifespan(other), httpx.AsyncClient(transport=transport, base_url="http://other") as http:
        yield other, http


async def test_orders_through_either_process_are_placed_once_by_the_leader(
    app: FastAPI, client: httpx.AsyncClient, second: Any, admin_headers: Headers, alice: Headers, mongo: Any
) -> None:
    other, other_http = second
    leader, _follower = await _wait_for_one_leader(app, other)
    lease = await mongo[leases.COLLECTION].find_one({"_id": forwarding.LEASE_PREFIX + "default"})
    assert lease["holder"] == forwarding.leader_for(leader.state.db).holder
    pid = await create_product(client, admin_headers, sizes=[{"size": "m", "quantity": 20}])
    responses = await asyncio.gather(*[_order(http, alice, pid) for _ in range(5) for http in (client, other_http)])
    assert [r.status_code for r in responses] == [201] * 10
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 10
    assert await mongo.orders.count_documents({"_id": {"$in": [ObjectId(i) for i in ids]}}) == 10
    assert await public_stock(client, pid) == 10


async def test_a_forwarded_refusal_is_the_same_problem_as_a_local_one(
    app: FastAPI, client: httpx.AsyncClient, second: Any, admin_headers: Headers, alice: Headers
) -> None:
    other, other_http = second
    leader, follower = await _wait_for_one_leader(app, other)
    pid = await create_product(client, admin_headers, sizes=[{"size": "m", "quantity": 1}])
    answers = {}
    for name, target in (("leader", leader), ("follower", follower)):
        http = client if target is app else other_http
        answers[name] = await _order(http, alice, pid, qty=5)
    assert answers["leader"].status_code == answers["follower"].status_code == 409
    assert answers["leader"].headers["content-type"] == answers["follower"].headers["content-type"]
    assert answers["leader"].json() == answers["follower"].json()
    assert await public_stock(client, pid) == 1


async def test_when_the_leader_stops_answering_each_process_places_its_own_orders(
    app: FastAPI, client: httpx.AsyncClient, second: Any, admin_headers: Headers, alice: Headers, mongo: Any
) -> None:
    other, other_http = second
    leader, follower = await _wait_for_one_leader(app, other)
    pid = await create_product(client, admin_headers, sizes=[{"size": "m", "quantity": 10}])
    # The leader's endpoint goes away while its lease is still valid (a process that hangs or dies).
    leading = forwarding.leader_for(leader.state.db)
    assert leading is not None
    await leading.stop_answering()
    follower_http = client if follower is app else other_http
    responses = await asyncio.gather(*[_order(follower_http, alice, pid) for _ in range(4)])
    assert [r.status_code for r in responses] == [201] * 4
    assert await mongo.orders.count_documents({"userId": "alice"}) == 4
    assert await public_stock(client, pid) == 6


async def test_an_order_already_placed_under_its_id_is_not_placed_again(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: Headers, alice: Headers, mongo: Any
) -> None:
    """The leader committed but its answer was lost: the receiving process places it again under the same _id."""
    pid = await create_product(client, admin_headers, sizes=[{"size": "m", "quantity": 10}])
    order_id = ObjectId()
    lines = [Line(ObjectId(pid), None, 3)]
    batcher = batcher_for(app.state.db)

    async def place() -> ObjectId:
        return await batcher.place(app.state.db, OrderToPlace(order_id, "alice", "alice", lines, None, DEFAULT_LIMITS))

    first = await place()
    again, concurrent = await asyncio.gather(place(), place())
    assert first == again == concurrent == order_id
    assert await mongo.orders.count_documents({"userId": "alice"}) == 1
    assert await public_stock(client, pid) == 7


async def test_the_internal_endpoint_refuses_requests_without_the_shared_token(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: Headers, mongo: Any
) -> None:
    pid = await create_product(client, admin_headers, sizes=[{"size": "m", "quantity": 10}])
    leader = forwarding.leader_for(app.state.db)
    assert leader is not None and leader.address.startswith("http://127.0.0.1:")
    body = {
        "order_id": str(ObjectId()),
        "user_id": "mallory",
        "placed_by": "mallory",
        "lines": [{"product_id": pid, "size": None, "qty": 1}],
        "claim": None,
        "limits": {"max_pending": 10, "max_pending_units": 500, "max_units_per_line": 100},
    }
    async with httpx.AsyncClient() as http:
        for headers in ({}, {"Authorization": "Bearer not-the-token"}):
            response = await http.post(leader.address + forwarding.PLACE_PATH, json=body, headers=headers)
            assert response.status_code == 401
    assert await mongo.orders.count_documents({}) == 0
    assert await public_stock(client, pid) == 10


async def test_a_loopback_leader_on_another_host_is_not_forwarded_to(
    app: FastAPI, client: httpx.AsyncClient, second: Any, admin_headers: Headers, alice: Headers, mongo: Any
) -> None:
    """Several hosts with ``ORDER_FORWARD_HOST`` left at 127.0.0.1: the leader's address names no one here."""
    other, other_http = second
    await _wait_for_one_leader(app, other)
    pid = await create_product(client, admin_headers, sizes=[{"size": "m", "quantity": 10}])
    far = {
        "holder": "a-process-elsewhere",
        "address": "http://127.0.0.1:9",
        "host": "another-host",
        "expires_at": datetime.now(UTC) + timedelta(minutes=5),
    }
    await mongo[leases.COLLECTION].update_one({"_id": forwarding.LEASE_PREFIX + "default"}, {"$set": far})
    for _ in range(50):  # both processes read the lease every second
        found = [forwarding.leader_for(a.state.db) for a in (app, other)]
        if all(f is not None and f.lease is not None and f.lease.host == "another-host" for f in found):
            break
        await asyncio.sleep(0.1)
    assert all(f is not None and f.leader_address() is None for f in found)
    responses = await asyncio.gather(*[_order(http, alice, pid) for http in (client, other_http)])
    assert [r.status_code for r in responses] == [201, 201]
    assert await public_stock(client, pid) == 8


async def test_when_the_leader_shuts_down_another_process_takes_the_lease(
    app: FastAPI, client: httpx.AsyncClient, second: Any, admin_headers: Headers, alice: Headers
) -> None:
    other, other_http = second
    leader, follower = await _wait_for_one_leader(app, other)
    await forwarding.stop_leader(forwarding.leader_for(leader.state.db))  # gives the lease up
    survivor = forwarding.leader_for(follower.state.db)
    assert survivor is not None
    for _ in range(40):  # the survivor reads the lease every second and takes it once it lapsed
        if survivor.lease is not None and survivor.lease.holder == survivor.holder:
            break
        await asyncio.sleep(0.1)
    assert survivor.lease is not None and survivor.lease.holder == survivor.holder
    assert survivor.leader_address() is None  # it places its orders itself now
    pid = await create_product(client, admin_headers, sizes=[{"size": "m", "quantity": 3}])
    http = client if follower is app else other_http
    assert (await _order(http, alice, pid)).status_code == 201
    assert await public_stock(client, pid) == 2
