"""The audit trail of admin changes, written in the change's own transaction, read by GET /audit."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from backend_app.audit import repository as audit_repository
from backend_app.audit.repository import AuditFilter
from tests.support.helpers import TEST_PASSWORD, assert_problem, create_product

Headers = dict[str, str]


async def entries(client: httpx.AsyncClient, headers: Headers, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/audit", params={"limit": 100, **params}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def test_each_catalog_write_records_exactly_one_entry(client: httpx.AsyncClient, admin_headers: Headers) -> None:
    product_id = await create_product(client, admin_headers, name="Shirt", price=10.0)
    body = {"name": "Shirt v2", "price": 12.5, "sizes": [{"size": "m", "quantity": 10}]}
    assert (await client.put(f"/products/{product_id}", json=body, headers=admin_headers)).status_code == 200
    assert (
        await client.patch(f"/products/{product_id}", json={"price": 9.99}, headers=admin_headers)
    ).status_code == 200
    quantity = await client.put(
        f"/products/{product_id}/quantity", json={"size": "m", "quantity": 3}, headers=admin_headers
    )
    assert quantity.status_code == 200
    assert (await client.delete(f"/products/{product_id}", headers=admin_headers)).status_code == 204

    trail = await entries(client, admin_headers, entity_id=product_id)
    assert [e["action"] for e in trail] == [
        "product.create",
        "product.replace",
        "product.update",
        "product.set_quantity",
        "product.delete",
    ]
    for entry in trail:
        assert entry["actor"] == "root_admin"
        assert entry["entity_type"] == "product" and entry["entity_id"] == product_id
        assert datetime.fromisoformat(entry["at"]) <= datetime.now(UTC)
    create, replace, patch, quantity_entry, delete = trail
    assert create["before"] is None and create["after"]["name"] == "Shirt" and create["after"]["price"] == 10.0
    assert replace["before"] == {"name": "Shirt", "price": 10.0} and replace["after"] == {
        "name": "Shirt v2",
        "price": 12.5,
    }
    assert patch["before"] == {"price": 12.5} and patch["after"] == {"price": 9.99}
    assert quantity_entry["before"] == {
        "sizes": [{"size": "m", "quantity": 10, "allocated": 0, "available": 10}],
        "stock": 10,
    }
    assert quantity_entry["after"] == {
        "sizes": [{"size": "m", "quantity": 3, "allocated": 0, "available": 3}],
        "stock": 3,
    }
    assert delete["before"]["name"] == "Shirt v2" and delete["after"] is None


async def test_user_changes_are_recorded_without_secrets(
    client: httpx.AsyncClient, admin_headers: Headers, alice: Headers
) -> None:
    promote = await client.patch("/users/alice", json={"role": "admin"}, headers=admin_headers)
    assert promote.status_code == 200
    deactivate = await client.patch("/users/alice", json={"is_active": False, "role": "user"}, headers=admin_headers)
    assert deactivate.status_code == 200
    trail = await entries(client, admin_headers, entity_type="user")
    assert [(e["action"], e["entity_id"], e["before"], e["after"]) for e in trail] == [
        ("user.update", "alice", {"role": "user"}, {"role": "admin"}),
        ("user.update", "alice", {"role": "admin", "is_active": True}, {"role": "user", "is_active": False}),
    ]


async def test_the_trail_never_holds_passwords_hashes_or_tokens(
    client: httpx.AsyncClient, admin_headers: Headers, alice: Headers, mongo: Any
) -> None:
    await client.post("/auth/register", json={"username": "carol", "email": "c@example.com", "password": TEST_PASSWORD})
    await client.patch("/users/carol", json={"role": "admin"}, headers=admin_headers)
    await client.patch("/users/alice", json={"is_active": False}, headers=admin_headers)
    await create_product(client, admin_headers)
    stored = [doc async for doc in mongo[audit_repository.COLLECTION].find({})]
    assert len(stored) == 3
    text = json.dumps(stored, default=str) + json.dumps(await entries(client, admin_headers))
    token = admin_headers["Authorization"].split()[1]
    for secret in ("password", "hash", "$2b$", TEST_PASSWORD, token, "token"):
        assert secret not in text, secret


async def test_an_admin_order_status_change_is_recorded_and_an_owners_cancel_is_not(
    client: httpx.AsyncClient, admin_headers: Headers, alice: Headers
) -> None:
    product_id = await create_product(client, admin_headers)
    first = (await client.post("/orders", json={"items": [{"productId": product_id, "qty": 1}]}, headers=alice)).json()
    second = (await client.post("/orders", json={"items": [{"productId": product_id, "qty": 1}]}, headers=alice)).json()
    done = await client.patch(f"/orders/alice/{first['id']}", json={"status": "completed"}, headers=admin_headers)
    assert done.status_code == 200
    own = await client.patch(f"/orders/alice/{second['id']}", json={"status": "cancelled"}, headers=alice)
    assert own.status_code == 200
    trail = await entries(client, admin_headers, entity_type="order")
    assert [(e["action"], e["entity_id"], e["before"], e["after"]) for e in trail] == [
        (
            "order.status",
            first["id"],
            {"status": "pending", "userId": "alice"},
            {"status": "completed", "userId": "alice"},
        )
    ]


async def test_failed_writes_record_nothing(client: httpx.AsyncClient, admin_headers: Headers, alice: Headers) -> None:
    product_id = await create_product(client, admin_headers)
    unknown = "f" * 24
    failures = [
        await client.patch(f"/products/{unknown}", json={"price": 1}, headers=admin_headers),
        await client.put(f"/products/{product_id}/quantity", json={"size": "xl", "quantity": 1}, headers=admin_headers),
        await client.delete(f"/products/{unknown}", headers=admin_headers),
        await client.patch("/users/nobody", json={"role": "admin"}, headers=admin_headers),
        await client.patch("/users/root_admin", json={"role": "user"}, headers=admin_headers),  # self lockout
        await client.patch(f"/products/{product_id}", json={"price": 1}, headers=alice),  # not an admin
    ]
    assert [r.status_code for r in failures] == [404, 404, 404, 404, 409, 403]
    order = (await client.post("/orders", json={"items": [{"productId": product_id, "qty": 1}]}, headers=alice)).json()
    assert (
        await client.patch(f"/orders/alice/{order['id']}", json={"status": "completed"}, headers=admin_headers)
    ).status_code == 200
    again = await client.patch(f"/orders/alice/{order['id']}", json={"status": "cancelled"}, headers=admin_headers)
    assert_problem(again, 409)
    assert [e["action"] for e in await entries(client, admin_headers)] == ["product.create", "order.status"]


async def test_a_change_whose_audit_entry_cannot_be_written_is_rolled_back(
    client: httpx.AsyncClient, admin_headers: Headers, mongo: Any
) -> None:
    """The entry and the change commit together: when the entry's insert fails, the change does not happen."""
    product_id = await create_product(client, admin_headers, name="Original")
    # From now on a second entry by the same actor violates a unique index, so its insert fails.
    await mongo[audit_repository.COLLECTION].create_index("actor", unique=True, name="one_per_actor")
    refused = await client.patch(f"/products/{product_id}", json={"name": "Changed"}, headers=admin_headers)
    assert_problem(refused, 500)
    assert (await client.get(f"/products/{product_id}")).json()["name"] == "Original"
    assert await mongo[audit_repository.COLLECTION].count_documents({}) == 1


