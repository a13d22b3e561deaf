"""Placing, reading and changing orders (docs/contract.md §1, §3, §5, §6)."""

from __future__ import annotations

import pytest

from tests.support.helpers import assert_problem, create_product

MISSING_ID = "65f1c0ffee0000000000beef"


async def _stock(client, pid):
    body = (await client.get(f"/products/{pid}")).json()
    return {s["size"]: s["available"] for s in body["sizes"]}


async def _order(client, headers, items, **extra):
    return await client.post("/orders", json={"items": items, **extra}, headers=headers)


async def test_brief_shapes_and_captured_prices(client, admin_headers, alice):
    pid = await create_product(client, admin_headers, name="Socks", price=19.99, sizes=[{"size": "m", "quantity": 10}])
    response = await _order(client, alice, [{"productId": pid, "qty": 3}], userId="alice")
    assert response.status_code == 201 and set(response.json()) == {"id"}
    # a later price change does not alter the order
    await client.patch(f"/products/{pid}", json={"price": 50, "name": "Fancy socks"}, headers=admin_headers)
    body = (await client.get("/orders/alice", headers=alice)).json()
    assert set(body) == {"data", "page"}
    order = body["data"][0]
    assert order["id"] == response.json()["id"] and order["total"] == 59.97
    line = order["items"][0]
    assert line["qty"] == 3 and line["unit_price"] == 19.99
    assert line["productDetails"] == {"name": "Fancy socks", "id": pid}  # joined at read time
    assert body["page"]["next"] is None and body["page"]["limit"] == 1 and body["page"]["previous"] is None
    single = (await client.get(f"/orders/alice/{order['id']}", headers=alice)).json()
    assert single["status"] == "pending" and single["total"] == 59.97 and single["created_at"] and single["updated_at"]
    assert single["items"][0]["taken"] == [{"size": "m", "qty": 3}]


async def test_sizes_given_single_and_across(client, admin_headers, alice):
    multi = await create_product(
        client,
        admin_headers,
        sizes=[{"size": "s", "quantity": 2}, {"size": "m", "quantity": 2}, {"size": "l", "quantity": 5}],
    )
    single = await create_product(client, admin_headers, sizes=[{"size": "one-size", "quantity": 4}])
    response = await _order(
        client,
        alice,
        [{"productId": multi, "qty": 1, "size": "l"}, {"productId": multi, "qty": 4}, {"productId": single, "qty": 2}],
    )
    assert response.status_code == 201, response.text
    assert await _stock(client, multi) == {"s": 0, "m": 0, "l": 4}
    assert await _stock(client, single) == {"one-size": 2}
    order = (await client.get(f"/orders/alice/{response.json()['id']}", headers=alice)).json()
    taken = [(line["size"], line["taken"]) for line in order["items"]]
    assert taken == [
        ("l", [{"size": "l", "qty": 1}]),
        (None, [{"size": "s", "qty": 2}, {"size": "m", "qty": 2}]),
        (None, [{"size": "one-size", "qty": 2}]),
    ]


async def test_duplicate_lines_are_merged(client, admin_headers, alice):
    pid = await create_product(client, admin_headers, price=2.5, sizes=[{"size": "m", "quantity": 10}])
    items = [
        {"productId": pid, "qty": 2},
        {"productId": pid.upper(), "qty": 3},
        {"productId": pid, "qty": 1, "size": "m"},
    ]
    response = await _order(client, alice, items)
    order = (await client.get(f"/orders/alice/{response.json()['id']}", headers=alice)).json()
    assert [(line["qty"], line["size"]) for line in order["items"]] == [(5, None), (1, "m")]
    assert order["total"] == 15.0
    assert await _stock(client, pid) == {"m": 4}


