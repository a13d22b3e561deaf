"""Catalog administration through the HTTP API (docs/contract.md §1, §3, §4)."""

from __future__ import annotations

import pytest

from tests.support.helpers import assert_problem, create_product

MISSING_ID = "65f1c0ffee0000000000beef"


async def test_get_product_has_sizes_and_derived_stock(client, admin_headers):
    pid = await create_product(
        client,
        admin_headers,
        name="Tee",
        price=19.99,
        sizes=[{"size": "s", "quantity": 2}, {"size": "l", "quantity": 5}],
        category="tops",
        rating=4.5,
        description="cotton",
    )
    body = (await client.get(f"/products/{pid}")).json()
    assert body["stock"] == 7
    assert body["sizes"] == [
        {"size": "s", "quantity": 2, "allocated": 0, "available": 2},
        {"size": "l", "quantity": 5, "allocated": 0, "available": 5},
    ]
    assert body["price"] == 19.99 and body["category"] == "tops" and body["rating"] == 4.5
    assert body["created_at"] and body["updated_at"]


async def test_stock_without_sizes_is_one_size(client, admin_headers):
    response = await client.post("/products", json={"name": "Mug", "price": 5, "stock": 12}, headers=admin_headers)
    body = (await client.get(f"/products/{response.json()['id']}")).json()
    assert (
        body["sizes"] == [{"size": "one-size", "quantity": 12, "allocated": 0, "available": 12}] and body["stock"] == 12
    )


async def test_get_unknown_malformed_product(client):
    assert_problem(await client.get(f"/products/{MISSING_ID}"), 404, "product_not_found")
    assert_problem(await client.get("/products/not-an-id"), 422)