async def test_only_admins_read_the_trail(client: httpx.AsyncClient, alice: Headers) -> None:
    assert_problem(await client.get("/audit"), 401)
    assert_problem(await client.get("/audit", headers=alice), 403)


async def test_filters_and_cursor_pages(
    client: httpx.AsyncClient, admin_headers: Headers, make_user: Any, alice: Headers
) -> None:
    other_admin = await make_user("second_admin", role="admin")
    ids = [await create_product(client, admin_headers, name=f"P{i}") for i in range(3)]
    await client.patch(f"/products/{ids[0]}", json={"price": 11}, headers=other_admin)
    await client.patch("/users/alice", json={"role": "admin"}, headers=other_admin)

    assert len(await entries(client, admin_headers)) == 5
    assert [e["action"] for e in await entries(client, admin_headers, actor="second_admin")] == [
        "product.update",
        "user.update",
    ]
    assert len(await entries(client, admin_headers, entity_type="product")) == 4
    assert [e["action"] for e in await entries(client, admin_headers, entity_type="product", entity_id=ids[0])] == [
        "product.create",
        "product.update",
    ]
    now = datetime.now(UTC)
    assert len(await entries(client, admin_headers, since=(now - timedelta(minutes=5)).isoformat())) == 5
    assert await entries(client, admin_headers, since=(now + timedelta(seconds=5)).isoformat()) == []
    assert await entries(client, admin_headers, until=(now - timedelta(minutes=5)).isoformat()) == []
    window = {"since": (now - timedelta(minutes=5)).isoformat(), "until": (now + timedelta(minutes=5)).isoformat()}
    assert len(await entries(client, admin_headers, **window)) == 5
    backwards = await client.get(
        "/audit", params={"since": now.isoformat(), "until": now.isoformat()}, headers=admin_headers
    )
    assert_problem(backwards, 422)
    assert_problem(await client.get("/audit", params={"entity_type": "coupon"}, headers=admin_headers), 422)

    # Cursor pages, oldest first, the same entries as one big page.
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        page = (await client.get("/audit", params=params, headers=admin_headers)).json()
        seen.extend(e["id"] for e in page["data"])
        if page["page"]["next_cursor"] is None:
            break
        params = {"limit": 2, "cursor": page["page"]["next_cursor"]}
    assert seen == [e["id"] for e in await entries(client, admin_headers)]
    foreign = await client.get(
        "/audit", params={"cursor": params.get("cursor", "x"), "actor": "root_admin"}, headers=admin_headers
    )
    assert_problem(foreign, 400, "invalid_cursor")


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        (AuditFilter(), "by_time"),
        (AuditFilter(since=datetime(2026, 1, 1, tzinfo=UTC)), "by_time"),
        (AuditFilter(entity_type="product"), "by_entity_type"),
        (AuditFilter(entity_type="product", entity_id="abc"), "by_entity"),
        (AuditFilter(actor="root_admin"), "by_actor"),
        (AuditFilter(actor="root_admin", since=datetime(2026, 1, 1, tzinfo=UTC)), "by_actor"),
        (AuditFilter(entity_type="user", until=datetime(2026, 1, 1, tzinfo=UTC)), "by_entity_type"),
    ],
)
async def test_audit_queries_are_index_served(app: Any, mongo: Any, filters: AuditFilter, index: str) -> None:
    plan = (await mongo[audit_repository.COLLECTION].find(filters.to_query()).sort([("at", 1), ("_id", 1)]).explain())[
        "queryPlanner"
    ]["winningPlan"]
    stages = []
    while plan:
        stages.append((plan["stage"], plan.get("indexName")))
        plan = plan.get("inputStage")
    assert "COLLSCAN" not in [s for s, _ in stages] and (("IXSCAN", index) in stages), stages


