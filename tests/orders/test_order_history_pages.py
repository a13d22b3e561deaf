"""Order lists at any history length: key windows read about one page (docs/architecture.md (Catalog at scale), "Key windows").

A long history is seeded straight into ``orders`` (``devtools.seed.seed_order_history``), spread over
months, beside other users' orders. Walking every list through the API returns exactly the stored
orders in ``_id`` order, and the reads behind one page examine about a page of documents
(``explain`` with ``executionStats`` of every ``find`` the repository sends).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient, monitoring

from backend_app.core.cursors import CursorCodec
from backend_app.core.pagination import PageParams
from backend_app.devtools.embedded_db import EmbeddedMongo
from backend_app.devtools.seed import seed_order_history
from backend_app.orders import history_repository
from backend_app.orders import repository as orders_repository
from backend_app.orders import service as orders_service
from tests.support.helpers import create_product

HISTORY = 1500


@pytest.fixture
async def history(client, mongo, admin_headers, alice) -> dict[str, list[str]]:
    """alice: HISTORY orders 30 min apart; bob: 300 orders 7 h apart, interleaved; ids oldest first."""
    pid = ObjectId(await create_product(client, admin_headers, name="Mug"))
    alice_ids = await seed_order_history(mongo, user_id="alice", count=HISTORY, product_id=pid)
    bob_ids = await seed_order_history(
        mongo, user_id="bob", count=300, product_id=pid, spacing=timedelta(hours=7), statuses=("completed",)
    )
    return {"alice": [str(i) for i in alice_ids], "bob": [str(i) for i in bob_ids]}


async def _walk(client, path: str, headers: dict[str, str], **params: Any) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        query = {"limit": 100, **params, **({"cursor": cursor} if cursor else {})}
        body = (await client.get(path, params=query, headers=headers)).json()
        ids += [order["id"] for order in body["data"]]
        cursor = body["page"]["next_cursor"]
        if not cursor:
            return ids


async def test_every_list_pages_through_exactly_the_stored_orders(client, history, alice, admin_headers) -> None:
    assert await _walk(client, "/orders/alice", alice) == history["alice"]
    everyone = sorted(history["alice"] + history["bob"], key=ObjectId)
    assert await _walk(client, "/orders", admin_headers) == everyone
    cancelled = [oid for i, oid in enumerate(history["alice"]) if i % 3 == 1]
    assert await _walk(client, "/orders", admin_headers, status="cancelled") == cancelled
    assert await _walk(client, "/orders", admin_headers, status="completed", user_id="bob") == history["bob"]
    # offsets carry across windows; the brief's shape is unchanged
    body = (await client.get("/orders/alice", params={"limit": 10, "offset": 737}, headers=alice)).json()
    assert [o["id"] for o in body["data"]] == history["alice"][737:747]
    assert set(body) == {"data", "page"}
    assert body["data"][0]["items"][0]["productDetails"]["name"] == "Mug"


class _Finds(monitoring.CommandListener):
    def __init__(self) -> None:
        self.filters: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find" and event.command.get("find") == orders_repository.COLLECTION:
            self.filters.append(dict(event.command.get("filter", {})))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.mark.parametrize(
    "filters", [{"user_id": "alice"}, {"status": "cancelled"}, {"user_id": "alice", "status": "expired"}, {}]
)
async def test_a_page_examines_about_a_page_of_orders(
    client, history, admin_headers, settings, mongo_server: EmbeddedMongo, db_name: str, filters: dict[str, str]
) -> None:
    """First page and a cursor page deep in the list: the windows' finds examine about a page (≤ 5 pages) of documents."""
    listener = _Finds()
    watched: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo_server.uri, tz_aware=True, event_listeners=[listener]
    )
    try:
        db = watched[db_name]
        query = orders_repository.order_filter(user_id=filters.get("user_id"), status=filters.get("status"))
        codec = CursorCodec(settings.signing_key)
        # the API issues a cursor deep in the list (after the 300th order)
        deep = (
            await client.get("/orders", params={**filters, "limit": 100, "offset": 200}, headers=admin_headers)
        ).json()
        for cursor in (None, None, deep["page"]["next_cursor"]):  # cold first page, warm first page, cursor page
            window = PageParams(limit=10, cursor=cursor, codec=codec).window(
                scope=orders_service.LIST_SCOPE,
                filters={"user_id": filters.get("user_id"), "status": filters.get("status")},
            )
            listener.filters.clear()
            ids = await history_repository.list_order_ids(db, query=query, window=window)
            assert len(ids) == 11
            examined = 0
            for sent in listener.filters:
                explain = await db.command(
                    {"explain": {"find": orders_repository.COLLECTION, "filter": sent}, "verbosity": "executionStats"}
                )
                examined += explain["executionStats"]["totalDocsExamined"]
            if cursor is None and examined > 100:
                continue  # the cold first page of a list in this process reads it whole, once
            # A cursor page's first window is a quarter of the first page's span: in the admin's list the
            # first page lies in bob's sparse orders (7 h apart), the cursor among alice's, 15x denser.
            assert examined <= 5 * 11, (filters, cursor is not None, examined, listener.filters)
    finally:
        await watched.close()


async def test_orders_written_behind_the_api_before_the_known_oldest_are_still_listed(
    client, mongo, history, alice
) -> None:
    """The remembered oldest order only decides where windows start: an older one appears on page 1."""
    first = (await client.get("/orders/alice", params={"limit": 5}, headers=alice)).json()["data"]
    assert [o["id"] for o in first] == history["alice"][:5]
    pid = ObjectId(first[0]["items"][0]["productDetails"]["id"])
    older = await seed_order_history(
        mongo, user_id="alice", count=1, product_id=pid, newest=datetime.now(UTC) - timedelta(days=2000)
    )
    again = (await client.get("/orders/alice", params={"limit": 5}, headers=alice)).json()["data"]
    assert [o["id"] for o in again] == [str(older[0]), *history["alice"][:4]]