async def test_put_replaces_and_clears_omitted_fields(client, admin_headers):
    pid = await create_product(client, admin_headers, name="Old", price=10, category="c", rating=3.0)
    before = (await client.get(f"/products/{pid}")).json()
    response = await client.put(
        f"/products/{pid}",
        json={"name": "New", "price": 12.5, "sizes": [{"size": "xl", "quantity": 3}]},
        headers=admin_headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "New" and body["price"] == 12.5 and body["stock"] == 3
    assert body["category"] is None and body["rating"] is None
    assert body["created_at"] == before["created_at"] and body["updated_at"] >= before["updated_at"]


async def test_patch_updates_given_fields_only(client, admin_headers):
    pid = await create_product(client, admin_headers, name="Cap", price=8, category="hats", rating=4.0)
    response = await client.patch(f"/products/{pid}", json={"price": 9.99, "rating": None}, headers=admin_headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "Cap" and body["price"] == 9.99 and body["category"] == "hats" and body["rating"] is None
    assert_problem(await client.patch(f"/products/{pid}", json={"name": None}, headers=admin_headers), 422)
    assert_problem(await client.patch(f"/products/{pid}", json={"colour": "red"}, headers=admin_headers), 422)
    sizes = [{"size": "a", "quantity": 1}, {"size": "a", "quantity": 2}]
    assert_problem(await client.patch(f"/products/{pid}", json={"sizes": sizes}, headers=admin_headers), 422)


async def test_soft_delete(client, admin_headers, alice):
    keep = await create_product(client, admin_headers, name="Keep")
    gone = await create_product(client, admin_headers, name="Gone")
    order = await client.post("/orders", json={"items": [{"productId": gone, "qty": 1}]}, headers=alice)
    assert order.status_code == 201
    response = await client.delete(f"/products/{gone}", headers=admin_headers)
    assert response.status_code == 204 and response.content == b""
    assert_problem(await client.get(f"/products/{gone}"), 404, "product_not_found")
    assert [p["id"] for p in (await client.get("/products")).json()["data"]] == [keep]
    retry = await client.post("/orders", json={"items": [{"productId": gone, "qty": 1}]}, headers=alice)
    assert_problem(retry, 404, "product_not_found")
    assert_problem(await client.delete(f"/products/{gone}", headers=admin_headers), 404)
    assert_problem(await client.put(f"/products/{gone}", json={"name": "x", "price": 1}, headers=admin_headers), 404)
    assert_problem(await client.patch(f"/products/{gone}", json={"price": 2}, headers=admin_headers), 404)
    past = (await client.get("/orders/alice", headers=alice)).json()["data"][0]
    assert past["items"][0]["productDetails"] == {"name": "Gone", "id": gone}


async def test_set_quantity(client, admin_headers):
    pid = await create_product(
        client, admin_headers, sizes=[{"size": "m", "quantity": 1}, {"size": "l", "quantity": 2}]
    )
    response = await client.put(f"/products/{pid}/quantity", json={"size": "l", "quantity": 25}, headers=admin_headers)
    assert response.status_code == 200, response.text
    assert response.json()["sizes"] == [
        {"size": "m", "quantity": 1, "allocated": 0, "available": 1},
        {"size": "l", "quantity": 25, "allocated": 0, "available": 25},
    ]
    assert response.json()["stock"] == 26
    missing_size = await client.put(
        f"/products/{pid}/quantity", json={"size": "xl", "quantity": 1}, headers=admin_headers
    )
    assert_problem(missing_size, 404, "size_not_found")
    negative = await client.put(f"/products/{pid}/quantity", json={"size": "m", "quantity": -1}, headers=admin_headers)
    assert_problem(negative, 422)
    unknown = await client.put(
        f"/products/{MISSING_ID}/quantity", json={"size": "m", "quantity": 1}, headers=admin_headers
    )
    assert_problem(unknown, 404, "product_not_found")


@pytest.mark.parametrize(
    "body",
    [
        {"name": "", "price": 1},
        {"name": "x" * 201, "price": 1},
        {"name": "x", "price": 0},
        {"name": "x", "price": -5},
        {"name": "x", "price": 1_000_000.01},
        {"name": "x", "price": 1.234},
        {"name": "x", "price": 1, "description": "d" * 2001},
        {"name": "x", "price": 1, "rating": 5.1},
        {"name": "x", "price": 1, "rating": -0.1},
        {"name": "x", "price": 1, "sizes": [{"size": "", "quantity": 1}]},
        {"name": "x", "price": 1, "sizes": [{"size": "s" * 51, "quantity": 1}]},
        {"name": "x", "price": 1, "sizes": [{"size": "m", "quantity": -1}]},
        {"name": "x", "price": 1, "sizes": [{"size": "m", "quantity": 1.5}]},
        {"name": "x", "price": 1, "sizes": [{"size": "m", "quantity": 1}, {"size": "m", "quantity": 2}]},
        {"name": "x", "price": 1, "stock": 3, "sizes": [{"size": "m", "quantity": 1}]},
        {"name": "x", "price": 1, "role": "admin"},
    ],
)
async def test_create_validation_bounds(client, admin_headers, body):
    assert_problem(await client.post("/products", json=body, headers=admin_headers), 422)


async def test_bounds_accepted(client, admin_headers):
    body = {"name": "x" * 200, "price": 1_000_000, "description": "d" * 2000, "rating": 5, "sizes": []}
    assert (await client.post("/products", json=body, headers=admin_headers)).status_code == 201


async def test_writes_need_admin(client, alice):
    pid_path = f"/products/{MISSING_ID}"
    calls = [
        ("POST", "/products", {"name": "x", "price": 1}),
        ("PUT", pid_path, {"name": "x", "price": 1}),
        ("PATCH", pid_path, {"price": 1}),
        ("DELETE", pid_path, None),
        ("PUT", pid_path + "/quantity", {"size": "m", "quantity": 1}),
    ]
    for method, path, body in calls:
        assert_problem(await client.request(method, path, json=body), 401)
        assert_problem(await client.request(method, path, json=body, headers=alice), 403)


async def test_list_filters(client, admin_headers):
    cheap = await create_product(client, admin_headers, name="Red shirt", price=5, category="tops")
    mid = await create_product(
        client, admin_headers, name="Blue SHIRT", price=20, category="tops", sizes=[{"size": "large", "quantity": 1}]
    )
    dear = await create_product(client, admin_headers, name="Boots", price=120.5, category="shoes")

    async def ids(**params):
        response = await client.get("/products", params=params)
        assert response.status_code == 200, response.text
        return [p["id"] for p in response.json()["data"]]

    assert await ids(category="tops") == [cheap, mid]
    assert await ids(min_price=20) == [mid, dear]
    assert await ids(max_price=20) == [cheap, mid]
    assert await ids(min_price=5.01, max_price=120.49) == [mid]
    assert await ids(category="tops", max_price=10) == [cheap]
    assert await ids(size="large") == [mid]
    assert await ids(name="shirt") == [cheap, mid]
    assert await ids(name="^b.*t$") == [mid]
    assert await ids(name="^bo") == [dear]
    assert_problem(await client.get("/products", params={"min_price": 30, "max_price": 10}), 422)
    assert_problem(await client.get("/products", params={"min_price": -1}), 422)
    assert_problem(await client.get("/products", params={"sort": "name"}), 422)


async def test_list_sorts(client, admin_headers):
    a = await create_product(client, admin_headers, name="a", price=30)
    b = await create_product(client, admin_headers, name="b", price=10)
    c = await create_product(client, admin_headers, name="c", price=20)
    d = await create_product(client, admin_headers, name="d", price=10)

    async def ids(sort):
        response = await client.get("/products", params={"sort": sort})
        assert response.status_code == 200, response.text
        return [p["id"] for p in response.json()["data"]]

    assert await ids("_id") == [a, b, c, d]
    assert await ids("price") == [b, d, c, a]
    assert await ids("-price") == [a, c, d, b]
    assert await ids("created_at") == [a, b, c, d]
    assert await ids("-created_at") == [d, c, b, a]
