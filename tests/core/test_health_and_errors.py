"""Health, the problem+json error contract and start-up indexes (docs/contract.md §8, §4)."""

from __future__ import annotations

import httpx

from backend_app.devtools.embedded_db import free_port
from backend_app.main import create_app
from config import Settings
from tests.support.helpers import assert_problem
from tests.support.lifespan import lifespan


async def test_health_reports_a_connected_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "healthy", "database": "connected"}


def unreachable_settings() -> Settings:
    """Settings pointing at a port where nothing listens."""
    return Settings(
        app_env="test",
        mongodb_uri=f"mongodb://127.0.0.1:{free_port()}/",
        mongodb_db="nowhere",
        mongodb_server_selection_timeout_ms=300,
    )


async def test_health_is_503_when_the_database_is_unreachable() -> None:
    app = create_app(unreachable_settings())
    async with lifespan(app, startup_timeout=10):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.get("/health")
    assert response.status_code == 503
    assert response.json() == {"status": "unhealthy", "database": "disconnected"}


async def test_database_failure_is_a_503_without_driver_text() -> None:
    """An unreachable database is 503 ``database_unavailable`` (never a 500), with no driver text."""
    app = create_app(unreachable_settings())
    async with lifespan(app, startup_timeout=10):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.get("/products")
    problem = assert_problem(response, 503, "database_unavailable")
    assert response.headers["retry-after"] == "1"
    text = response.text.lower()
    for leak in ("serverselection", "pymongo", "127.0.0.1", "timeout", "traceback"):
        assert leak not in text, problem


async def test_unknown_route_is_a_404_problem(client: httpx.AsyncClient) -> None:
    problem = assert_problem(await client.get("/no/such/route"), 404, "not_found")
    assert problem["instance"] == "/no/such/route"


async def test_wrong_method_is_a_405_problem(client: httpx.AsyncClient) -> None:
    response = await client.delete("/products")
    assert_problem(response, 405, "method_not_allowed")
    assert response.headers["allow"]  # Starlette lists the first matching route's methods only


async def test_malformed_product_id_is_422_and_unknown_is_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/products/not-an-id"), 422, "validation_error")
    assert_problem(await client.get("/products/0123456789abcdef01234567"), 404, "product_not_found")


async def test_validation_problem_lists_field_paths(client: httpx.AsyncClient) -> None:
    problem = assert_problem(await client.get("/products", params={"limit": 0}), 422)
    assert problem["errors"][0]["loc"] == ["query", "limit"]
    assert problem["errors"][0]["msg"]


async def index_names(app) -> dict[str, list[str]]:
    db = app.state.db
    return {
        name: sorted(ix["name"] for ix in await (await db[name].list_indexes()).to_list())
        for name in ("products", "orders", "users")
    }


async def test_indexes_are_created_at_start_up_idempotently(settings: Settings, app) -> None:
    """Starting a second app on the same database keeps the same index set (create_index is idempotent)."""
    before = await index_names(app)
    assert {"live_by_id", "live_by_size", "live_by_name"} <= set(before["products"])
    assert "by_user" in before["orders"]
    assert {"username_unique", "email_unique"} <= set(before["users"])
    second = create_app(settings)
    async with lifespan(second):
        assert await index_names(second) == before
