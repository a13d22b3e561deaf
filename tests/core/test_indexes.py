"""Every list query the indexes are meant to serve is an index scan, not a collection scan (docs/contract.md §4).

The queries explained here are built by the same functions the repositories
run (``ProductFilter.to_query``, ``order_filter``, ``keyset_stages``,
``keyset_sort``), from cursors the API issued. The ``name`` regex is left
out: an unanchored case-insensitive regex has no index bounds (MongoDB scans
all keys of ``live_by_name``; the embedded server scans documents). So is
a price range under another order (``min_price`` with ``sort=_id``): its
cursor pages carry two ranges (price and ``_id``), which MongoDB serves from
``live_by_price`` but the embedded server's planner only plans with one.
The admin's unfiltered ``GET /orders`` is cut into ``_id`` ranges alone: MongoDB's
``_id_`` index; on the embedded server (whose ``_id`` index is virtual) the
secondary index ``window_by_id`` that starts with ``_id``.
"""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from backend_app.core.cursors import CursorCodec
from backend_app.core.key_windows import ID_AXIS, key_windows
from backend_app.core.keyset import keyset_sort, keyset_stages
from backend_app.core.pagination import PageParams
from backend_app.orders import history_repository
from backend_app.orders import repository as orders_repository
from backend_app.orders import service as orders_service
from backend_app.products import repository as products_repository
from backend_app.products import service as products_service
from tests.support.helpers import create_product


def _stages(explain: dict) -> list[tuple[str, str | None]]:
    plan = explain["queryPlanner"]["winningPlan"]
    out = []
    while plan:
        out.append((plan["stage"], plan.get("indexName")))
        plan = plan.get("inputStage")
    return out


async def _assert_index_scans(collection, queries, sort, expected_index):
    for query in queries:
        plan = _stages(await collection.find(query).sort(list(sort.items())).explain())
        stages = [stage for stage, _ in plan]
        assert "COLLSCAN" not in stages and "IXSCAN" in stages, (query, plan)
        if expected_index:
            assert expected_index in [index for _, index in plan], (query, plan)


PRODUCT_CASES = [
    ({}, "_id", "live_by_id"),
    ({}, "price", "live_by_price"),
    ({}, "-price", "live_by_price"),
    ({}, "created_at", "live_by_created"),
    ({}, "-created_at", "live_by_created"),
    ({"category": "tops"}, "_id", "live_by_category"),
    ({"category": "tops"}, "price", "live_by_category_price"),
    ({"size": "m"}, "_id", "live_by_size"),
    ({"min_price": "5"}, "price", "live_by_price"),
    ({"max_price": "50"}, "price", "live_by_price"),
    ({"min_price": "5", "max_price": "50"}, "-price", "live_by_price"),
    ({"category": "tops", "min_price": "5"}, "price", "live_by_category_price"),
]


@pytest.mark.parametrize(("params", "sort", "index"), PRODUCT_CASES)
async def test_product_list_queries_use_indexes(client, mongo, settings, admin_headers, params, sort, index):
    for i in range(12):
        await create_product(client, admin_headers, name=f"p{i}", price=5 + i % 4 * 10, category="tops")
    response = await client.get("/products", params={**params, "sort": sort, "limit": 3})
    cursor = response.json()["page"]["next_cursor"]
    assert cursor, response.text
    filters = products_repository.ProductFilter(
        size=params.get("size"),
        category=params.get("category"),
        min_price=Decimal(params["min_price"]) if "min_price" in params else None,
        max_price=Decimal(params["max_price"]) if "max_price" in params else None,
    )
    for page_cursor in (None, cursor):
        window = PageParams(limit=3, cursor=page_cursor, codec=CursorCodec(settings.signing_key)).window(
            scope=products_service.LIST_SCOPE,
            filters=filters.fingerprint_fields(),
            sort=products_service.list_order(sort),
        )
        stages = keyset_stages(filters.to_query(), window)
        # what is run: each range stage cut into key windows (products.repository.key_windows)
        axis = products_repository.AXES[window.sort.field]
        extent = await products_repository.key_extent(mongo, axis.field)
        stages = [
            piece
            for stage in stages
            for piece in (
                key_windows(stage, axis, window.scan_direction, extent)
                if isinstance(stage.get(axis.field, {}), dict)
                else [stage]
            )
        ]
        # the first page may ride any index matching its filter; cursor pages must ride the sort's range
        await _assert_index_scans(
            mongo[products_repository.COLLECTION], stages, keyset_sort(window), index if page_cursor else None
        )


ORDER_CASES = [
    ({"user_id": "alice"}, "by_user"),
    ({"status": "pending"}, "by_status"),
    ({"user_id": "alice", "status": "pending"}, "by_user_status"),
    ({}, None),  # an ``_id`` range: MongoDB's ``_id_``; the embedded server's ``window_by_id``
]


@pytest.mark.parametrize(("filters", "index"), ORDER_CASES)
async def test_order_list_queries_use_indexes(client, mongo, settings, admin_headers, alice, filters, index):
    pid = await create_product(client, admin_headers, sizes=[{"size": "m", "quantity": 50}])
    for _ in range(5):
        await client.post("/orders", json={"items": [{"productId": pid, "qty": 1}]}, headers=alice)
    params = {"limit": 2}
    if "user_id" in filters:
        params["user_id"] = filters["user_id"]
    if "status" in filters:
        params["status"] = filters["status"]
    cursor = (await client.get("/orders", params=params, headers=admin_headers)).json()["page"]["next_cursor"]
    assert cursor
    for page_cursor in (None, cursor):
        window = PageParams(limit=2, cursor=page_cursor, codec=CursorCodec(settings.signing_key)).window(
            scope=orders_service.LIST_SCOPE,
            filters={"user_id": filters.get("user_id"), "status": filters.get("status")},
        )
        query = orders_repository.order_filter(user_id=filters.get("user_id"), status=filters.get("status"))
        # what is run: each stage cut into key windows of the ``_id``'s second (orders.history_repository.list_order_ids)
        extent = history_repository.order_windows_extent(mongo, query) or (0, int(time.time()) + 2)
        stages = [
            piece
            for stage in keyset_stages(query, window)
            for piece in key_windows(stage, ID_AXIS, window.scan_direction, extent)
        ]
        assert len(stages) > 1
        await _assert_index_scans(mongo[orders_repository.COLLECTION], stages, keyset_sort(window), index)
