"""Reading orders (docs/contract.md §1, §5, §6): GET /orders/{user_id}, GET /orders/{user_id}/{order_id}
and GET /orders — the brief's order shape, exact totals, prices captured at order time, product
details joined at read time, page metadata, and the admin filters of GET /orders.
"""

from __future__ import annotations

import pytest
from bson import ObjectId

from tests.support.helpers import assert_problem, create_product


async def _order(client, headers, items, **extra):
    return await client.post("/orders", json={"items": items, **extra}, headers=headers)


async def test_list_orders_shape_matches_the_brief(client, admin_headers, alice) -> None:
    shirt = await create_product(client, admin_headers, name="Shirt", price=19.99)
    hat = await create_product(client, admin_headers, name="Hat", price=5.0)
    order_id = (
        await _order(client, alice, [{"productId": shirt, "qty": 3}, {"productId": hat, "qty": 1}], userId="alice")
    ).json()["id"]
    response = await client.get("/orders/alice", headers=alice)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"data", "page"}
    assert body["page"]["next"] is None and body["page"]["limit"] == 1 and body["page"]["previous"] is None
    [order] = body["data"]
    assert order["id"] == order_id
    assert {"id", "items", "total"} <= set(order)
    assert order["items"][0]["productDetails"] == {"name": "Shirt", "id": shirt}
    assert order["items"][0]["qty"] == 3
    assert order["items"][1]["productDetails"] == {"name": "Hat", "id": hat}
    assert order["items"][1]["qty"] == 1
    # Exact money: 3 × 19.99 + 5.00 = 64.97, a JSON number (docs/contract.md §6).
    assert order["total"] == 64.97
    assert '"total":64.97' in response.text


async def test_prices_are_captured_and_names_joined_at_read_time(client, admin_headers, alice, mongo):
    pid = await create_product(client, admin_headers, name="Socks", price=19.99, sizes=[{"size": "m", "quantity": 10}])
    order_id = (await _order(client, alice, [{"productId": pid, "qty": 3}])).json()["id"]
    # a later price change does not alter the order; a later name change shows
    await client.patch(f"/products/{pid}", json={"price": 50, "name": "Fancy socks"}, headers=admin_headers)
    response = await client.get("/orders/alice", headers=alice)
    order = response.json()["data"][0]
    assert order["id"] == order_id and order["total"] == 59.97
    assert '"total":59.97' in response.text  # never 59.970000000000006
    line = order["items"][0]
    assert line["qty"] == 3 and line["unit_price"] == 19.99
    assert line["productDetails"] == {"name": "Fancy socks", "id": pid}
    # the name is read from the stored product itself, whichever way it changed
    await mongo["products"].update_one({"_id": ObjectId(pid)}, {"$set": {"name": "New name"}})
    order = (await client.get("/orders/alice", headers=alice)).json()["data"][0]
    assert order["items"][0]["productDetails"] == {"name": "New name", "id": pid}
    single = (await client.get(f"/orders/alice/{order_id}", headers=alice)).json()
    assert single["status"] == "pending" and single["total"] == 59.97 and single["created_at"] and single["updated_at"]
    assert single["items"][0]["taken"] == [{"size": "m", "qty": 3}]


async def test_removed_product_still_shows_the_name_captured_at_order_time(client, admin_headers, alice, mongo) -> None:
    product_id = await create_product(client, admin_headers, name="Vanishing")
    await _order(client, alice, [{"productId": product_id, "qty": 1}])
    await mongo["products"].delete_one({"_id": ObjectId(product_id)})
    order = (await client.get("/orders/alice", headers=alice)).json()["data"][0]
    assert order["items"][0]["productDetails"] == {"name": "Vanishing", "id": product_id}


class TestOrderPages:
    """``page`` of GET /orders/{user_id}: {next, limit (count in page), previous} at every edge (§1)."""

    @pytest.fixture
    async def order_ids(self, client, admin_headers, alice) -> list[str]:
        product_id = await create_product(client, admin_headers, sizes=[{"size": "m", "quantity": 100}])
        ids = []
        for _ in range(5):
            r = await _order(client, alice, [{"productId": product_id, "qty": 1}])
            ids.append(r.json()["id"])
        return ids

    async def test_pages_in_id_order(self, client, alice, order_ids) -> None:
        first = (await client.get("/orders/alice", params={"limit": 2}, headers=alice)).json()
        assert [o["id"] for o in first["data"]] == sorted(order_ids)[:2]
        assert first["page"] == first["page"] | {"next": "2", "limit": 2, "previous": None}
        middle = (await client.get("/orders/alice", params={"limit": 2, "offset": 2}, headers=alice)).json()
        assert [o["id"] for o in middle["data"]] == sorted(order_ids)[2:4]
        assert middle["page"]["next"] == "4" and middle["page"]["previous"] == 0
        last = (await client.get("/orders/alice", params={"limit": 2, "offset": 4}, headers=alice)).json()
        assert [o["id"] for o in last["data"]] == sorted(order_ids)[4:]
        assert last["page"]["next"] is None and last["page"]["limit"] == 1 and last["page"]["previous"] == 2
        past = (await client.get("/orders/alice", params={"offset": 99}, headers=alice)).json()
        assert past["data"] == [] and past["page"]["limit"] == 0 and past["page"]["next"] is None

    async def test_only_the_users_orders_are_listed(self, client, alice, bob, order_ids) -> None:
        assert (await client.get("/orders/bob", headers=bob)).json()["data"] == []

    @pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"offset": -1}, {"offset": 10001}])
    async def test_bounds(self, client, alice, params) -> None:
        assert_problem(await client.get("/orders/alice", params=params, headers=alice), 422)


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
