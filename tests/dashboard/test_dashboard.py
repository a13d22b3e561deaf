"""``GET /dashboard/summary`` against hand-computed figures (docs/contract.md §7)."""

from __future__ import annotations

from tests.support.helpers import assert_problem, create_product


async def test_empty_shop(client, admin_headers):
    body = (await client.get("/dashboard/summary", headers=admin_headers)).json()
    assert body == {
        "total_products": 0,
        "average_rating": None,
        "highest_priced_product": None,
        "recent_products": [],
        "total_orders": 0,
        "orders_by_status": {"pending": 0, "completed": 0, "cancelled": 0, "expired": 0},
        "revenue": 0.0,
        "top_products": [],
        "low_stock": [],
        "low_stock_threshold": 5,
    }


async def test_summary_matches_hand_computed_values(client, admin_headers, alice, bob):
    def sizes(*quantities):
        return [{"size": f"s{i}", "quantity": q} for i, q in enumerate(quantities)]

    tee = await create_product(client, admin_headers, name="Tee", price=19.99, rating=4.0, sizes=sizes(10, 10))
    mug = await create_product(client, admin_headers, name="Mug", price=7.5, rating=3.5, sizes=sizes(6))
    lamp = await create_product(client, admin_headers, name="Lamp", price=120.0, sizes=sizes(3))
    sock = await create_product(client, admin_headers, name="Sock", price=2.25, rating=5.0, sizes=sizes(50))
    pen = await create_product(client, admin_headers, name="Pen", price=1.1, rating=1.0, sizes=sizes(9))
    gone = await create_product(client, admin_headers, name="Gone", price=999.0, rating=0.0, sizes=sizes(1))
    await client.delete(f"/products/{gone}", headers=admin_headers)

    async def order(headers, items):
        response = await client.post("/orders", json={"items": items}, headers=headers)
        assert response.status_code == 201, response.text
        return response.json()["id"]

    o1 = await order(alice, [{"productId": tee, "qty": 3}, {"productId": mug, "qty": 2}])  # 59.97 + 15.00 = 74.97
    o2 = await order(bob, [{"productId": sock, "qty": 4}])  # 9.00
    o3 = await order(alice, [{"productId": lamp, "qty": 1}, {"productId": tee, "qty": 1}])  # 139.99
    await order(bob, [{"productId": pen, "qty": 5}])  # 5.50, stays pending
    o5 = await order(alice, [{"productId": mug, "qty": 3}])  # cancelled: stock back, not sold
    for oid, user in ((o1, "alice"), (o2, "bob"), (o3, "alice")):
        await client.patch(f"/orders/{user}/{oid}", json={"status": "completed"}, headers=admin_headers)
    await client.patch(f"/orders/alice/{o5}", json={"status": "cancelled"}, headers=alice)

    response = await client.get("/dashboard/summary", params={"low_stock_threshold": 4}, headers=admin_headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total_products"] == 5
    assert body["average_rating"] == 3.38  # (4.0 + 3.5 + 5.0 + 1.0) / 4 = 3.375
    assert body["highest_priced_product"] == {"id": lamp, "name": "Lamp", "price": 120.0}
    assert [p["id"] for p in body["recent_products"]] == [pen, sock, lamp, mug, tee]
    assert body["total_orders"] == 5
    assert body["orders_by_status"] == {"pending": 1, "completed": 3, "cancelled": 1, "expired": 0}
    assert body["revenue"] == 223.96  # 74.97 + 9.00 + 139.99
    # units in orders not cancelled; ties broken by product id (tee was created before sock)
    assert body["top_products"] == [
        {"id": pen, "name": "Pen", "quantity_sold": 5},
        {"id": tee, "name": "Tee", "quantity_sold": 4},
        {"id": sock, "name": "Sock", "quantity_sold": 4},
        {"id": mug, "name": "Mug", "quantity_sold": 2},
        {"id": lamp, "name": "Lamp", "quantity_sold": 1},
    ]
    # stock: tee 16, mug 4 (6 - 2; the cancelled 3 came back), lamp 2, sock 46, pen 4
    assert body["low_stock"] == [
        {"id": lamp, "name": "Lamp", "stock": 2},
        {"id": mug, "name": "Mug", "stock": 4},
        {"id": pen, "name": "Pen", "stock": 4},
    ]
    assert body["low_stock_threshold"] == 4


async def test_dashboard_is_admin_only(client, alice):
    assert_problem(await client.get("/dashboard/summary"), 401)
    assert_problem(await client.get("/dashboard/summary", headers=alice), 403)


async def test_summary_costs_two_aggregations(app, client, settings, admin_headers, alice):
    from pymongo import AsyncMongoClient, monitoring

    class Commands(monitoring.CommandListener):
        def __init__(self) -> None:
            self.names: list[str] = []

        def started(self, event: monitoring.CommandStartedEvent) -> None:
            target = event.command.get(event.command_name)
            self.names.append(f"{event.command_name} {target}")

        def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
            pass

        def failed(self, event: monitoring.CommandFailedEvent) -> None:
            pass

    for i in range(30):
        await create_product(client, admin_headers, name=f"p{i}", price=i + 1, rating=i % 5)
    pid = await create_product(client, admin_headers)
    for _ in range(3):
        await client.post("/orders", json={"items": [{"productId": pid, "qty": 1}]}, headers=alice)
    listener = Commands()
    watched = AsyncMongoClient(settings.effective_mongodb_uri, tz_aware=True, event_listeners=[listener])
    original, app.state.db = app.state.db, watched[settings.mongodb_db]
    try:
        listener.names.clear()
        response = await client.get("/dashboard/summary", headers=admin_headers)
    finally:
        app.state.db = original
        await watched.close()
    assert response.status_code == 200 and response.json()["total_products"] == 31
    # (authentication reads the users collection; those commands are not the dashboard's)
    catalog_and_sales = [name for name in listener.names if name.endswith((" products", " orders"))]
    assert sorted(catalog_and_sales) == ["aggregate orders", "aggregate products"]
