"""Catalog at scale: bulk writes, the importer CLI, the demo catalog, key windows, single-flight, deadlines.

Speed targets live in ``benchmarks/catalog_scale.py``; these tests check behaviour:
what is written, what is refused and why, that every list order still returns
exactly the right rows when its queries are cut into key windows, that
concurrent misses share one query (counted with PyMongo command monitoring),
and that a query the database does not stop still answers 503 on time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from bson import Decimal128, Int64, ObjectId
from fastapi import FastAPI
from pymongo import AsyncMongoClient, MongoClient, monitoring

from backend_app import __main__ as cli
from backend_app.demo import DEMO_FILE, load_demo_catalog, load_demo_catalog_cli
from backend_app.devtools.embedded_db import EmbeddedMongo
from backend_app.products import catalog_meta, indexes, repository
from backend_app.products.schemas import ProductCreate
from config import Settings, get_settings
from tests.support.helpers import assert_problem, create_product
from tests.support.lifespan import lifespan

Headers = dict[str, str]


# --- POST /products/batch ----------------------------------------------------------------------------


async def test_batch_reports_each_item_and_writes_the_valid_ones(
    client: httpx.AsyncClient, admin_headers: Headers
) -> None:
    await create_product(client, admin_headers, name="Existing", sku="TAKEN-1")
    items = [
        {"name": "Tee", "price": 19.99, "sku": "TEE-1", "sizes": [{"size": "M", "quantity": 3}]},
        {"name": "", "price": -1},
        {"name": "Mug", "price": 7.5, "stock": 4},
        {"name": "Clash", "price": 1, "sku": "TAKEN-1"},
        "not an object",
    ]
    response = await client.post("/products/batch", json=items, headers=admin_headers)
    assert response.status_code == 207, response.text
    body = response.json()
    assert [r["index"] for r in body["results"]] == [0, 1, 2, 3, 4]
    assert [r["status"] for r in body["results"]] == [201, 422, 201, 409, 422]
    assert (body["created"], body["updated"], body["refused"]) == (2, 0, 3)
    fields = {tuple(e["loc"]) for e in body["results"][1]["errors"]}
    assert {("name",), ("price",)} <= fields
    assert body["results"][3]["errors"][0]["loc"] == ["sku"]
    tee = (await client.get(f"/products/{body['results'][0]['id']}")).json()
    assert (tee["name"], tee["price"], tee["sku"], tee["stock"]) == ("Tee", 19.99, "TEE-1", 3)
    listed = (await client.get("/products", params={"limit": 100})).json()["data"]
    assert sorted(p["name"] for p in listed) == ["Existing", "Mug", "Tee"]


async def test_batch_upsert_updates_the_product_with_that_sku(
    client: httpx.AsyncClient, admin_headers: Headers
) -> None:
    first = await client.post(
        "/products/batch", json=[{"name": "Old", "price": 5, "sku": "A-1"}], headers=admin_headers
    )
    product_id = first.json()["results"][0]["id"]
    again = await client.post(
        "/products/batch",
        params={"upsert": "true"},
        json=[{"name": "New", "price": 6.25, "sku": "A-1"}, {"name": "Other", "price": 1, "sku": "B-1"}],
        headers=admin_headers,
    )
    assert again.status_code == 207
    results = again.json()["results"]
    assert [(r["status"], r["id"] == product_id) for r in results] == [(200, True), (201, False)]
    product = (await client.get(f"/products/{product_id}")).json()
    assert (product["name"], product["price"]) == ("New", 6.25)
    # without upsert, the same sku is refused and the product is unchanged
    refused = await client.post(
        "/products/batch", json=[{"name": "X", "price": 1, "sku": "A-1"}], headers=admin_headers
    )
    assert refused.json()["results"][0]["status"] == 409
    assert (await client.get(f"/products/{product_id}")).json()["name"] == "New"


async def test_an_upsert_that_changes_nothing_writes_audits_and_announces_nothing(
    client: httpx.AsyncClient, admin_headers: Headers, mongo: Any
) -> None:
    item = {"name": "Tee", "price": 19.99, "sku": "TEE-1", "sizes": [{"size": "M", "quantity": 3}]}
    first = await client.post("/products/batch", params={"upsert": "true"}, json=[item], headers=admin_headers)
    product_id = first.json()["results"][0]["id"]
    stored = (await client.get(f"/products/{product_id}")).json()

    async def trail() -> tuple[int, int]:
        audit = await client.get("/audit", params={"limit": 100}, headers=admin_headers)
        events = await client.get("/events", params={"limit": 100}, headers=admin_headers)
        return len(audit.json()["data"]), len(events.json()["data"])

    before = await trail()
    version = await catalog_meta.get_catalog_version(mongo)
    # the same item again, repeated: every copy is "updated" and none writes
    again = await client.post("/products/batch", params={"upsert": "true"}, json=[item] * 50, headers=admin_headers)
    assert again.status_code == 207, again.text
    assert {(r["status"], r["id"]) for r in again.json()["results"]} == {(200, product_id)}
    assert (await client.get(f"/products/{product_id}")).json() == stored
    assert await trail() == before
    assert await catalog_meta.get_catalog_version(mongo) == version  # cached list pages stay valid
    # a changed copy among unchanged ones writes exactly once, then is what later copies compare with
    changed = {**item, "price": 21.5}
    mixed = await client.post(
        "/products/batch", params={"upsert": "true"}, json=[item, changed, changed], headers=admin_headers
    )
    assert [r["status"] for r in mixed.json()["results"]] == [200, 200, 200]
    assert (await client.get(f"/products/{product_id}")).json()["price"] == 21.5
    audits, events = await trail()
    assert await catalog_meta.get_catalog_version(mongo) != version
    assert audits == before[0] + 1
    assert events == before[1] + 1  # product.updated; the sizes did not change, so no stock_changed


async def test_batch_is_admin_only_and_bounded(
    client: httpx.AsyncClient, admin_headers: Headers, alice: Headers
) -> None:
    one = [{"name": "A", "price": 1}]
    assert_problem(await client.post("/products/batch", json=one), 401)
    assert_problem(await client.post("/products/batch", json=one, headers=alice), 403)
    assert_problem(await client.post("/products/batch", json=[], headers=admin_headers), 422)
    too_many = [{"name": f"p{i}", "price": 1} for i in range(1001)]
    assert_problem(await client.post("/products/batch", json=too_many, headers=admin_headers), 422)
    assert (await client.get("/products")).json()["data"] == []


async def test_sku_is_unique_on_every_write_path(client: httpx.AsyncClient, admin_headers: Headers) -> None:
    first = await create_product(client, admin_headers, name="A", sku="SKU-1")
    second = await create_product(client, admin_headers, name="B", sku="SKU-2")
    await create_product(client, admin_headers, name="C")  # products without sku never clash
    await create_product(client, admin_headers, name="D")
    assert_problem(
        await client.post("/products", json={"name": "E", "price": 1, "sku": "SKU-1"}, headers=admin_headers),
        409,
        "sku_taken",
    )
    assert_problem(
        await client.patch(f"/products/{second}", json={"sku": "SKU-1"}, headers=admin_headers), 409, "sku_taken"
    )
    assert_problem(
        await client.put(f"/products/{second}", json={"name": "B", "price": 1, "sku": "SKU-1"}, headers=admin_headers),
        409,
        "sku_taken",
    )
    assert (await client.get(f"/products/{first}")).json()["sku"] == "SKU-1"
    assert_problem(
        await client.post("/products", json={"name": "E", "price": 1, "sku": "bad sku!"}, headers=admin_headers), 422
    )


# --- import-products CLI -----------------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, mongo_server: EmbeddedMongo, db_name: str) -> Iterator[MongoClient]:
    """The CLI's settings pointed at this test's database; yields a sync client of it (dropped after)."""
    monkeypatch.setenv("MONGODB_URI", mongo_server.uri)
    monkeypatch.setenv("MONGODB_DB", db_name)
    monkeypatch.setenv("APP_ENV", "test")
    get_settings.cache_clear()
    mongo: MongoClient = MongoClient(mongo_server.uri, tz_aware=True)
    yield mongo
    mongo.drop_database(db_name)
    mongo.close()
    get_settings.cache_clear()


CSV_TEXT = (
    "name,price,sku,category,sizes,stock,rating\n"
    "Linen shirt,39.90,SH-1,tops,S:1|M:2|L:0,,4.5\n"
    'Mug,"7.50",MUG-1,kitchen,,12,\n'
    "Broken,-3,BR-1,,,,\n"
    "Bad sizes,5,BS-1,,S-1,,\n"
)


def _products(mongo: MongoClient, db_name: str) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in mongo[db_name]["products"].find({})}


def test_import_csv_reports_rows_and_writes_valid_ones(
    cli_env: MongoClient, db_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "catalog.csv"
    path.write_text(CSV_TEXT, encoding="utf-8")
    assert cli.main(["import-products", str(path)]) == 1  # some rows refused
    out = capsys.readouterr().out
    assert "4 rows read; imported 2 (created 2, updated 0); refused 2;" in out
    assert "row 4: price: Input should be greater than 0" in out
    assert "row 5: sizes: 'S-1' is not 'size:quantity'" in out
    stored = _products(cli_env, db_name)
    assert set(stored) == {"Linen shirt", "Mug"}
    shirt, mug = stored["Linen shirt"], stored["Mug"]
    assert shirt["sizes"] == [
        {"size": "S", "quantity": 1, "allocated": 0, "available": 1},
        {"size": "M", "quantity": 2, "allocated": 0, "available": 2},
        {"size": "L", "quantity": 0, "allocated": 0, "available": 0},
    ]
    assert (shirt["price"], shirt["price_cents"], shirt["sku"], shirt["rating"]) == (
        Decimal128("39.90"),
        3990,
        "SH-1",
        4.5,
    )
    assert (mug["sizes"], mug["price_cents"]) == (
        [{"size": "one-size", "quantity": 12, "allocated": 0, "available": 12}],
        750,
    )
    meta = cli_env[db_name]["catalog_meta"].find_one({"_id": "catalog"})
    assert meta["version"] == 1  # bumped once for the whole import


def test_import_json_and_jsonl_dry_run_and_upsert(
    cli_env: MongoClient, db_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    array = tmp_path / "catalog.json"
    array.write_text(json.dumps([{"name": "A", "price": 1, "sku": "A"}, {"name": "B", "price": 2, "sku": "B"}]))
    assert cli.main(["import-products", str(array), "--dry-run"]) == 0
    assert "2 rows read; would import 2; refused 0;" in capsys.readouterr().out
    assert _products(cli_env, db_name) == {}
    assert cli.main(["import-products", str(array)]) == 0
    lines = tmp_path / "update.jsonl"
    lines.write_text('{"name": "A2", "price": 1.5, "sku": "A"}\n\nnot json\n{"name": "C", "price": 3, "sku": "C"}\n')
    assert cli.main(["import-products", str(lines)]) == 1  # without --upsert: sku A is taken
    out = capsys.readouterr().out
    assert "row 1: sku: sku already belongs to another product" in out and "row 3: not JSON" in out
    assert cli.main(["import-products", str(lines), "--upsert"]) == 1  # row 3 is still not JSON
    assert "imported 2 (created 0, updated 2)" in capsys.readouterr().out
    stored = _products(cli_env, db_name)
    assert set(stored) == {"A2", "B", "C"} and stored["A2"]["price_cents"] == 150


def test_import_refuses_an_unreadable_file(
    cli_env: MongoClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "catalog.json"
    bad.write_text('{"name": "not an array"}')
    assert cli.main(["import-products", str(bad)]) == 2
    assert "must be an array" in capsys.readouterr().err
    assert cli.main(["import-products", str(tmp_path / "catalog.xml")]) == 2


# --- demo catalog --------------------------------------------------------------------------------------


async def test_demo_catalog_loads_only_into_an_empty_catalog(client: httpx.AsyncClient, mongo: Any) -> None:
    assert await load_demo_catalog(mongo) == 194
    assert await load_demo_catalog(mongo) is None  # never twice
    assert await mongo["products"].count_documents({}) == 194
    shirts = (await client.get("/products", params={"category": "mens-shirts", "limit": 1})).json()["data"]
    shirt = (await client.get(f"/products/{shirts[0]['id']}")).json()
    assert [s["size"] for s in shirt["sizes"]] == ["S", "M", "L"]
    assert (DEMO_FILE.parent / "LICENSE").read_text().startswith("The MIT License")


async def test_demo_catalog_is_skipped_with_demo_data_false_or_existing_products(
    client: httpx.AsyncClient, admin_headers: Headers, settings: Settings, mongo: Any
) -> None:
    assert await asyncio.to_thread(load_demo_catalog_cli, settings.model_copy(update={"demo_data": False})) is None
    assert await mongo["products"].count_documents({}) == 0
    await create_product(client, admin_headers, name="Mine")
    assert await asyncio.to_thread(load_demo_catalog_cli, settings) is None
    assert await mongo["products"].count_documents({}) == 1


def test_dev_and_serve_never_load_the_demo_into_a_configured_database(
    cli_env: MongoClient, db_name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    served: list[bool] = []
    monkeypatch.setattr(cli, "_serve", lambda **_: served.append(True) or 0)  # _serve returns the exit status
    assert cli.main(["dev"]) == 0
    assert cli.main(["serve"]) == 0
    assert served == [True, True]
    assert cli_env[db_name]["products"].count_documents({}) == 0
    assert "demo catalog" not in capsys.readouterr().out


def test_dev_loads_the_demo_into_its_new_embedded_database(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("MONGODB_URI", "DATABASE_URL", "MONGODB_DB", "DEMO_DATA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("APP_ENV", "test")
    monkeypatch.chdir(tmp_path)  # ./logs of the embedded server
    counted: list[int] = []

    def fake_serve(**_: Any) -> int:  # the database is still up while the app would serve
        settings = get_settings()
        with MongoClient(settings.effective_mongodb_uri) as mongo:
            counted.append(mongo[settings.mongodb_db]["products"].count_documents({}))
        return 0  # _serve's exit status

    monkeypatch.setattr(cli, "_serve", fake_serve)
    get_settings.cache_clear()
    try:
        assert cli.main(["dev", "--data-dir", str(tmp_path / "db")]) == 0
    finally:
        get_settings.cache_clear()
    assert counted == [194]
    out = capsys.readouterr().out
    assert "Loaded the demo catalog: 194 products" in out and "DEMO_DATA=false" in out


# --- key windows: every order returns exactly the right rows -------------------------------------------


async def _spread_catalog(mongo: Any) -> list[dict[str, Any]]:
    """Products written behind the API over years of ``_id``/``created_at`` and a wide price range, plus outliers."""
    base = datetime(2020, 1, 1, tzinfo=UTC)
    docs = []
    prices = [
        "0.01",
        "0.99",
        "1.00",
        "1.00",
        "9.99",
        "10",
        "10",
        "49.50",
        "120",
        "999.99",
        "5000",
        "75000",
        "999999.99",
        "1000000",
    ]
    for i in range(40):
        when = base + timedelta(seconds=int(1.9 ** (i % 25)) + i)
        product = ProductCreate(
            name=f"p{i:02d}", price=Decimal(prices[i % len(prices)]), stock=1, category="c" if i % 3 else "d"
        )
        doc = repository.new_product_document(product, now=when)
        doc["_id"] = ObjectId.from_datetime(when)
        docs.append(doc)
    await mongo["products"].insert_many(docs)
    await catalog_meta.record_extent(mongo, docs[5:30])  # a stale extent: only speed may suffer, never results
    # written behind the API: a price outside the valid range, and dates outside the recorded extent
    odd = repository.new_product_document(
        ProductCreate(name="odd", price=Decimal(1), stock=1), now=base - timedelta(days=900)
    )
    odd.update(
        {
            "_id": ObjectId.from_datetime(base + timedelta(days=3000)),
            "price": Decimal128("2000000"),
            "price_cents": Int64(200_000_000),
        }
    )
    await mongo["products"].insert_one(odd)
    gone = repository.new_product_document(ProductCreate(name="gone", price=Decimal(3), stock=1), now=base)
    gone["deleted_at"] = base
    await mongo["products"].insert_one(gone)
    return [*docs, odd]


@pytest.mark.parametrize("sort", ["_id", "price", "-price", "created_at", "-created_at"])
@pytest.mark.parametrize("params", [{}, {"category": "c"}, {"min_price": "1", "max_price": "5000"}])
async def test_every_order_pages_through_exactly_the_live_products(
    client: httpx.AsyncClient, mongo: Any, sort: str, params: dict[str, str]
) -> None:
    docs = await _spread_catalog(mongo)
    field = {"price": "price_cents"}.get(sort.lstrip("-"), sort.lstrip("-"))
    wanted = [
        d for d in docs
        if d.get("category") == params.get("category", d.get("category"))
        and (not params or "min_price" not in params or 100 <= d["price_cents"] <= 500000)
    ]  # fmt: skip
    wanted.sort(key=lambda d: (d[field], d["_id"]), reverse=sort.startswith("-"))
    expected = [d["name"] for d in wanted]
    seen: list[str] = []
    response = await client.get("/products", params={**params, "sort": sort, "limit": 4})
    while True:
        assert response.status_code == 200, response.text
        seen += [p["name"] for p in response.json()["data"]]
        cursor = response.json()["page"]["next_cursor"]
        if cursor is None:
            break
        response = await client.get("/products", params={**params, "sort": sort, "limit": 4, "cursor": cursor})
    assert seen == expected
    # offsets cross windows too
    offset = (await client.get("/products", params={**params, "sort": sort, "limit": 5, "offset": 7})).json()["data"]
    assert [p["name"] for p in offset] == expected[7:12]


async def test_price_cents_and_extent_are_backfilled_idempotently(mongo: Any) -> None:
    doc = repository.new_product_document(
        ProductCreate(name="legacy", price=Decimal("12.34"), stock=1), now=datetime.now(UTC)
    )
    del doc["price_cents"]
    await mongo["products"].insert_one(doc)
    await mongo["catalog_meta"].delete_many({})
    assert await indexes.backfill_price_cents(mongo) == 1
    assert await indexes.backfill_price_cents(mongo) == 0
    assert (await mongo["products"].find_one({"name": "legacy"}))["price_cents"] == 1234
    assert await indexes.backfill_extent(mongo) is True
    assert await indexes.backfill_extent(mongo) is False
    assert await repository.key_extent(mongo, "_id") is not None


# --- one query per miss ------------------------------------------------------------------------------------


class ProductFinds(monitoring.CommandListener):
    """Counts ``find`` commands on ``products``."""

    def __init__(self) -> None:
        self.count = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find" and event.command.get("find") == "products":
            self.count += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_sixteen_identical_misses_share_one_query(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, admin_headers: Headers
) -> None:
    for i in range(12):
        await create_product(client, admin_headers, name=f"p{i}", price=i + 1)
    listener = ProductFinds()
    watched: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        settings.effective_mongodb_uri, tz_aware=True, event_listeners=[listener]
    )
    original, app.state.db = app.state.db, watched[settings.mongodb_db]
    try:
        params = {"sort": "-price", "limit": "5"}
        await create_product(client, admin_headers, name="write 1")  # a write: every page is a miss again
        listener.count = 0
        assert (await client.get("/products", params=params)).status_code == 200
        one = listener.count
        await create_product(client, admin_headers, name="write 2")
        listener.count = 0
        responses = await asyncio.gather(*(client.get("/products", params=params) for _ in range(16)))
        sixteen = listener.count
    finally:
        app.state.db = original
        await watched.close()
    assert one >= 1
    assert sixteen == one, (one, sixteen)
    bodies = {r.content for r in responses}
    assert len(bodies) == 1 and all(r.status_code == 200 for r in responses)
    assert json.loads(bodies.pop())["data"][0]["name"] == "p11"


# --- deadline -----------------------------------------------------------------------------------------------


class FailPointMongo(EmbeddedMongo):
    """A SecantusDB with test commands on (``configureFailPoint``), which the session server has off."""

    def command(self) -> list[str]:
        return [*super().command(), "--enable-test-commands"]


async def test_a_query_the_database_does_not_stop_answers_503_on_time(settings: Settings, password_hash: str) -> None:

    from backend_app.devtools.seed import seed_user
    from backend_app.main import create_app

    with FailPointMongo(storage_path=":memory:") as server:
        slow = settings.model_copy(
            # No webhook dispatcher: its background finds would take the one-shot fail point meant for the list query.
            update={
                "mongodb_uri": server.uri,
                "mongodb_max_time_ms": 200,
                "cache_enabled": False,
                "webhook_dispatcher_enabled": False,
            }
        )
        application = create_app(slow)
        async with lifespan(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                admin_headers = await seed_user(
                    application.state.db, slow, username="root_admin", role="admin", password_hash=password_hash
                )
                await create_product(client, admin_headers, name="Slow")
                admin: MongoClient = MongoClient(server.uri)
                admin.admin.command(
                    "configureFailPoint",
                    "failCommand",
                    mode={"times": 1},
                    data={
                        "failCommands": ["find"],
                        "blockConnection": True,
                        "blockTimeMS": 1500,
                        "appName": "storefront",
                    },
                )
                try:
                    started = time.perf_counter()
                    response = await client.get("/products", params={"sort": "price"})
                    elapsed = time.perf_counter() - started
                finally:
                    admin.admin.command("configureFailPoint", "failCommand", mode="off")
                    admin.close()
                assert_problem(response, 503, "query_timeout")
                assert elapsed < 1.0, elapsed  # the server is still blocked for 1.5 s
                await asyncio.sleep(1.5)  # let the blocked command finish before the server stops
                assert (await client.get("/products")).status_code == 200


async def test_misses_in_two_processes_share_one_query_through_redis(
    settings: Settings, redis_url: str, password_hash: str
) -> None:
    """Two app objects (as two workers) on one Redis page cache: a miss computed by one is awaited by the other."""
    from contextlib import AsyncExitStack

    from backend_app.devtools.seed import seed_user
    from backend_app.main import create_app

    shared = settings.model_copy(update={"cache_uri": redis_url})
    listener = ProductFinds()
    async with AsyncExitStack() as stack:
        clients, watched = [], []
        for name in ("worker-a", "worker-b"):
            application = create_app(shared)
            await stack.enter_async_context(lifespan(application))
            mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
                shared.effective_mongodb_uri, tz_aware=True, event_listeners=[listener]
            )
            watched.append(mongo)
            application.state.db = mongo[shared.mongodb_db]
            http = httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url=f"http://{name}")
            clients.append(await stack.enter_async_context(http))
        admin = await seed_user(
            watched[0][shared.mongodb_db], shared, username="root_admin", role="admin", password_hash=password_hash
        )
        for i in range(8):
            await create_product(clients[0], admin, name=f"p{i}", price=i + 1)
        params = {"sort": "price", "limit": "3"}
        listener.count = 0
        assert (await clients[0].get("/products", params=params)).status_code == 200
        one = listener.count
        await create_product(clients[0], admin, name="write")
        listener.count = 0
        responses = await asyncio.gather(*(clients[i % 2].get("/products", params=params) for i in range(16)))
        both = listener.count
        for mongo in watched:
            await mongo.close()
    assert all(r.status_code == 200 for r in responses) and len({r.content for r in responses}) == 1
    assert both == one, (one, both)
