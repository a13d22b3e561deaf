"""``Idempotency-Key`` on ``POST /orders`` (docs/contract.md §5)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from backend_app.idempotency import repository as idempotency_repository
from backend_app.idempotency import service as idempotency
from tests.support.helpers import assert_problem, create_product, public_stock


def _body(pid, qty=2):
    return {"items": [{"productId": pid, "qty": qty}]}


async def test_replay_returns_same_id_and_takes_stock_once(client, admin_headers, alice):
    pid = await create_product(client, admin_headers)
    headers = {**alice, "Idempotency-Key": "order-1"}
    first = await client.post("/orders", json=_body(pid), headers=headers)
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    # same request, keys in another order and with userId spelled out: the same body
    again = await client.post("/orders", json={"userId": "alice", **_body(pid)}, headers=headers)
    assert again.status_code == 201, again.text
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert await public_stock(client, pid) == 8
    assert len((await client.get("/orders/alice", headers=alice)).json()["data"]) == 1


async def test_same_key_other_body_is_422(client, admin_headers, alice):
    pid = await create_product(client, admin_headers)
    headers = {**alice, "Idempotency-Key": "k"}
    assert (await client.post("/orders", json=_body(pid, 1), headers=headers)).status_code == 201
    assert_problem(await client.post("/orders", json=_body(pid, 2), headers=headers), 422, "idempotency_key_reused")
    assert await public_stock(client, pid) == 9


async def test_keys_are_per_user(client, admin_headers, alice, bob):
    pid = await create_product(client, admin_headers)
    a = await client.post("/orders", json=_body(pid, 1), headers={**alice, "Idempotency-Key": "same"})
    b = await client.post("/orders", json=_body(pid, 1), headers={**bob, "Idempotency-Key": "same"})
    assert a.status_code == b.status_code == 201 and a.json() != b.json()
    assert await public_stock(client, pid) == 8


async def test_in_flight_duplicate_is_409(client, app, admin_headers, alice):
    pid = await create_product(client, admin_headers)
    body = _body(pid)
    fingerprint = idempotency.request_fingerprint(
        "POST /orders", {"userId": "alice", "items": [{"productId": pid, "qty": 2, "size": None}]}
    )
    claim = await idempotency.begin(app.state.db, owner="alice", key="busy", fingerprint=fingerprint)
    assert isinstance(claim, idempotency.Claim)
    response = await client.post("/orders", json=body, headers={**alice, "Idempotency-Key": "busy"})
    assert_problem(response, 409, "idempotency_in_flight")
    assert await public_stock(client, pid) == 10


async def test_concurrent_duplicates_place_one_order(client, admin_headers, alice):
    pid = await create_product(client, admin_headers)
    headers = {**alice, "Idempotency-Key": "race"}
    responses = await asyncio.gather(*[client.post("/orders", json=_body(pid), headers=headers) for _ in range(10)])
    created = [r for r in responses if r.status_code == 201]
    assert created, [r.text for r in responses]
    assert len({r.json()["id"] for r in created}) == 1
    for r in responses:
        if r.status_code != 201:
            assert_problem(r, 409, "idempotency_in_flight")
    assert await public_stock(client, pid) == 8
    assert len((await client.get("/orders/alice", headers=alice)).json()["data"]) == 1
    # once the first finished, a retry replays it
    retry = await client.post("/orders", json=_body(pid), headers=headers)
    assert retry.status_code == 201 and retry.json() == created[0].json()


async def test_failed_request_frees_the_key(client, admin_headers, alice):
    pid = await create_product(client, admin_headers, sizes=[{"size": "m", "quantity": 1}])
    headers = {**alice, "Idempotency-Key": "retry-me"}
    assert_problem(await client.post("/orders", json=_body(pid), headers=headers), 409, "insufficient_stock")
    await client.put(f"/products/{pid}/quantity", json={"size": "m", "quantity": 5}, headers=admin_headers)
    assert (await client.post("/orders", json=_body(pid), headers=headers)).status_code == 201
    assert await public_stock(client, pid) == 3


async def test_abandoned_in_flight_key_is_taken_over(client, app, mongo, admin_headers, alice):
    pid = await create_product(client, admin_headers)
    fingerprint = idempotency.request_fingerprint(
        "POST /orders", {"userId": "alice", "items": [{"productId": pid, "qty": 2, "size": None}]}
    )
    await idempotency.begin(app.state.db, owner="alice", key="crashed", fingerprint=fingerprint)
    past = datetime.now(UTC) - timedelta(seconds=1)
    await mongo[idempotency_repository.COLLECTION].update_one({"key": "crashed"}, {"$set": {"lease_expires_at": past}})
    response = await client.post("/orders", json=_body(pid), headers={**alice, "Idempotency-Key": "crashed"})
    assert response.status_code == 201, response.text
    assert await public_stock(client, pid) == 8


async def test_records_kept_24h_by_ttl_index(client, mongo, admin_headers, alice):
    pid = await create_product(client, admin_headers)
    await client.post("/orders", json=_body(pid), headers={**alice, "Idempotency-Key": "ttl"})
    coll = mongo[idempotency_repository.COLLECTION]
    indexes = await coll.index_information()
    ttl = [spec for spec in indexes.values() if "expireAfterSeconds" in spec]
    assert ttl and ttl[0]["key"] == [("expires_at", 1)]
    unique = [spec for spec in indexes.values() if spec.get("unique")]
    assert unique and unique[0]["key"] == [("owner", 1), ("key", 1)]
    record = await coll.find_one({"key": "ttl"})
    assert record["state"] == "completed" and record["owner"] == "alice"
    assert record["expires_at"] - record["created_at"] >= timedelta(hours=24) - timedelta(seconds=5)


async def test_key_length_is_bounded(client, admin_headers, alice):
    pid = await create_product(client, admin_headers)
    assert_problem(await client.post("/orders", json=_body(pid), headers={**alice, "Idempotency-Key": "k" * 256}), 422)
    assert (
        await client.post("/orders", json=_body(pid), headers={**alice, "Idempotency-Key": "k" * 255})
    ).status_code == 201
