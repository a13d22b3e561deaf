"""Small helpers shared by the tests: fixtures data and problem+json assertions."""

from __future__ import annotations

from typing import Any

import httpx

#: Password of every user the fixtures create (``make_user``, ``alice``, ``bob``, ``admin_headers``).
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
