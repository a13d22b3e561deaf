"""GET /products/{product_id} (docs/contract.md §1, §4): the stored fields, the sizes with their
``allocated``/``available`` counts and the derived ``stock``; unknown and malformed ids.
"""

from __future__ import annotations

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
    assert body["name"] == "Tee" and body["price"] == 19.99 and body["category"] == "tops" and body["rating"] == 4.5
    assert body["created_at"] and body["updated_at"]


async def test_get_unknown_malformed_product(client):
    assert_problem(await client.get(f"/products/{MISSING_ID}"), 404, "product_not_found")
    assert_problem(await client.get("/products/not-an-id"), 422)
