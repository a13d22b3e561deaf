"""Events: one per committed change, in the change's transaction; the feed ``GET /events``; retention."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from backend_app.events import repository as events_repository
from backend_app.events import service as events_service
from backend_app.events.entities import MAX_ENVELOPE_BYTES, envelope_bytes
from backend_app.orders import service as orders_service
from tests.support.helpers import assert_problem, create_product

pytestmark = pytest.mark.asyncio


async def feed(client, headers, **params):
    """Every event of the feed (newest first), walking its cursors."""
    out, cursor = [], None
    while True:
        query = {"limit": 100, **params, **({"cursor": cursor} if cursor else {})}
        body = (await client.get("/events", params=query, headers=headers)).json()
        out += body["data"]
        cursor = body["page"]["next_cursor"]
        if cursor is None:
            return out


async def test_each_write_path_records_its_events_with_the_admin_view(client, admin_headers, alice):
    product_id = await create_product(client, admin_headers, name="Boot", sizes=[{"size": "m", "quantity": 5}])
    await client.put(
        f"/products/{product_id}",
        json={"name": "Boot II", "price": 12, "sizes": [{"size": "m", "quantity": 5}]},
        headers=admin_headers,
    )
    await client.patch(f"/products/{product_id}", json={"sizes": [{"size": "m", "quantity": 9}]}, headers=admin_headers)
    await client.put(f"/products/{product_id}/quantity", json={"size": "m", "quantity": 8}, headers=admin_headers)
    first = (await client.post("/orders", json={"items": [{"productId": product_id, "qty": 2}]}, headers=alice)).json()[
        "id"
    ]
    second = (
        await client.post("/orders", json={"items": [{"productId": product_id, "qty": 1}]}, headers=alice)
    ).json()["id"]
    third = (await client.post("/orders", json={"items": [{"productId": product_id, "qty": 1}]}, headers=alice)).json()[
        "id"
    ]
    await client.patch(f"/orders/alice/{first}", json={"status": "cancelled"}, headers=alice)
    await client.patch(f"/orders/alice/{second}", json={"status": "completed"}, headers=admin_headers)
    await client.delete(f"/products/{product_id}", headers=admin_headers)

    events = list(reversed(await feed(client, admin_headers)))
    assert [(e["type"], e["entity"]["id"], e["entity"]["version"]) for e in events] == [
        ("product.created", product_id, 1),
        ("product.updated", product_id, 2),  # PUT, same stock
        ("product.updated", product_id, 3),  # PATCH of sizes ...
        ("product.stock_changed", product_id, 4),  # ... which changed stock
        ("product.stock_changed", product_id, 5),  # PUT quantity
        ("order.created", first, 1),
        ("order.created", second, 1),
        ("order.created", third, 1),
        ("order.cancelled", first, 2),
        ("order.completed", second, 2),
        ("product.deleted", product_id, 6),
    ]
    # data is the entity as the admin API shows it
    by_type = {e["type"]: e for e in events}
    shown = (await client.get(f"/orders/alice/{third}", headers=admin_headers)).json()
    created_third = next(e for e in events if e["type"] == "order.created" and e["entity"]["id"] == third)
    assert created_third["data"] == {**shown, "items": created_third["data"]["items"]}
    assert created_third["data"]["items"][0]["taken"] == [{"size": "m", "qty": 1}]
    cancelled = (await client.get(f"/orders/alice/{first}", headers=admin_headers)).json()
    assert by_type["order.cancelled"]["data"]["status"] == "cancelled" == cancelled["status"]
    assert by_type["product.stock_changed"]["data"]["stock"] in (8, 9)
    assert by_type["product.deleted"]["data"]["id"] == product_id
    assert all(set(e) == {"id", "type", "created_at", "entity", "data"} for e in events)
    text = json.dumps(events).lower()
    assert "password" not in text and "hash" not in text and "token" not in text


async def test_refused_writes_record_nothing(client, admin_headers, alice):
    product_id = await create_product(client, admin_headers, sizes=[{"size": "m", "quantity": 1}])
    before = len(await feed(client, admin_headers))
    assert (
        await client.post("/orders", json={"items": [{"productId": product_id, "qty": 5}]}, headers=alice)
    ).status_code == 409
    assert (await client.patch(f"/products/{'0' * 24}", json={"price": 3}, headers=admin_headers)).status_code == 404
    assert (
        await client.put(f"/products/{product_id}/quantity", json={"size": "xl", "quantity": 3}, headers=admin_headers)
    ).status_code == 404
    assert len(await feed(client, admin_headers)) == before


async def test_every_order_of_a_concurrent_batch_has_exactly_one_event(client, admin_headers, make_user):
    product_id = await create_product(client, admin_headers, sizes=[{"size": "m", "quantity": 10}])
    buyers = [await make_user(f"buyer{i}") for i in range(16)]
    answers = await asyncio.gather(
        *[client.post("/orders", json={"items": [{"productId": product_id, "qty": 1}]}, headers=h) for h in buyers]
    )
    placed = sorted(r.json()["id"] for r in answers if r.status_code == 201)
    assert len(placed) == 10 and sum(r.status_code == 409 for r in answers) == 6
    created = sorted(e["entity"]["id"] for e in await feed(client, admin_headers, type="order.created"))
    assert created == placed


async def test_an_event_that_cannot_be_written_rolls_its_change_back(client, admin_headers, alice, mongo):
    product_id = await create_product(client, admin_headers, name="Original", sizes=[{"size": "m", "quantity": 5}])
    # From now on a second event about any kind of entity violates a unique index, so its insert fails.
    await mongo[events_repository.COLLECTION].create_index("entity_type", unique=True, name="one_per_kind")
    assert_problem(await client.patch(f"/products/{product_id}", json={"name": "Changed"}, headers=admin_headers), 500)
    assert (await client.get(f"/products/{product_id}")).json()["name"] == "Original"
    await client.post(
        "/orders", json={"items": [{"productId": product_id, "qty": 1}]}, headers=alice
    )  # the first order.created
    refused = await client.post("/orders", json={"items": [{"productId": product_id, "qty": 1}]}, headers=alice)
    assert_problem(refused, 500)
    assert (await client.get(f"/products/{product_id}")).json()["stock"] == 4  # only the first order took stock
    assert len((await client.get("/orders/alice", headers=alice)).json()["data"]) == 1
    batch = await client.post(
        "/products/batch", json=[{"name": "A", "price": 1}, {"name": "B", "price": 2}], headers=admin_headers
    )
    assert batch.status_code in (500, 503)  # the bulk write re-runs a chunk on any duplicate key, then gives up
    assert (await client.get("/products", params={"name": "^[AB]$"})).json()["data"] == []


async def test_bulk_writes_record_one_event_per_product_of_each_chunk(client, admin_headers):
    items = [
        {"name": f"Item {i}", "price": 1 + i, "sku": f"SKU-{i}", "sizes": [{"size": "m", "quantity": i}]}
        for i in range(5)
    ]
    report = (await client.post("/products/batch", json=items, headers=admin_headers)).json()
    ids = [r["id"] for r in report["results"]]
    assert sorted(e["entity"]["id"] for e in await feed(client, admin_headers, type="product.created")) == sorted(ids)
    # An upsert that changes stock is an update and a stock change; one that does not, an update only.
    items[0]["sizes"] = [{"size": "m", "quantity": 50}]
    items[1]["price"] = 99
    again = await client.post("/products/batch", params={"upsert": "true"}, json=items[:2], headers=admin_headers)
    assert again.status_code == 207, again.text
    zero = await feed(client, admin_headers, entity_id=ids[0])
    one = await feed(client, admin_headers, entity_id=ids[1])
    assert [(e["type"], e["entity"]["version"]) for e in zero] == [
        ("product.stock_changed", 3),
        ("product.updated", 2),
        ("product.created", 1),
    ]
    assert [(e["type"], e["entity"]["version"]) for e in one] == [("product.updated", 2), ("product.created", 1)]
    assert zero[0]["data"]["stock"] == 50


async def test_the_feed_pages_newest_first_filters_and_reads_one(client, admin_headers, alice):
    ids = [await create_product(client, admin_headers, name=f"P{i}") for i in range(5)]
    first = (await client.get("/events", params={"limit": 2}, headers=admin_headers)).json()
    assert first["page"]["limit"] == 2 and first["page"]["next"] == "2" and first["page"]["previous"] is None
    rest = (
        await client.get("/events", params={"limit": 10, "cursor": first["page"]["next_cursor"]}, headers=admin_headers)
    ).json()
    walked = [e["entity"]["id"] for e in first["data"] + rest["data"]]
    assert walked == list(reversed(ids))
    back = (
        await client.get("/events", params={"limit": 10, "cursor": rest["page"]["prev_cursor"]}, headers=admin_headers)
    ).json()
    assert [e["id"] for e in back["data"]] == [e["id"] for e in first["data"]]
    only = await feed(client, admin_headers, entity_id=ids[2])
    assert len(only) == 1 and only[0]["entity"]["id"] == ids[2]
    assert await feed(client, admin_headers, type="order.created") == []
    one = await client.get(f"/events/{only[0]['id']}", headers=admin_headers)
    assert one.status_code == 200 and one.json() == only[0]
    assert_problem(await client.get(f"/events/{'0' * 24}", headers=admin_headers), 404, "event_not_found")
    assert_problem(await client.get("/events", params={"type": "nope"}, headers=admin_headers), 422)
    bad = await client.get(
        "/events", params={"cursor": first["page"]["next_cursor"], "type": "product.created"}, headers=admin_headers
    )
    assert_problem(bad, 400, "invalid_cursor")
    assert_problem(await client.get("/events"), 401)
    assert_problem(await client.get("/events", headers=alice), 403)


async def test_events_past_their_retention_are_swept(client, admin_headers, mongo):
    await create_product(client, admin_headers)
    assert await events_service.remove_expired(mongo, retention_days=30) == 0
    assert (
        await events_service.remove_expired(mongo, retention_days=30, now=datetime.now(UTC) + timedelta(days=31)) == 1
    )
    assert await feed(client, admin_headers) == []
    info = await mongo[events_repository.COLLECTION].index_information()
    assert not any("expireAfterSeconds" in spec for spec in info.values())  # no TTL index


@pytest.mark.settings(order_pending_ttl_seconds=3600, order_sweep_interval_seconds=3600)
async def test_an_expired_order_has_its_event(client, admin_headers, alice, mongo):
    product_id = await create_product(client, admin_headers)
    order_id = (
        await client.post("/orders", json={"items": [{"productId": product_id, "qty": 1}]}, headers=alice)
    ).json()["id"]
    assert (
        await orders_service.expire_due_orders(mongo, ttl_seconds=3600, now=datetime.now(UTC) + timedelta(hours=2)) == 1
    )
    (expired,) = await feed(client, admin_headers, type="order.expired")
    assert expired["entity"] == {"type": "order", "id": order_id, "version": 2}
    assert expired["data"]["status"] == "expired"


async def test_a_large_order_is_sent_thin_under_20_kb(client, admin_headers, alice):
    ids = [await create_product(client, admin_headers, name=f"{i:03d}" + "n" * 197) for i in range(100)]
    order = await client.post("/orders", json={"items": [{"productId": p, "qty": 1} for p in ids]}, headers=alice)
    assert order.status_code == 201
    (event,) = await feed(client, admin_headers, type="order.created")
    assert len(envelope_bytes(event)) <= MAX_ENVELOPE_BYTES
    assert (
        event["data"]["truncated"] is True
        and event["data"]["id"] == order.json()["id"]
        and "items" not in event["data"]
    )
    assert event["data"]["total"] == 1000.0
