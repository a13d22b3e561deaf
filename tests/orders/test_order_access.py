"""Who may call the order routes (docs/contract.md §3: anonymous 401, another user's orders 403,
an admin acting for anyone), and malformed ids and parameters in their paths and queries (422).
"""

from __future__ import annotations

from tests.support.helpers import assert_problem, create_product

MISSING_ID = "65f1c0ffee0000000000beef"


async def _order(client, headers, items, **extra):
    return await client.post("/orders", json={"items": items, **extra}, headers=headers)


async def test_order_authorization(client, admin_headers, alice, bob):
    pid = await create_product(client, admin_headers)
    assert_problem(await client.post("/orders", json={"items": [{"productId": pid, "qty": 1}]}), 401)
    assert_problem(await _order(client, alice, [{"productId": pid, "qty": 1}], userId="bob"), 403)
    by_admin = await _order(client, admin_headers, [{"productId": pid, "qty": 1}], userId="bob")
    assert by_admin.status_code == 201
    order_id = by_admin.json()["id"]
    assert_problem(await client.get("/orders/bob", headers=alice), 403)
    assert_problem(await client.get("/orders/bob"), 401)
    assert_problem(await client.get(f"/orders/bob/{order_id}", headers=alice), 403)
    assert_problem(await client.get(f"/orders/alice/{order_id}", headers=alice), 404, "order_not_found")
    assert_problem(await client.get(f"/orders/bob/{MISSING_ID}", headers=bob), 404, "order_not_found")
    assert_problem(await client.get("/orders/bob/not-an-id", headers=bob), 422)
    assert (await client.get(f"/orders/bob/{order_id}", headers=bob)).status_code == 200
    assert (await client.get(f"/orders/bob/{order_id}", headers=admin_headers)).status_code == 200
    assert_problem(await client.patch(f"/orders/bob/{order_id}", json={"status": "cancelled"}, headers=alice), 403)


async def test_malformed_ids_and_parameters_are_422(client, admin_headers, alice):
    assert_problem(await client.get("/orders/a b", headers=alice), 422)
    assert_problem(await client.get("/orders/alice/not-an-id", headers=alice), 422)
    assert_problem(await client.patch("/orders/alice/not-an-id", json={"status": "cancelled"}, headers=alice), 422)
    assert_problem(await client.patch(f"/orders/alice/{MISSING_ID}", json={}, headers=alice), 422)
    assert_problem(
        await client.patch(f"/orders/alice/{MISSING_ID}", json={"status": "cancelled", "x": 1}, headers=alice), 422
    )
    assert_problem(await client.get("/orders", params={"offset": 10_001}, headers=alice), 422)
    assert_problem(
        await client.get("/dashboard/summary", params={"low_stock_threshold": -1}, headers=admin_headers), 422
    )