async def test_all_or_nothing_and_short_lines_listed(client, admin_headers, alice):
    plenty = await create_product(client, admin_headers, sizes=[{"size": "m", "quantity": 10}])
    short = await create_product(
        client, admin_headers, sizes=[{"size": "m", "quantity": 1}, {"size": "l", "quantity": 1}]
    )
    response = await _order(
        client,
        alice,
        [{"productId": plenty, "qty": 5}, {"productId": short, "qty": 3}, {"productId": short, "qty": 2, "size": "l"}],
    )
    body = assert_problem(response, 409, "insufficient_stock")
    assert body["lines"] == [
        {"productId": short, "size": "l", "requested": 2, "available": 1},
        {"productId": short, "size": None, "requested": 3, "available": 2},
    ]
    assert await _stock(client, plenty) == {"m": 10}
    assert await _stock(client, short) == {"m": 1, "l": 1}
    assert (await client.get("/orders/alice", headers=alice)).json()["data"] == []


async def test_unknown_deleted_and_bad_lines(client, admin_headers, alice):
    pid = await create_product(client, admin_headers)
    gone = await create_product(client, admin_headers)
    await client.delete(f"/products/{gone}", headers=admin_headers)
    body = assert_problem(
        await _order(client, alice, [{"productId": pid, "qty": 1}, {"productId": MISSING_ID, "qty": 1}]), 404
    )
    assert body["productId"] == MISSING_ID
    assert assert_problem(await _order(client, alice, [{"productId": gone, "qty": 1}]), 404)["productId"] == gone
    assert_problem(await _order(client, alice, [{"productId": pid, "qty": 1, "size": "xxl"}]), 422, "unknown_size")
    for bad in (
        [],
        [{"productId": pid, "qty": 0}],
        [{"productId": pid, "qty": 1001}],
        [{"productId": "nope", "qty": 1}],
        [{"productId": pid, "qty": 1, "colour": "red"}],
        [{"productId": pid, "qty": 1}] * 101,
    ):
        assert_problem(await _order(client, alice, bad), 422)
    assert await _stock(client, pid) == {"m": 10}


async def test_order_authorization(client, admin_headers, alice, bob):
    pid = await create_product(client, admin_headers)
    assert_problem(await client.post("/orders", json={"items": [{"productId": pid, "qty": 1}]}), 401)
    assert_problem(await _order(client, alice, [{"productId": pid, "qty": 1}], userId="bob"), 403)
    by_admin = await _order(client, admin_headers, [{"productId": pid, "qty": 1}], userId="bob")
    assert by_admin.status_code == 201
    order_id = by_admin.json()["id"]
    assert_problem(await client.get("/orders/bob", headers=alice), 403)
    assert_problem(await client.get("/orders/bob"), 401)
    assert_problem(await client.get(f"/orders/bob/{order_id}", headers=alice), 403)
    assert_problem(await client.get(f"/orders/alice/{order_id}", headers=alice), 404, "order_not_found")
    assert_problem(await client.get(f"/orders/bob/{MISSING_ID}", headers=bob), 404, "order_not_found")
    assert_problem(await client.get("/orders/bob/not-an-id", headers=bob), 422)
    assert (await client.get(f"/orders/bob/{order_id}", headers=bob)).status_code == 200
    assert (await client.get(f"/orders/bob/{order_id}", headers=admin_headers)).status_code == 200
    assert_problem(await client.patch(f"/orders/bob/{order_id}", json={"status": "cancelled"}, headers=alice), 403)


