"""Catalog reads: ETag / 304 on both GETs, and a page cache that is never stale after a write (issue: caching).

"Another worker" is a second app object on the same database: its own
``AsyncMongoClient`` and its own in-process page cache, as a second uvicorn
worker or host would have. Pages read through it right after a write made
through the first must show the write.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI
from pydantic import ValidationError

from backend_app.devtools.embedded_db import free_port
from backend_app.main import create_app
from backend_app.products import catalog_meta, repository
from backend_app.products.catalog_version import catalog_changed
from backend_app.products.page_store import CachedPage, MemoryPageStore, RedisPageStore
from backend_app.products.schemas import ProductCreate
from config import Settings
from tests.support.helpers import create_product
from tests.support.lifespan import lifespan

Headers = dict[str, str]


@contextlib.asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """A separate app object built from ``settings`` (lifespan run) and an in-process client for it."""
    application = create_app(settings)
    async with lifespan(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://other-worker") as http:
            yield application, http


@pytest.fixture
async def other_worker(app: FastAPI, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a second app object on the test's database (``app`` drops the database after)."""
    async with serve(settings) as (_, http):
        yield http


def names(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()["data"]]


async def insert_behind_the_api(mongo: Any, name: str) -> None:
    """Store a product directly (no version bump), as an out-of-band database edit would."""
    await repository.insert_product(mongo, product=ProductCreate(name=name, price=5, stock=1))


# --- ETag, Cache-Control, 304 -----------------------------------------------------------------------


async def test_list_has_a_strong_etag_and_must_be_revalidated(
    client: httpx.AsyncClient, admin_headers: Headers
) -> None:
    await create_product(client, admin_headers, name="Alpha")
    response = await client.get("/products")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, no-cache"
    etag = response.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert response.json()["data"][0]["name"] == "Alpha"


async def test_authenticated_requests_get_private_and_the_same_body_and_tag(
    client: httpx.AsyncClient, admin_headers: Headers, alice: Headers
) -> None:
    await create_product(client, admin_headers, name="Alpha")
    anonymous = await client.get("/products")
    signed_in = await client.get("/products", headers=alice)
    assert signed_in.headers["cache-control"] == "private, no-cache"
    assert signed_in.content == anonymous.content
    assert signed_in.headers["etag"] == anonymous.headers["etag"]
    not_modified = await client.get("/products", headers={**alice, "If-None-Match": anonymous.headers["etag"]})
    assert not_modified.status_code == 304
    assert not_modified.headers["cache-control"] == "private, no-cache"


@pytest.mark.parametrize("form", ["exact", "weak", "in a list", "star"])
@pytest.mark.parametrize("path", ["/products", "/products?name=alp&limit=5", "detail"])
async def test_the_current_tag_gives_304_with_no_body_and_the_caching_headers(
    client: httpx.AsyncClient, admin_headers: Headers, form: str, path: str
) -> None:
    product_id = await create_product(client, admin_headers, name="Alpha")
    url = f"/products/{product_id}" if path == "detail" else path
    first = await client.get(url)
    etag = first.headers["etag"]
    header = {"exact": etag, "weak": f"W/{etag}", "in a list": f'"nope", {etag}, "other"', "star": "*"}[form]
    response = await client.get(url, headers={"If-None-Match": header})
    assert response.status_code == 304
    assert response.content == b""
    assert "content-length" not in response.headers or response.headers["content-length"] == "0"
    assert response.headers["etag"] == etag
    assert response.headers["cache-control"] == "public, no-cache"
    # The middleware still runs: request id and security headers on the 304.
    assert response.headers["x-request-id"]
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("header", ['"not-the-tag"', "not-quoted", 'W/"x", garbage'])
async def test_another_or_a_malformed_tag_gets_the_full_response(
    client: httpx.AsyncClient, admin_headers: Headers, header: str
) -> None:
    await create_product(client, admin_headers, name="Alpha")
    response = await client.get("/products", headers={"If-None-Match": header})
    assert response.status_code == 200
    assert names(response) == ["Alpha"]


