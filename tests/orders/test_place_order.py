"""POST /orders (docs/contract.md §1, §5, §6): the created id, how lines take stock size by size,
all or nothing when stock is short, unknown products and invalid bodies.

Reading orders back is in ``test_list_orders.py``; who may place an order for whom is in
``test_order_access.py``; never-oversell under concurrency is in ``test_order_invariants.py``.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.support.helpers import assert_problem, create_product, public_available_by_size

HEX24 = re.compile(r"^[0-9a-f]{24}$")
MISSING_ID = "65f1c0ffee0000000000beef"


async def _order(client, headers, items, **extra):
    return await client.post("/orders", json={"items": items, **extra}, headers=headers)


async def test_create_order_returns_201_and_only_a_24_hex_id(client, admin_headers, alice) -> None:
    product_id = await create_product(client, admin_headers)
    response = await _order(client, alice, [{"productId": product_id, "qty": 3}], userId="alice")
    assert response.status_code == 201, response.text
    assert set(response.json()) == {"id"}
    assert HEX24.match(response.json()["id"])


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
    assert await public_available_by_size(client, multi) == {"s": 0, "m": 0, "l": 4}
    assert await public_available_by_size(client, single) == {"one-size": 2}
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
    assert await public_available_by_size(client, pid) == {"m": 4}


async def test_total_uses_database_prices_not_client_input(client, admin_headers, alice) -> None:
    product_id = await create_product(client, admin_headers, price=2.5)
    response = await _order(client, alice, [{"productId": product_id, "qty": 2}], total=0.01)
    assert_problem(response, 422)  # unknown field refused; the client never sets the total
    await _order(client, alice, [{"productId": product_id, "qty": 2}])
    assert (await client.get("/orders/alice", headers=alice)).json()["data"][0]["total"] == 5.0


async def test_insufficient_stock_is_409_listing_each_short_line(client, admin_headers, alice) -> None:
    a = await create_product(client, admin_headers, name="A", sizes=[{"size": "m", "quantity": 2}])
    b = await create_product(client, admin_headers, name="B", sizes=[{"size": "m", "quantity": 5}])
    c = await create_product(client, admin_headers, name="C", sizes=[{"size": "m", "quantity": 1}])
    response = await _order(
        client, alice, [{"productId": a, "qty": 3}, {"productId": b, "qty": 5}, {"productId": c, "qty": 4}]
    )
    problem = assert_problem(response, 409, "insufficient_stock")
    assert problem["lines"] == [
        {"productId": a, "size": None, "requested": 3, "available": 2},
        {"productId": c, "size": None, "requested": 4, "available": 1},
    ]
    # All or nothing: B's stock, which sufficed, is untouched.
    assert await public_available_by_size(client, b) == {"m": 5}
    assert (await client.get("/orders/alice", headers=alice)).json()["data"] == []


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
    assert await public_available_by_size(client, plenty) == {"m": 10}
    assert await public_available_by_size(client, short) == {"m": 1, "l": 1}
    assert (await client.get("/orders/alice", headers=alice)).json()["data"] == []


async def test_unknown_deleted_and_unknown_size_lines(client, admin_headers, alice):
    pid = await create_product(client, admin_headers)
    gone = await create_product(client, admin_headers)
    await client.delete(f"/products/{gone}", headers=admin_headers)
    body = assert_problem(
        await _order(client, alice, [{"productId": pid, "qty": 1}, {"productId": MISSING_ID, "qty": 1}]),
        404,
        "product_not_found",
    )
    assert body["productId"] == MISSING_ID
    assert MISSING_ID in body["detail"]
    assert assert_problem(await _order(client, alice, [{"productId": gone, "qty": 1}]), 404)["productId"] == gone
    assert_problem(await _order(client, alice, [{"productId": pid, "qty": 1, "size": "xxl"}]), 422, "unknown_size")
    assert await public_available_by_size(client, pid) == {"m": 10}  # nothing taken


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
        {"items": [{"productId": MISSING_ID, "qty": 1, "colour": "red"}]},
        {"items": [{"productId": MISSING_ID, "qty": 1}] * 101},
        {"userId": "a b", "items": [{"productId": MISSING_ID, "qty": 1}]},
    ],
)
async def test_invalid_order_bodies_are_422(client, admin_headers, alice, body: dict) -> None:
    """Each body is refused as a whole, also when its lines name a real product, and takes nothing."""
    pid = await create_product(client, admin_headers)
    real = json.loads(json.dumps(body).replace(MISSING_ID, pid))
    assert_problem(await client.post("/orders", json=real, headers=alice), 422, "validation_error")
    assert await public_available_by_size(client, pid) == {"m": 10}
