"""PATCH /orders/{user_id}/{order_id} (docs/contract.md §5): the status transitions, who may make
them, and cancelling giving the stock back exactly once.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.support.helpers import assert_problem, create_product, public_available_by_size

MISSING_ID = "65f1c0ffee0000000000beef"


async def _order(client, headers, items, **extra):
    return await client.post("/orders", json={"items": items, **extra}, headers=headers)


async def test_cancel_restores_stock_once(client, admin_headers, alice):
    pid = await create_product(
        client, admin_headers, sizes=[{"size": "s", "quantity": 1}, {"size": "m", "quantity": 5}]
    )
    order_id = (await _order(client, alice, [{"productId": pid, "qty": 4}])).json()["id"]
    assert await public_available_by_size(client, pid) == {"s": 0, "m": 2}
    response = await client.patch(f"/orders/alice/{order_id}", json={"status": "cancelled"}, headers=alice)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert await public_available_by_size(client, pid) == {"s": 1, "m": 5}
    again = await client.patch(f"/orders/alice/{order_id}", json={"status": "cancelled"}, headers=alice)
    assert_problem(again, 409, "invalid_status_transition")
    assert await public_available_by_size(client, pid) == {"s": 1, "m": 5}


async def test_concurrent_cancels_restore_stock_once(client, admin_headers, alice):
    pid = await create_product(client, admin_headers, sizes=[{"size": "m", "quantity": 5}])
    order_id = (await _order(client, alice, [{"productId": pid, "qty": 3}])).json()["id"]
    results = await asyncio.gather(
        *[client.patch(f"/orders/alice/{order_id}", json={"status": "cancelled"}, headers=alice) for _ in range(6)]
    )
    assert sorted(r.status_code for r in results) == [200] + [409] * 5
    assert await public_available_by_size(client, pid) == {"m": 5}


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
    assert await public_available_by_size(client, pid) == {"m": 8}
    missing = await client.patch(f"/orders/alice/{MISSING_ID}", json={"status": "cancelled"}, headers=alice)
    assert_problem(missing, 404, "order_not_found")
