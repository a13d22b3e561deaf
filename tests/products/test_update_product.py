"""Changing the catalog (docs/contract.md §3, §4): PUT and PATCH /products/{id}, the soft DELETE,
PUT /products/{id}/quantity, and that every catalog write needs an admin.
"""

from __future__ import annotations

from tests.support.helpers import assert_problem, create_product

MISSING_ID = "65f1c0ffee0000000000beef"


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