async def test_get_orders_admin_filters_and_user_scope(client, admin_headers, alice, bob):
    pid = await create_product(client, admin_headers, sizes=[{"size": "m", "quantity": 50}])
    a1 = (await _order(client, alice, [{"productId": pid, "qty": 1}])).json()["id"]
    b1 = (await _order(client, bob, [{"productId": pid, "qty": 1}])).json()["id"]
    a2 = (await _order(client, alice, [{"productId": pid, "qty": 1}])).json()["id"]
    await client.patch(f"/orders/alice/{a2}", json={"status": "completed"}, headers=admin_headers)

    async def ids(headers, **params):
        response = await client.get("/orders", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return [o["id"] for o in response.json()["data"]]

    assert await ids(admin_headers) == [a1, b1, a2]
    assert await ids(admin_headers, user_id="alice") == [a1, a2]
    assert await ids(admin_headers, status="pending") == [a1, b1]
    assert await ids(admin_headers, user_id="alice", status="completed") == [a2]
    assert await ids(alice) == [a1, a2]
    assert await ids(alice, status="pending") == [a1]
    assert await ids(bob) == [b1]
    assert_problem(await client.get("/orders", params={"user_id": "bob"}, headers=alice), 403)
    assert_problem(await client.get("/orders", params={"status": "lost"}, headers=admin_headers), 422)
    assert_problem(await client.get("/orders"), 401)


async def test_cancel_restores_stock_once(client, admin_headers, alice):
    pid = await create_product(
        client, admin_headers, sizes=[{"size": "s", "quantity": 1}, {"size": "m", "quantity": 5}]
    )
    order_id = (await _order(client, alice, [{"productId": pid, "qty": 4}])).json()["id"]
    assert await _stock(client, pid) == {"s": 0, "m": 2}
    response = await client.patch(f"/orders/alice/{order_id}", json={"status": "cancelled"}, headers=alice)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert await _stock(client, pid) == {"s": 1, "m": 5}
    again = await client.patch(f"/orders/alice/{order_id}", json={"status": "cancelled"}, headers=alice)
    assert_problem(again, 409, "invalid_status_transition")
    assert await _stock(client, pid) == {"s": 1, "m": 5}


async def test_concurrent_cancels_restore_stock_once(client, admin_headers, alice):
    import asyncio

    pid = await create_product(client, admin_headers, sizes=[{"size": "m", "quantity": 5}])
    order_id = (await _order(client, alice, [{"productId": pid, "qty": 3}])).json()["id"]
    results = await asyncio.gather(
        *[client.patch(f"/orders/alice/{order_id}", json={"status": "cancelled"}, headers=alice) for _ in range(6)]
    )
    assert sorted(r.status_code for r in results) == [200] + [409] * 5
    assert await _stock(client, pid) == {"m": 5}


@pytest.mark.parametrize(
    ("first", "second", "who", "expected"),
    [
        ("completed", "cancelled", "admin", 409),
        ("completed", "completed", "admin", 409),
        ("cancelled", "completed", "admin", 409),
        (None, "pending", "admin", 409),
        (None, "completed", "owner", 403),
        (None, "shipped", "admin", 422),
    ],
)
async def test_illegal_transitions(client, admin_headers, alice, first, second, who, expected):
    pid = await create_product(client, admin_headers)
    order_id = (await _order(client, alice, [{"productId": pid, "qty": 1}])).json()["id"]
    if first:
        assert (
            await client.patch(f"/orders/alice/{order_id}", json={"status": first}, headers=admin_headers)
        ).status_code == 200
    headers = admin_headers if who == "admin" else alice
    response = await client.patch(f"/orders/alice/{order_id}", json={"status": second}, headers=headers)
    assert_problem(response, expected)


async def test_admin_completes_and_unknown_order(client, admin_headers, alice):
    pid = await create_product(client, admin_headers)
    order_id = (await _order(client, alice, [{"productId": pid, "qty": 2}])).json()["id"]
    response = await client.patch(f"/orders/alice/{order_id}", json={"status": "completed"}, headers=admin_headers)
    assert response.status_code == 200 and response.json()["status"] == "completed"
    assert await _stock(client, pid) == {"m": 8}
    missing = await client.patch(f"/orders/alice/{MISSING_ID}", json={"status": "cancelled"}, headers=alice)
    assert_problem(missing, 404, "order_not_found")


async def test_malformed_ids_and_parameters_are_422(client, admin_headers, alice):
    assert_problem(await client.get("/orders/a b", headers=alice), 422)
    assert_problem(await client.get("/orders/alice/not-an-id", headers=alice), 422)
    assert_problem(await client.patch("/orders/alice/not-an-id", json={"status": "cancelled"}, headers=alice), 422)
    assert_problem(await client.patch(f"/orders/alice/{MISSING_ID}", json={}, headers=alice), 422)
    assert_problem(
        await client.patch(f"/orders/alice/{MISSING_ID}", json={"status": "cancelled", "x": 1}, headers=alice), 422
    )
    assert_problem(await client.get("/orders/alice", params={"limit": 0}, headers=alice), 422)
    assert_problem(await client.get("/orders", params={"offset": 10_001}, headers=alice), 422)
    assert_problem(
        await client.get("/dashboard/summary", params={"low_stock_threshold": -1}, headers=admin_headers), 422
    )
