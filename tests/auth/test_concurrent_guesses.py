"""Concurrent wrong-password guesses cost at most the per-account limit, on memory and on Redis storage.

The throttle admits one password check per account at a time and reads the
failure count inside that turn, so a burst of guesses sent at once from many
addresses cannot all pass a count read before any of them was recorded.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from backend_app.devtools.embedded_db import EmbeddedMongo
from backend_app.devtools.seed import seed_user
from backend_app.main import create_app
from config import Settings

BURST = 30
LIMIT = 10


def _peer(app: FastAPI, n: int) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(f"198.51.100.{n + 1}", 40000 + n))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def _burst(app: FastAPI, username: str) -> Counter[int]:
    peers = [_peer(app, n) for n in range(BURST)]
    try:
        responses = await asyncio.gather(
            *(
                peer.post("/auth/login", json={"username": username, "password": f"wrong-guess-{n:03d}"})
                for n, peer in enumerate(peers)
            )
        )
    finally:
        for peer in peers:
            await peer.aclose()
    return Counter(response.status_code for response in responses)


@pytest.mark.settings(signin_failure_limit=f"{LIMIT}/15minutes")
async def test_a_burst_of_guesses_costs_at_most_the_limit_in_memory(app: FastAPI, make_user: Any) -> None:
    await make_user("erin")
    statuses = await _burst(app, "erin")
    assert statuses == {401: LIMIT, 429: BURST - LIMIT}, statuses
    # Unknown accounts take the same path.
    assert await _burst(app, "nobody_here") == {401: LIMIT, 429: BURST - LIMIT}


@pytest.fixture
async def redis_app(
    redis_url: str, mongo_server: EmbeddedMongo, db_name: str, tmp_path: Any
) -> AsyncIterator[FastAPI]:
    settings = Settings(
        app_env="test",
        mongodb_uri=mongo_server.uri,
        mongodb_db=db_name,
        rate_limit_enabled=False,
        rate_limit_storage_uri=redis_url,
        signin_failure_limit=f"{LIMIT}/15minutes",
        log_dir=str(tmp_path),
    )
    application = create_app(settings)
    async with LifespanManager(application):
        yield application
    cleanup: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_server.uri)
    await cleanup.drop_database(db_name)
    await cleanup.close()


async def test_a_burst_of_guesses_costs_at_most_the_limit_on_redis(redis_app: FastAPI, password_hash: str) -> None:
    username = f"erin_{uuid.uuid4().hex[:8]}"  # the Redis server outlives one test
    await seed_user(
        redis_app.state.db, redis_app.state.settings, username=username, role="user", password_hash=password_hash
    )
    statuses = await _burst(redis_app, username)
    assert statuses == {401: LIMIT, 429: BURST - LIMIT}, statuses
