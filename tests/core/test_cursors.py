"""Signed keyset cursors on the list endpoints (docs/contract.md §2)."""

from __future__ import annotations

import base64
import random

import pytest

from tests.support.helpers import assert_problem, create_product

SORTS = ["_id", "price", "-price", "created_at", "-created_at"]


async def _walk(client, path, params, headers=None, *, backward_from=None, on_page=None):
    """Follow next_cursor (or prev_cursor from ``backward_from``) to the end; return ids in visit order."""
    seen: list[str] = []
    cursor = backward_from
    key = "prev_cursor" if backward_from else "next_cursor"
    first = True
    while True:
        query = dict(params)
        if cursor:
            query["cursor"] = cursor
        response = await client.get(path, params=query, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        page = body["page"]
        if cursor:
            assert page["next"] is None and page["previous"] is None
        assert page["limit"] == len(body["data"])
        ids = [row["id"] for row in body["data"]]
        seen.extend(reversed(ids) if backward_from else ids)
        if on_page:
            await on_page()
        cursor = page[key]
        if first and backward_from is None:
            assert page["prev_cursor"] is None
        first = False
        if cursor is None:
            return seen


def _expected(products, sort):
    field = sort.lstrip("-")
    if field == "_id" or field == "created_at":
        ordered = sorted(products, key=lambda p: p["id"])
    else:
        ordered = sorted(products, key=lambda p: (p["price"], p["id"]))
    return [p["id"] for p in (reversed(ordered) if sort.startswith("-") else ordered)]


@pytest.fixture
async def catalog(client, admin_headers):
    rng = random.Random(7)
    products = []
    for i in range(23):
        price = rng.choice([5, 10, 10, 10, 12.5, 99.99])  # many ties: _id must break them
        pid = await create_product(client, admin_headers, name=f"item {i}", price=price)
        products.append({"id": pid, "price": price})
    return products


@pytest.mark.parametrize("sort", SORTS)
async def test_walk_forward_and_backward_visits_each_record_once(client, catalog, sort):
    expected = _expected(catalog, sort)
    forward = await _walk(client, "/products", {"limit": 4, "sort": sort})
    assert forward == expected
    last_page = await client.get("/products", params={"limit": 4, "sort": sort, "offset": 20})
    start = last_page.json()["page"]["prev_cursor"]
    backward = await _walk(client, "/products", {"limit": 4, "sort": sort}, backward_from=start)
    assert backward == list(reversed(expected[:20]))


async def test_walk_while_inserting_returns_every_original_record_once(client, admin_headers, catalog):
    inserted: list[str] = []

    async def insert():
        inserted.append(await create_product(client, admin_headers, name="late", price=10))

    for sort in ("_id", "price"):
        seen = await _walk(client, "/products", {"limit": 5, "sort": sort}, on_page=insert)
        assert len(seen) == len(set(seen)), "a record was returned twice"
        assert {p["id"] for p in catalog} <= set(seen)
        assert set(seen) <= {p["id"] for p in catalog} | set(inserted)


async def test_cursor_with_filters(client, admin_headers):
    tops = [await create_product(client, admin_headers, name=f"t{i}", price=i + 1, category="tops") for i in range(7)]
    for i in range(5):
        await create_product(client, admin_headers, name=f"s{i}", price=i + 1, category="shoes")
    seen = await _walk(client, "/products", {"limit": 3, "category": "tops", "sort": "-price"})
    assert seen == list(reversed(tops))
    seen = await _walk(client, "/products", {"limit": 2, "category": "tops", "min_price": 2, "max_price": 5})
    assert seen == tops[1:5]


async def _a_cursor(client, params):
    response = await client.get("/products", params={**params, "limit": 2})
    cursor = response.json()["page"]["next_cursor"]
    assert cursor
    return cursor


async def test_tampered_truncated_and_mismatched_cursors(client, admin_headers, alice):
    for i in range(5):
        await create_product(client, admin_headers, name=f"p{i}", price=10, category="c")
    cursor = await _a_cursor(client, {"category": "c"})
    payload, mac = cursor.split(".")
    raw = bytearray(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    raw[-5] ^= 0x01
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode() + "." + mac
    for bad in (forged, cursor[:-3], cursor[:20], "garbage", cursor.replace(".", ""), payload + "." + "A" * len(mac)):
        assert_problem(await client.get("/products", params={"category": "c", "cursor": bad}), 400, "invalid_cursor")
    # the same cursor with other filters or another sort
    assert_problem(await client.get("/products", params={"category": "d", "cursor": cursor}), 400, "invalid_cursor")
    assert_problem(await client.get("/products", params={"cursor": cursor}), 400, "invalid_cursor")
    assert_problem(
        await client.get("/products", params={"category": "c", "sort": "price", "cursor": cursor}),
        400,
        "invalid_cursor",
    )
    # a products cursor is foreign to the orders list
    assert_problem(await client.get("/orders/alice", params={"cursor": cursor}, headers=alice), 400, "invalid_cursor")
    # still fine as issued
    assert (await client.get("/products", params={"category": "c", "cursor": cursor})).status_code == 200


async def test_cursor_signed_with_another_key_is_foreign(client, admin_headers):
    from bson import ObjectId

    from backend_app.core.cursors import CursorCodec
    from backend_app.core.pagination import PageParams
    from backend_app.products.repository import ProductFilter
    from backend_app.products.service import LIST_SCOPE

    await create_product(client, admin_headers)
    params = PageParams(limit=2, codec=CursorCodec("another-deployment-secret-0123456789abcdef"))
    window = params.window(scope=LIST_SCOPE, filters=ProductFilter().fingerprint_fields())
    _, meta = window.finish([{"_id": ObjectId()} for _ in range(3)])
    assert meta.next_cursor
    assert_problem(await client.get("/products", params={"cursor": meta.next_cursor}), 400, "invalid_cursor")


async def test_cursor_with_offset_is_422(client, admin_headers):
    for i in range(3):
        await create_product(client, admin_headers, name=f"p{i}")
    cursor = await _a_cursor(client, {})
    assert_problem(await client.get("/products", params={"cursor": cursor, "offset": 0}), 422)


async def test_offset_page_offers_cursors(client, admin_headers):
    ids = [await create_product(client, admin_headers, name=f"p{i}") for i in range(6)]
    middle = (await client.get("/products", params={"limit": 2, "offset": 2})).json()["page"]
    assert middle["next"] == "4" and middle["previous"] == 0
    after = (await client.get("/products", params={"limit": 2, "cursor": middle["next_cursor"]})).json()
    assert [p["id"] for p in after["data"]] == ids[4:6] and after["page"]["next_cursor"] is None
    before = (await client.get("/products", params={"limit": 2, "cursor": middle["prev_cursor"]})).json()
    assert [p["id"] for p in before["data"]] == ids[0:2] and before["page"]["prev_cursor"] is None


@pytest.mark.settings(order_max_pending=100)  # more pending orders per user than the default cap of 10
async def test_order_lists_walk_by_cursor(client, admin_headers, alice, bob):
    pid = await create_product(client, admin_headers, sizes=[{"size": "m", "quantity": 100}])
    placed = {"alice": [], "bob": []}
    for _i in range(7):
        for name, headers in (("alice", alice), ("bob", bob)):
            response = await client.post("/orders", json={"items": [{"productId": pid, "qty": 1}]}, headers=headers)
            placed[name].append(response.json()["id"])
    assert await _walk(client, "/orders/alice", {"limit": 3}, alice) == placed["alice"]
    assert await _walk(client, "/orders", {"limit": 3}, bob) == placed["bob"]
    everyone = await _walk(client, "/orders", {"limit": 4}, admin_headers)
    assert everyone == sorted(placed["alice"] + placed["bob"])
    assert await _walk(client, "/orders", {"limit": 2, "user_id": "alice"}, admin_headers) == placed["alice"]
    # new orders arriving while alice pages through hers: no order twice, none of the originals missed
    late: list[str] = []

    async def order_more():
        response = await client.post("/orders", json={"items": [{"productId": pid, "qty": 1}]}, headers=alice)
        late.append(response.json()["id"])

    seen = await _walk(client, "/orders/alice", {"limit": 2}, alice, on_page=order_more)
    assert len(seen) == len(set(seen)) and set(placed["alice"]) <= set(seen) <= set(placed["alice"]) | set(late)
    cursor = (await client.get("/orders/alice", params={"limit": 2}, headers=alice)).json()["page"]["next_cursor"]
    assert_problem(await client.get("/orders/bob", params={"cursor": cursor}, headers=bob), 400, "invalid_cursor")
    assert_problem(await client.get("/orders/alice", params={"cursor": cursor, "offset": 2}, headers=alice), 422)