async def test_the_list_tag_changes_when_the_list_changes(client: httpx.AsyncClient, admin_headers: Headers) -> None:
    await create_product(client, admin_headers, name="Alpha")
    before = await client.get("/products")
    await create_product(client, admin_headers, name="Beta")
    after = await client.get("/products", headers={"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200
    assert names(after) == ["Alpha", "Beta"]
    assert after.headers["etag"] != before.headers["etag"]


async def test_detail_shows_stock_after_an_order_and_its_tag_changes(
    client: httpx.AsyncClient, admin_headers: Headers, alice: Headers, mongo: Any
) -> None:
    product_id = await create_product(client, admin_headers, name="Alpha", sizes=[{"size": "m", "quantity": 10}])
    before = await client.get(f"/products/{product_id}")
    assert before.json()["stock"] == 10
    listed = await client.get("/products")
    version = await catalog_meta.get_catalog_version(mongo)

    order = await client.post("/orders", json={"items": [{"productId": product_id, "qty": 3}]}, headers=alice)
    assert order.status_code == 201, order.text

    after = await client.get(f"/products/{product_id}", headers={"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200
    assert after.json()["stock"] == 7
    assert after.json()["sizes"] == [{"size": "m", "quantity": 10, "allocated": 3, "available": 7}]
    assert after.headers["etag"] != before.headers["etag"]
    # The order changed no list field, so it did not flush the list cache, and the list's tag holds.
    assert await catalog_meta.get_catalog_version(mongo) == version
    again = await client.get("/products", headers={"If-None-Match": listed.headers["etag"]})
    assert again.status_code == 304


async def test_unknown_product_is_404_even_with_if_none_match_star(client: httpx.AsyncClient) -> None:
    response = await client.get("/products/65f1c0ffee0000000000beef", headers={"If-None-Match": "*"})
    assert response.status_code == 404
    assert "etag" not in response.headers


async def test_the_published_schema_declares_the_304_and_the_etag(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    for path in ("/products", "/products/{product_id}"):
        responses = schema["paths"][path]["get"]["responses"]
        assert "304" in responses
        assert "ETag" in responses["200"]["headers"]
        assert "content" in responses["200"]  # the response model is still published


# --- The server-side page cache ---------------------------------------------------------------------


async def test_pages_come_from_the_cache_until_the_catalog_version_changes(
    client: httpx.AsyncClient, admin_headers: Headers, mongo: Any
) -> None:
    await create_product(client, admin_headers, name="Alpha")
    assert names(await client.get("/products")) == ["Alpha"]
    await insert_behind_the_api(mongo, "Hidden")
    # Served from the cache: the out-of-band insert bumped nothing.
    assert names(await client.get("/products")) == ["Alpha"]
    # A query not cached yet is computed afresh.
    assert names(await client.get("/products", params={"limit": 5})) == ["Alpha", "Hidden"]
    await catalog_changed(mongo)
    assert names(await client.get("/products")) == ["Alpha", "Hidden"]


@pytest.mark.settings(cache_enabled=False)
async def test_the_cache_can_be_turned_off(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: Headers, mongo: Any
) -> None:
    assert app.state.catalog_cache is None
    await create_product(client, admin_headers, name="Alpha")
    first = await client.get("/products")
    await insert_behind_the_api(mongo, "Hidden")
    assert names(await client.get("/products")) == ["Alpha", "Hidden"]
    # Conditional requests work without the server cache.
    assert (await client.get("/products", headers={"If-None-Match": first.headers["etag"]})).status_code == 200
    current = (await client.get("/products")).headers["etag"]
    assert (await client.get("/products", headers={"If-None-Match": current})).status_code == 304


async def test_a_write_is_seen_at_once_by_another_worker(
    client: httpx.AsyncClient, other_worker: httpx.AsyncClient, admin_headers: Headers
) -> None:
    await create_product(client, admin_headers, name="Alpha Shirt", sizes=[{"size": "large", "quantity": 1}])
    queries: list[dict[str, Any]] = [{}, {"name": "shirt"}, {"size": "large"}, {"limit": 100, "offset": 1}]
    for round_number in range(3):
        # The other worker caches every page ...
        before = [names(await other_worker.get("/products", params=q)) for q in queries]
        # ... a write lands through this worker ...
        await create_product(
            client, admin_headers, name=f"Shirt {round_number}", sizes=[{"size": "large", "quantity": 1}]
        )
        # ... and the other worker's very next reads show it.
        after = [names(await other_worker.get("/products", params=q)) for q in queries]
        for query, old, new in zip(queries, before, after, strict=True):
            assert new == [*old, f"Shirt {round_number}"], (query, old, new)


async def test_a_page_computed_while_a_write_lands_is_not_served_after_it(
    client: httpx.AsyncClient, admin_headers: Headers, monkeypatch: pytest.MonkeyPatch
) -> None:
    await create_product(client, admin_headers, name="Alpha")
    original = repository.list_products
    interleaved = False

    async def list_then_let_a_write_land(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        nonlocal interleaved
        rows = await original(*args, **kwargs)
        if not interleaved:
            interleaved = True
            # The query has run; now a write completes (and bumps) before this page is stored.
            await create_product(client, admin_headers, name="Written meanwhile")
        return rows

    monkeypatch.setattr(repository, "list_products", list_then_let_a_write_land)
    overlapping = await client.get("/products")
    assert names(overlapping) == ["Alpha"]  # it overlapped the write: either state is fine
    assert interleaved
    assert names(await client.get("/products")) == ["Alpha", "Written meanwhile"]


async def test_a_read_just_before_a_write_lands_leaves_no_stale_page(
    client: httpx.AsyncClient, admin_headers: Headers, monkeypatch: pytest.MonkeyPatch
) -> None:
    await create_product(client, admin_headers, name="Alpha")
    original = repository.insert_product
    raced: list[list[str]] = []

    async def read_then_insert(*args: Any, **kwargs: Any) -> Any:
        # Another request reads (and caches) the list while this write is under way.
        raced.append(names(await client.get("/products")))
        return await original(*args, **kwargs)

    monkeypatch.setattr(repository, "insert_product", read_then_insert)
    await create_product(client, admin_headers, name="Beta")
    assert raced == [["Alpha"]]
    # Once the write has returned, no reader gets the page cached during it.
    assert names(await client.get("/products")) == ["Alpha", "Beta"]


async def test_equivalent_queries_share_a_page_and_different_ones_do_not(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: Headers
) -> None:
    for name in ("Alpha", "Beta", "Gamma"):
        await create_product(client, admin_headers, name=name)
    store: MemoryPageStore = app.state.catalog_cache
    await client.get("/products")
    await client.get("/products?limit=10")  # the default, made explicit
    await client.get("/products?offset=0&limit=10")  # an omitted offset is offset 0
    await client.get("/products?limit=10&offset=0&unknown=")  # undeclared: ignored
    assert store.entries == 1
    # FastAPI reads the last value of a repeated scalar parameter; so does the key.
    assert names(await client.get("/products?name=alpha&name=beta")) == ["Beta"]
    assert names(await client.get("/products?name=beta&name=alpha")) == ["Alpha"]
    assert names(await client.get("/products?name=%20")) == []
    assert names(await client.get("/products?name=+")) == []  # the same value as %20
    assert store.entries == 4


async def test_failed_requests_are_not_cached(app: FastAPI, client: httpx.AsyncClient) -> None:
    for _ in range(2):
        response = await client.get("/products", params={"name": "(unclosed"})
        assert response.status_code == 422
    assert app.state.catalog_cache.entries == 0


@pytest.mark.settings(cache_max_entries=3)
async def test_the_cache_holds_at_most_cache_max_entries_pages(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: Headers
) -> None:
    await create_product(client, admin_headers, name="Alpha")
    store: MemoryPageStore = app.state.catalog_cache
    for limit in range(1, 8):
        assert (await client.get("/products", params={"limit": limit})).status_code == 200
        assert store.entries == min(limit, 3)


@pytest.mark.settings(cache_max_bytes=4096)
async def test_the_cache_holds_at_most_cache_max_bytes(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: Headers
) -> None:
    for n in range(20):
        await create_product(client, admin_headers, name=f"{n:02d} " + "x" * 190)
    store: MemoryPageStore = app.state.catalog_cache
    for offset in range(12):
        response = await client.get("/products", params={"limit": 2, "offset": offset})
        assert response.status_code == 200
        assert 0 < store.bytes <= 4096
    assert store.entries < 12
    # A page larger than the whole budget is served, but not stored.
    stored = store.entries
    big = await client.get("/products", params={"limit": 100})
    assert len(big.content) > 4096 and len(big.json()["data"]) == 20
    assert store.entries <= stored and store.bytes <= 4096


@pytest.mark.parametrize("uri", ["memcached://cache:11211", "127.0.0.1:6379"])
def test_cache_uri_must_be_a_redis_uri(uri: str) -> None:
    with pytest.raises(ValidationError, match="CACHE_URI must be"):
        Settings(_env_file=None, cache_uri=uri)  # type: ignore[call-arg]
    assert Settings(_env_file=None, cache_uri="").cache_uri is None  # type: ignore[call-arg]


async def test_entries_expire_after_the_ttl() -> None:
    now = [1000.0]
    store = MemoryPageStore(max_entries=10, max_bytes=10_000, ttl_seconds=60, timer=lambda: now[0])
    page = CachedPage(version="v", etag='"t"', body=b"{}")
    await store.put("/products?", page)
    now[0] += 59
    assert await store.get("/products?") == page
    now[0] += 2
    assert await store.get("/products?") is None
    assert store.entries == 0 and store.bytes == 0


# --- Redis ------------------------------------------------------------------------------------------


async def test_with_redis_two_workers_share_pages_and_see_writes_at_once(
    app: FastAPI, settings: Settings, redis_url: str, admin_headers: Headers, mongo: Any
) -> None:
    shared = settings.model_copy(update={"cache_uri": redis_url})
    async with serve(shared) as (first_app, first), serve(shared) as (_, second):
        assert isinstance(first_app.state.catalog_cache, RedisPageStore)
        await create_product(first, admin_headers, name="Alpha")
        assert names(await first.get("/products")) == ["Alpha"]
        keys = redis.Redis.from_url(redis_url).keys(f"storefront:{settings.mongodb_db}:catalog:list:*")
        assert len(keys) == 1
        # The second worker is served the first one's page from Redis (the hidden insert bumped nothing).
        await insert_behind_the_api(mongo, "Hidden")
        assert names(await second.get("/products")) == ["Alpha"]
        # A write through the first worker; the second reads it at once.
        await create_product(first, admin_headers, name="Beta")
        assert names(await second.get("/products")) == ["Alpha", "Hidden", "Beta"]
        etag = (await first.get("/products")).headers["etag"]
        assert (await second.get("/products", headers={"If-None-Match": etag})).status_code == 304


async def test_an_unreachable_redis_means_no_caching_and_is_logged_once(
    app: FastAPI, settings: Settings, admin_headers: Headers, mongo: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="backend_app.products.cache")
    dead = settings.model_copy(update={"cache_uri": f"redis://127.0.0.1:{free_port()}/0"})
    async with serve(dead) as (_, http):
        await create_product(http, admin_headers, name="Alpha")
        assert names(await http.get("/products")) == ["Alpha"]
        await insert_behind_the_api(mongo, "Hidden")
        for _ in range(3):
            assert names(await http.get("/products")) == ["Alpha", "Hidden"]
    warnings = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(warnings) == 1, caplog.text


async def test_undeclared_parameters_do_not_grow_the_cache(app: FastAPI, client: httpx.AsyncClient) -> None:
    store: MemoryPageStore = app.state.catalog_cache
    first = await client.get("/products?limit=100")
    assert first.status_code == 200
    assert store.entries == 1
    for n in range(25):
        junk = await client.get(f"/products?limit=100&junk={n}&utm_source=x{n}")
        assert junk.status_code == 200
        assert junk.content == first.content
    # Spellings of one validated value share the page too.
    for spelling in ("limit=0100", "limit=100&limit=100", "limit=5&limit=100", "limit=+100"):
        assert (await client.get(f"/products?{spelling}")).status_code == 200
    assert store.entries == 1
    assert (await client.get("/products?limit=100&min_price=1.5")).status_code == 200
    assert (await client.get("/products?limit=100&min_price=1.50")).status_code == 200
    assert store.entries == 2
