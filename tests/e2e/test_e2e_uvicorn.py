"""End to end: the brief's four calls over real HTTP against a uvicorn process."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from pymongo import AsyncMongoClient

from backend_app.devtools.api_server import ApiServer
from backend_app.devtools.embedded_db import EmbeddedMongo
from backend_app.devtools.seed import seed_user
from config import Settings

pytestmark = pytest.mark.e2e

JWT_SECRET = "e2e-secret-" + "x" * 40


@pytest.fixture(scope="module")
def e2e_settings(mongo_server: EmbeddedMongo) -> Settings:
    return Settings(
        app_env="test", mongodb_uri=mongo_server.uri, mongodb_db=f"e2e_{uuid.uuid4().hex[:8]}", jwt_secret=JWT_SECRET
    )


@pytest.fixture(scope="module")
def server(e2e_settings: Settings) -> Iterator[ApiServer]:
    env = {
        "MONGODB_URI": e2e_settings.effective_mongodb_uri,
        "MONGODB_DB": e2e_settings.mongodb_db,
        "JWT_SECRET": JWT_SECRET,
    }
    with ApiServer(env=env) as api:
        yield api


async def bearer(settings: Settings, username: str, role: str, password_hash: str) -> dict[str, str]:
    client: AsyncMongoClient = AsyncMongoClient(settings.effective_mongodb_uri)
    try:
        return await seed_user(
            client[settings.mongodb_db], settings, username=username, role=role, password_hash=password_hash
        )
    finally:
        await client.close()


async def test_the_four_calls_over_http(server: ApiServer, e2e_settings: Settings, password_hash: str) -> None:
    admin = await bearer(e2e_settings, "e2e_admin", "admin", password_hash)
    shopper = await bearer(e2e_settings, "user_1", "user", password_hash)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        created = await http.post(
            "/products",
            json={"name": "string", "price": 19.99, "sizes": [{"size": "large", "quantity": 5}]},
            headers=admin,
        )
        assert created.status_code == 201
        product_id = created.json()["id"]

        listed = await http.get("/products", params={"size": "large", "name": "STR", "limit": 10, "offset": 0})
        assert listed.status_code == 200
        assert listed.json()["data"] == [{"id": product_id, "name": "string", "price": 19.99, "category": None}]
        assert {"next": None, "limit": 1, "previous": None}.items() <= listed.json()["page"].items()

        ordered = await http.post(
            "/orders", json={"userId": "user_1", "items": [{"productId": product_id, "qty": 3}]}, headers=shopper
        )
        assert ordered.status_code == 201
        order_id = ordered.json()["id"]

        orders = await http.get("/orders/user_1", headers=shopper)
        assert orders.status_code == 200
        [order] = orders.json()["data"]
        assert order["id"] == order_id
        assert order["total"] == 59.97
        assert order["items"][0]["productDetails"] == {"name": "string", "id": product_id}
        assert order["items"][0]["qty"] == 3

        short = await http.post(
            "/orders", json={"userId": "user_1", "items": [{"productId": product_id, "qty": 3}]}, headers=shopper
        )
        assert short.status_code == 409
        assert short.headers["content-type"].startswith("application/problem+json")
