"""GET /products (docs/contract.md §1, §2): the brief's list shape, id order, page metadata at every
edge, limit/offset bounds, the name/size/category/price filters and the sort orders.
"""

from __future__ import annotations

import re

import httpx
import pytest

from tests.support.helpers import assert_problem, create_product

HEX24 = re.compile(r"^[0-9a-f]{24}$")


async def test_list_shape_matches_the_brief(client: httpx.AsyncClient, admin_headers) -> None:
    await create_product(client, admin_headers, name="Tee", price=19.99, sizes=[{"size": "large", "quantity": 1}])
    response = await client.get("/products")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"data", "page"}
    item = body["data"][0]
    assert {"id", "name", "price"} <= set(item)
    assert "sizes" not in item
    assert isinstance(item["price"], float) and item["price"] == 19.99
    assert HEX24.match(item["id"])
    # the brief's three page keys, plus the keyset cursors (docs/contract.md §2), null on a single page
    assert body["page"] == {"next": None, "limit": 1, "previous": None, "next_cursor": None, "prev_cursor": None}


async def test_list_is_in_ascending_id_order(client: httpx.AsyncClient, admin_headers) -> None:
    ids = [await create_product(client, admin_headers, name=f"P{i}") for i in range(5)]
    data = (await client.get("/products")).json()["data"]
    assert [d["id"] for d in data] == sorted(ids)


class TestPageMetadata:
    """``page`` = {next: str|null, limit: count in page, previous: int|null} at every edge (docs/contract.md §1)."""

    @pytest.fixture
    async def ids(self, client: httpx.AsyncClient, admin_headers) -> list[str]:
        return sorted([await create_product(client, admin_headers, name=f"Item {i}") for i in range(7)])

    async def page(self, client: httpx.AsyncClient, **params: int) -> dict:
        response = await client.get("/products", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    async def test_first_page(self, client, ids) -> None:
        body = await self.page(client, limit=3)
        assert [d["id"] for d in body["data"]] == ids[:3]
        assert body["page"]["next"] == "3"
        assert body["page"]["limit"] == 3
        assert body["page"]["previous"] is None

    async def test_middle_page(self, client, ids) -> None:
        body = await self.page(client, limit=3, offset=3)
        assert [d["id"] for d in body["data"]] == ids[3:6]
        assert body["page"]["next"] == "6"
        assert body["page"]["previous"] == 0
        assert body["page"]["limit"] == 3

    async def test_last_page_is_partial(self, client, ids) -> None:
        body = await self.page(client, limit=3, offset=6)
        assert [d["id"] for d in body["data"]] == ids[6:]
        assert body["page"]["next"] is None
        assert body["page"]["limit"] == 1
        assert body["page"]["previous"] == 3

    async def test_exact_last_page_has_no_next(self, client, ids) -> None:
        body = await self.page(client, limit=7)
        assert len(body["data"]) == 7
        assert body["page"]["next"] is None

    async def test_previous_is_clamped_at_zero(self, client, ids) -> None:
        body = await self.page(client, limit=5, offset=2)
        assert body["page"]["previous"] == 0

    async def test_offset_past_the_end_is_an_empty_page(self, client, ids) -> None:
        body = await self.page(client, limit=3, offset=50)
        assert body["data"] == []
        assert body["page"]["next"] is None
        assert body["page"]["limit"] == 0
        assert body["page"]["previous"] == 47

    async def test_default_limit_is_ten(self, client, admin_headers) -> None:
        for i in range(12):
            await create_product(client, admin_headers, name=f"Bulk {i}")
        body = await self.page(client)
        assert len(body["data"]) == 10
        assert body["page"]["next"] == "10"

    async def test_empty_collection(self, client) -> None:
        body = await self.page(client)
        assert body["data"] == []
        assert body["page"]["next"] is None and body["page"]["previous"] is None and body["page"]["limit"] == 0


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 101}, {"limit": -1}, {"limit": "ten"}, {"offset": -1}, {"offset": 10001}, {"offset": "x"}],
)
async def test_limit_and_offset_out_of_range_are_422(client: httpx.AsyncClient, params: dict) -> None:
    assert_problem(await client.get("/products", params=params), 422, "validation_error")


async def test_limit_and_offset_bounds_are_inclusive(client: httpx.AsyncClient) -> None:
    assert (await client.get("/products", params={"limit": 1, "offset": 0})).status_code == 200
    assert (await client.get("/products", params={"limit": 100, "offset": 10000})).status_code == 200


