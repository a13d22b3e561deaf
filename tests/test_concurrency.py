"""Concurrent orders never oversell, never go negative, never half-apply (spec §5)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

from tests.helpers import assert_problem, create_product

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

    stock_a = {s["size"]: s["quantity"] for s in (await client.get(f"/products/{a}")).json()["sizes"]}
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
