"""Stock invariants of order placement under concurrency (docs/contract.md §5): no oversell, never negative,
all or nothing, durable commits. The one home of the never-oversell checks."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

from pymongo import monitoring

from tests.support.helpers import assert_problem, create_product, public_stock


class _CommitWatcher(monitoring.CommandListener):
    """Records the write concern of every ``commitTransaction`` while :attr:`active`."""

    def __init__(self) -> None:
        self.active = False
        self.write_concerns: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.active and event.command_name == "commitTransaction":
            self.write_concerns.append(dict(event.command.get("writeConcern", {})))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


WATCHER = _CommitWatcher()
monitoring.register(WATCHER)  # applies to clients created from now on (the app's is created in its lifespan)


async def test_fifty_buyers_twenty_units_exactly_twenty_sold(client, admin_headers, make_user):
    pid = await create_product(client, admin_headers, sizes=[{"size": "m", "quantity": 20}])
    buyers = [await make_user(f"buyer_{i}") for i in range(50)]
    responses = await asyncio.gather(
        *[client.post("/orders", json={"items": [{"productId": pid, "qty": 1}]}, headers=h) for h in buyers]
    )
    placed = [r for r in responses if r.status_code == 201]
    for r in responses:
        if r.status_code != 201:
            assert_problem(r, 409, "insufficient_stock")
    assert len(placed) == 20 and len({r.json()["id"] for r in placed}) == 20
    assert await public_stock(client, pid) == 0
    orders = (await client.get("/orders", params={"limit": 100}, headers=admin_headers)).json()["data"]
    assert sum(line["qty"] for o in orders for line in o["items"]) == 20


async def test_a_short_order_in_a_concurrent_batch_leaves_the_others_whole(client, admin_headers, make_user):
    """Orders arriving together share a transaction; one short line refuses its own order only,
    and every other product of that order keeps its stock."""
    a = await create_product(client, admin_headers, name="A", sizes=[{"size": "m", "quantity": 10}])
    b = await create_product(client, admin_headers, name="B", sizes=[{"size": "m", "quantity": 10}])
    c = await create_product(client, admin_headers, name="C", sizes=[{"size": "m", "quantity": 2}])
    users = [await make_user(f"mixed_{i}") for i in range(6)]
    bodies = [
        [{"productId": a, "qty": 1}],
        [{"productId": a, "qty": 2}, {"productId": b, "qty": 3}, {"productId": c, "qty": 5}],  # c is short
        [{"productId": b, "qty": 1}],
        [{"productId": c, "qty": 2}],
        [{"productId": a, "qty": 1}, {"productId": c, "qty": 1}],  # c is gone by now (FIFO) or short
        [{"productId": b, "qty": 2}],
    ]
    responses = await asyncio.gather(
        *[client.post("/orders", json={"items": body}, headers=h) for body, h in zip(bodies, users, strict=True)]
    )
    codes = [r.status_code for r in responses]
    (short,) = assert_problem(responses[1], 409, "insufficient_stock")["lines"]
    assert short["productId"] == c and short["requested"] == 5 and short["available"] <= 2
    assert codes[0] == codes[2] == codes[5] == 201
    assert sorted([codes[3], codes[4]]) == [201, 409]  # c has 2 units: exactly one of them gets them
    taken_a = 1 + (1 if codes[4] == 201 else 0)
    assert await public_stock(client, a) == 10 - taken_a
    assert await public_stock(client, b) == 10 - 1 - 2
    assert await public_stock(client, c) == (0 if codes[3] == 201 else 1)


async def test_orders_and_status_changes_commit_with_majority_journaled(client, admin_headers, alice):
    pid = await create_product(client, admin_headers)
    WATCHER.write_concerns.clear()
    WATCHER.active = True
    try:
        order_id = (await client.post("/orders", json={"items": [{"productId": pid, "qty": 1}]}, headers=alice)).json()[
            "id"
        ]
        cancelled = await client.patch(f"/orders/alice/{order_id}", json={"status": "cancelled"}, headers=alice)
        assert cancelled.status_code == 200
    finally:
        WATCHER.active = False
    assert len(WATCHER.write_concerns) == 2
    assert all(wc == {"w": "majority", "j": True} for wc in WATCHER.write_concerns), WATCHER.write_concerns


CLIENTS = 50


async def test_fifty_clients_race_for_the_last_units(client, admin_headers, make_user):
    a = await create_product(
        client, admin_headers, name="A", sizes=[{"size": "s", "quantity": 4}, {"size": "m", "quantity": 6}]
    )
    b = await create_product(client, admin_headers, name="B", sizes=[{"size": "one-size", "quantity": 10}])
    users = [(f"racer_{i}", await make_user(f"racer_{i}")) for i in range(CLIENTS)]
    rng = random.Random(2024)
    requests = []
    for username, headers in users:
        lines = []
        if rng.random() < 0.7:
            line = {"productId": a, "qty": rng.randint(1, 3)}
            if rng.random() < 0.3:
                line["size"] = rng.choice(["s", "m"])
            lines.append(line)
        if not lines or rng.random() < 0.6:
            lines.append({"productId": b, "qty": rng.randint(1, 3)})
        requests.append((username, headers, lines))

    responses = await asyncio.gather(
        *[client.post("/orders", json={"items": lines}, headers=headers) for _, headers, lines in requests]
    )
    placed = []
    for (username, headers, lines), response in zip(requests, responses, strict=True):
        if response.status_code == 201:
            placed.append((username, headers, lines, response.json()["id"]))
        else:
            assert_problem(response, 409, "insufficient_stock")
    assert placed and len(placed) < CLIENTS

    stock_a = {s["size"]: s["available"] for s in (await client.get(f"/products/{a}")).json()["sizes"]}
    stock_b = (await client.get(f"/products/{b}")).json()["stock"]
    assert min(stock_a.values()) >= 0 and stock_b >= 0

    sold: Counter[str] = Counter()
    taken_a: Counter[str] = Counter()
    for username, headers, lines, order_id in placed:
        order = (await client.get(f"/orders/{username}/{order_id}", headers=headers)).json()
        # no partial order: every requested line is present with its full quantity
        assert [(line["productDetails"]["id"], line["qty"]) for line in order["items"]] == [
            (line["productId"], line["qty"]) for line in lines
        ]
        for line in order["items"]:
            assert sum(t["qty"] for t in line["taken"]) == line["qty"]
            sold[line["productDetails"]["id"]] += line["qty"]
            if line["productDetails"]["id"] == a:
                taken_a.update({t["size"]: t["qty"] for t in line["taken"]})
    assert sold[a] <= 10 and sold[b] <= 10
    assert sold[a] == 10 - sum(stock_a.values()) and sold[b] == 10 - stock_b
    assert taken_a["s"] == 4 - stock_a["s"] and taken_a["m"] == 6 - stock_a["m"]
