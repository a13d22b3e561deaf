"""Small helpers shared by the tests: fixtures data, problem+json assertions, products and their stock."""

from __future__ import annotations

from typing import Any

import httpx
from pymongo import AsyncMongoClient

#: Password of every test user: those the fixtures create (``make_user``, ``alice``, ``bob``,
#: ``admin_headers``) and those registered through the API (``tests.support.auth_helpers``).
TEST_PASSWORD = "s3cret-passw0rd"

PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """Assert ``response`` is an RFC 9457 problem with ``status`` (and ``code``); return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body = response.json()
    assert body.keys() >= PROBLEM_KEYS, body
    assert body["status"] == status
    if code is not None:
        assert body["code"] == code, body
    if status == 422:
        assert body["errors"], body
    assert "Traceback" not in response.text
    return body


async def create_product(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    name: str = "Shirt",
    price: float = 10.0,
    sizes: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> str:
    """Create a product through the API (as the admin whose ``headers`` are given) and return its id."""
    body: dict[str, Any] = {"name": name, "price": price}
    body["sizes"] = sizes if sizes is not None else [{"size": "m", "quantity": 10}]
    body.update(extra)
    response = await client.post("/products", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def public_stock(client: httpx.AsyncClient, product_id: str) -> int:
    """The public ``stock`` of a product (units available over all sizes), read through ``GET /products/{id}``."""
    response = await client.get(f"/products/{product_id}")
    assert response.status_code == 200, response.text
    return int(response.json()["stock"])


async def public_available_by_size(client: httpx.AsyncClient, product_id: str) -> dict[str, int]:
    """``{size: available}`` of a product, read through ``GET /products/{id}``."""
    response = await client.get(f"/products/{product_id}")
    assert response.status_code == 200, response.text
    return {s["size"]: s["available"] for s in response.json()["sizes"]}


async def stored_available(uri: str, db_name: str) -> int:
    """The units ``available`` over the stored sizes of the catalog's one product, read from the database itself.

    For tests whose API process is gone (crashed or stopped): the public ``stock`` cannot be asked for.
    """
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    try:
        doc = await client[db_name]["products"].find_one({})
        assert doc is not None, "no product stored"
        return sum(s["available"] for s in doc["sizes"])
    finally:
        await client.close()
