"""The brief's order calls (docs/contract.md §1, §5, §6): POST /orders and GET /orders/{user_id}."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.support.helpers import assert_problem, create_product

HEX24 = re.compile(r"^[0-9a-f]{24}$")
MISSING_ID = "0123456789abcdef01234567"


async def stock_of(client: httpx.AsyncClient, product_id: str) -> dict[str, int]:
    body = (await client.get(f"/products/{product_id}")).json()
    return {s["size"]: s["available"] for s in body["sizes"]}


async def test_create_order_returns_201_and_only_a_24_hex_id(client, admin_headers, alice) -> None:
    product_id = await create_product(client, admin_headers)
    response = await client.post(
        "/orders", json={"userId": "alice", "items": [{"productId": product_id, "qty": 3}]}, headers=alice
    )
    assert response.status_code == 201, response.text
    assert set(response.json()) == {"id"}
    assert HEX24.match(response.json()["id"])


async def test_list_orders_shape_matches_the_brief(client, admin_headers, alice) -> None:
    shirt = await create_product(client, admin_headers, name="Shirt", price=19.99)
    hat = await create_product(client, admin_headers, name="Hat", price=5.0)
    order_id = (
        await client.post(
            "/orders",
            json={"userId": "alice", "items": [{"productId": shirt, "qty": 3}, {"productId": hat, "qty": 1}]},
            headers=alice,
        )
    ).json()["id"]
    response = await client.get("/orders/alice", headers=alice)
    assert response.status_code == 200
    body = response.json()
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


async def test_total_is_exact_to_the_cent(client, admin_headers, alice) -> None:
    product_id = await create_product(client, admin_headers, price=19.99)
    await client.post(
        "/orders", json={"userId": "alice", "items": [{"productId": product_id, "qty": 3}]}, headers=alice
    )
    response = await client.get("/orders/alice", headers=alice)
    assert response.json()["data"][0]["total"] == 59.97
    assert '"total":59.97' in response.text  # never 59.970000000000006


async def test_total_uses_database_prices_not_client_input(client, admin_headers, alice) -> None:
    product_id = await create_product(client, admin_headers, price=2.5)
    response = await client.post(
        "/orders",
        json={"userId": "alice", "items": [{"productId": product_id, "qty": 2}], "total": 0.01},
        headers=alice,
    )
    assert_problem(response, 422)  # unknown field refused; the client never sets the total
    await client.post("/orders", json={"items": [{"productId": product_id, "qty": 2}]}, headers=alice)
    assert (await client.get("/orders/alice", headers=alice)).json()["data"][0]["total"] == 5.0


async def test_product_details_come_from_the_catalog_at_read_time(client, admin_headers, alice, mongo) -> None:
    product_id = await create_product(client, admin_headers, name="Old name")
    await client.post("/orders", json={"items": [{"productId": product_id, "qty": 1}]}, headers=alice)
    from bson import ObjectId

    await mongo["products"].update_one({"_id": ObjectId(product_id)}, {"$set": {"name": "New name"}})
    order = (await client.get("/orders/alice", headers=alice)).json()["data"][0]
    assert order["items"][0]["productDetails"] == {"name": "New name", "id": product_id}


async def test_removed_product_still_shows_the_name_captured_at_order_time(client, admin_headers, alice, mongo) -> None:
    product_id = await create_product(client, admin_headers, name="Vanishing")
    await client.post("/orders", json={"items": [{"productId": product_id, "qty": 1}]}, headers=alice)
    from bson import ObjectId

    await mongo["products"].delete_one({"_id": ObjectId(product_id)})
    order = (await client.get("/orders/alice", headers=alice)).json()["data"][0]
    assert order["items"][0]["productDetails"] == {"name": "Vanishing", "id": product_id}


async def test_unknown_product_is_404_naming_it(client, admin_headers, alice) -> None:
    real = await create_product(client, admin_headers)
    response = await client.post(
        "/orders", json={"items": [{"productId": real, "qty": 1}, {"productId": MISSING_ID, "qty": 1}]}, headers=alice
    )
    problem = assert_problem(response, 404, "product_not_found")
    assert MISSING_ID in problem["detail"]
    assert problem["productId"] == MISSING_ID
    assert await stock_of(client, real) == {"m": 10}  # nothing taken


async def test_insufficient_stock_is_409_listing_each_short_line(client, admin_headers, alice) -> None:
    a = await create_product(client, admin_headers, name="A", sizes=[{"size": "m", "quantity": 2}])
    b = await create_product(client, admin_headers, name="B", sizes=[{"size": "m", "quantity": 5}])
    c = await create_product(client, admin_headers, name="C", sizes=[{"size": "m", "quantity": 1}])
    response = await client.post(
        "/orders",
        json={"items": [{"productId": a, "qty": 3}, {"productId": b, "qty": 5}, {"productId": c, "qty": 4}]},
        headers=alice,
    )
    problem = assert_problem(response, 409, "insufficient_stock")
    assert problem["lines"] == [
        {"productId": a, "size": None, "requested": 3, "available": 2},
        {"productId": c, "size": None, "requested": 4, "available": 1},
    ]
    # All or nothing: B's stock, which sufficed, is untouched.
    assert await stock_of(client, b) == {"m": 5}
    assert (await client.get("/orders/alice", headers=alice)).json()["data"] == []


async def test_order_takes_stock(client, admin_headers, alice) -> None:
    product_id = await create_product(client, admin_headers, sizes=[{"size": "m", "quantity": 10}])
    await client.post("/orders", json={"items": [{"productId": product_id, "qty": 4}]}, headers=alice)
    assert await stock_of(client, product_id) == {"m": 6}


@pytest.mark.parametrize(
    "body",
    [
        {"items": []},
        {"userId": "alice"},
        {"items": [{"productId": "not-an-id", "qty": 1}]},
        {"items": [{"productId": MISSING_ID, "qty": 0}]},
        {"items": [{"productId": MISSING_ID, "qty": 1001}]},
        {"items": [{"productId": MISSING_ID}]},
        {"items": [{"productId": MISSING_ID, "qty": "two"}]},
        {"items": [{"productId": MISSING_ID, "qty": 1}] * 101},
        {"userId": "a b", "items": [{"productId": MISSING_ID, "qty": 1}]},
    ],
)
async def test_invalid_order_bodies_are_422(client, alice, body: dict) -> None:
    assert_problem(await client.post("/orders", json=body, headers=alice), 422, "validation_error")


class TestOrderPages:
    @pytest.fixture
    async def order_ids(self, client, admin_headers, alice) -> list[str]:
        product_id = await create_product(client, admin_headers, sizes=[{"size": "m", "quantity": 100}])
        ids = []
        for _ in range(5):
            r = await client.post("/orders", json={"items": [{"productId": product_id, "qty": 1}]}, headers=alice)
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