class TestFilters:
    @pytest.fixture(autouse=True)
    async def catalog(self, client: httpx.AsyncClient, admin_headers) -> None:
        await create_product(client, admin_headers, name="Red T-Shirt", sizes=[{"size": "large", "quantity": 1}])
        await create_product(client, admin_headers, name="Blue SHIRT", sizes=[{"size": "small", "quantity": 1}])
        await create_product(
            client,
            admin_headers,
            name="Socks",
            sizes=[{"size": "large", "quantity": 0}, {"size": "small", "quantity": 4}],
        )

    async def names(self, client: httpx.AsyncClient, **params: str) -> list[str]:
        response = await client.get("/products", params=params)
        assert response.status_code == 200, response.text
        return [d["name"] for d in response.json()["data"]]

    async def test_name_is_a_case_insensitive_substring(self, client) -> None:
        assert await self.names(client, name="shirt") == ["Red T-Shirt", "Blue SHIRT"]

    async def test_name_accepts_a_regex(self, client) -> None:
        assert await self.names(client, name="^(red|socks)") == ["Red T-Shirt", "Socks"]

    async def test_name_without_match_is_an_empty_page(self, client) -> None:
        assert await self.names(client, name="trousers") == []

    async def test_size_filter_keeps_products_having_that_size(self, client) -> None:
        assert await self.names(client, size="large") == ["Red T-Shirt", "Socks"]
        assert await self.names(client, size="small") == ["Blue SHIRT", "Socks"]
        assert await self.names(client, size="xl") == []

    async def test_filters_combine(self, client) -> None:
        assert await self.names(client, name="shirt", size="large") == ["Red T-Shirt"]

    async def test_filters_page_correctly(self, client) -> None:
        body = (await client.get("/products", params={"name": "s", "limit": 2, "offset": 1})).json()
        assert [d["name"] for d in body["data"]] == ["Blue SHIRT", "Socks"]
        assert body["page"]["next"] is None and body["page"]["previous"] == 0

    async def test_invalid_regex_is_422(self, client) -> None:
        assert_problem(await client.get("/products", params={"name": "(unclosed"}), 422)

    async def test_overlong_pattern_is_422(self, client) -> None:
        assert_problem(await client.get("/products", params={"name": "a" * 101}), 422)


async def test_category_and_price_filters_combine_with_name_and_size(client, admin_headers):
    cheap = await create_product(client, admin_headers, name="Red shirt", price=5, category="tops")
    mid = await create_product(
        client, admin_headers, name="Blue SHIRT", price=20, category="tops", sizes=[{"size": "large", "quantity": 1}]
    )
    dear = await create_product(client, admin_headers, name="Boots", price=120.5, category="shoes")

    async def ids(**params):
        response = await client.get("/products", params=params)
        assert response.status_code == 200, response.text
        return [p["id"] for p in response.json()["data"]]

    assert await ids(category="tops") == [cheap, mid]
    assert await ids(min_price=20) == [mid, dear]
    assert await ids(max_price=20) == [cheap, mid]
    assert await ids(min_price=5.01, max_price=120.49) == [mid]
    assert await ids(category="tops", max_price=10) == [cheap]
    assert await ids(size="large") == [mid]
    assert await ids(name="shirt") == [cheap, mid]
    assert await ids(name="^b.*t$") == [mid]
    assert await ids(name="^bo") == [dear]
    assert_problem(await client.get("/products", params={"min_price": 30, "max_price": 10}), 422)
    assert_problem(await client.get("/products", params={"min_price": -1}), 422)
    assert_problem(await client.get("/products", params={"sort": "name"}), 422)


async def test_list_sorts(client, admin_headers):
    a = await create_product(client, admin_headers, name="a", price=30)
    b = await create_product(client, admin_headers, name="b", price=10)
    c = await create_product(client, admin_headers, name="c", price=20)
    d = await create_product(client, admin_headers, name="d", price=10)

    async def ids(sort):
        response = await client.get("/products", params={"sort": sort})
        assert response.status_code == 200, response.text
        return [p["id"] for p in response.json()["data"]]

    assert await ids("_id") == [a, b, c, d]
    assert await ids("price") == [b, d, c, a]
    assert await ids("-price") == [a, c, d, b]
    assert await ids("created_at") == [a, b, c, d]
    assert await ids("-created_at") == [d, c, b, a]
