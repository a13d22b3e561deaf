"""POST /products (docs/contract.md §1, §4): the created id, what is stored (sizes, the one-size
shorthand ``stock``), and the validation bounds of a product body.
"""

from __future__ import annotations

import re

import httpx
import pytest

from tests.support.helpers import assert_problem

HEX24 = re.compile(r"^[0-9a-f]{24}$")


async def test_create_product_returns_201_and_only_a_24_hex_id(client: httpx.AsyncClient, admin_headers) -> None:
    response = await client.post(
        "/products",
        json={"name": "string", "price": 100.0, "sizes": [{"size": "string", "quantity": 0}]},
        headers=admin_headers,
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id"}
    assert HEX24.match(body["id"])


async def test_stock_without_sizes_is_one_size(client, admin_headers):
    response = await client.post("/products", json={"name": "Mug", "price": 5, "stock": 12}, headers=admin_headers)
    body = (await client.get(f"/products/{response.json()['id']}")).json()
    assert (
        body["sizes"] == [{"size": "one-size", "quantity": 12, "allocated": 0, "available": 12}] and body["stock"] == 12
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"price": 10.0, "sizes": []}, "name"),
        ({"name": "", "price": 10.0, "sizes": []}, "name"),
        ({"name": "x" * 201, "price": 10.0, "sizes": []}, "name"),
        ({"name": "x", "sizes": []}, "price"),
        ({"name": "x", "price": 0, "sizes": []}, "price"),
        ({"name": "x", "price": -1, "sizes": []}, "price"),
        ({"name": "x", "price": 1_000_000.01, "sizes": []}, "price"),
        ({"name": "x", "price": 1.005, "sizes": []}, "price"),
        ({"name": "x", "price": "abc", "sizes": []}, "price"),
        ({"name": "x", "price": 1, "description": "d" * 2001}, "description"),
        ({"name": "x", "price": 1, "rating": 5.1}, "rating"),
        ({"name": "x", "price": 1, "rating": -0.1}, "rating"),
        ({"name": "x", "price": 1, "sizes": [{"size": "m", "quantity": -1}]}, "sizes"),
        ({"name": "x", "price": 1, "sizes": [{"size": "", "quantity": 1}]}, "sizes"),
        ({"name": "x", "price": 1, "sizes": [{"size": "s" * 51, "quantity": 1}]}, "sizes"),
        ({"name": "x", "price": 1, "sizes": [{"size": "m", "quantity": 1.5}]}, "sizes"),
        ({"name": "x", "price": 1, "sizes": [{"size": "m", "quantity": 1}, {"size": "m", "quantity": 2}]}, None),
        ({"name": "x", "price": 1, "stock": 3, "sizes": [{"size": "m", "quantity": 1}]}, None),
        ({"name": "x", "price": 1, "sizes": [], "colour": "red"}, "colour"),
        ({"name": "x", "price": 1, "role": "admin"}, "role"),
    ],
)
async def test_create_product_rejects_invalid_bodies_with_problem_422(
    client: httpx.AsyncClient, admin_headers, body: dict, field: str | None
) -> None:
    response = await client.post("/products", json=body, headers=admin_headers)
    problem = assert_problem(response, 422, "validation_error")
    if field is not None:
        assert any(field in [str(p) for p in issue["loc"]] for issue in problem["errors"]), problem


async def test_create_product_rejects_malformed_json(client: httpx.AsyncClient, admin_headers) -> None:
    response = await client.post(
        "/products", content=b'{"name": ', headers={**admin_headers, "Content-Type": "application/json"}
    )
    assert_problem(response, 422, "validation_error")


async def test_bounds_accepted(client, admin_headers):
    body = {"name": "x" * 200, "price": 1_000_000, "description": "d" * 2000, "rating": 5, "sizes": []}
    assert (await client.post("/products", json=body, headers=admin_headers)).status_code == 201