async def test_bulk_writes_record_one_entry_per_product_written(
    client: httpx.AsyncClient, admin_headers: Headers
) -> None:
    first = await client.post(
        "/products/batch",
        json=[{"name": "Mug", "price": 5, "sku": "MUG-1"}, {"name": "Cap", "price": 7}, {"name": "", "price": 1}],
        headers=admin_headers,
    )
    assert [r["status"] for r in first.json()["results"]] == [201, 201, 422]
    mug, cap = (r["id"] for r in first.json()["results"][:2])
    again = await client.post(
        "/products/batch",
        params={"upsert": "true"},
        json=[{"name": "Mug", "price": 6.5, "sku": "MUG-1"}, {"name": "Cap", "price": 7, "sku": "MUG-1"}],
        headers=admin_headers,
    )
    assert [r["status"] for r in again.json()["results"]] == [200, 200]
    refused = await client.post(
        "/products/batch",
        json=[{"name": "Mug copy", "price": 1, "sku": "MUG-1"}, {"name": "Hat", "price": 3, "sku": "HAT-1"}],
        headers=admin_headers,
    )
    assert [r["status"] for r in refused.json()["results"]] == [409, 201]
    hat = refused.json()["results"][1]["id"]

    trail = await entries(client, admin_headers, entity_type="product")
    assert [(e["action"], e["entity_id"], e["actor"]) for e in trail] == [
        ("product.create", mug, "root_admin"),
        ("product.create", cap, "root_admin"),
        ("product.update", mug, "root_admin"),
        ("product.update", mug, "root_admin"),
        ("product.create", hat, "root_admin"),
    ]
    assert trail[0]["before"] is None and trail[0]["after"]["name"] == "Mug"
    assert (trail[2]["before"], trail[2]["after"]) == ({"price": 5.0}, {"price": 6.5})
    assert (trail[3]["before"], trail[3]["after"]) == ({"name": "Mug", "price": 6.5}, {"name": "Cap", "price": 7.0})
