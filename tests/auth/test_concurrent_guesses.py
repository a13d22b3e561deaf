"""Concurrent wrong-password guesses cost at most the per-account limit, on memory and on Redis storage.

The throttle admits one password check per account at a time and reads the
failure count inside that turn, so a burst of guesses sent at once from many
addresses cannot all pass a count read before any of them was recorded.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

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


@pytest.fixture(params=["memory", "redis"])
def storage(request: pytest.FixtureRequest) -> str:
    """Where the throttle counts: the process's memory, or a real Redis shared by processes."""
    return str(request.param)


@pytest.fixture
def settings(settings: Settings, storage: str, request: pytest.FixtureRequest) -> Settings:
    """The shared test settings, counting in ``storage``."""
    values: dict[str, Any] = {"signin_failure_limit": f"{LIMIT}/15minutes"}
    if storage == "redis":
        values["rate_limit_storage_uri"] = request.getfixturevalue("redis_url")
    return settings.model_copy(update=values)


async def test_a_burst_of_guesses_costs_at_most_the_limit(app: FastAPI, make_user: Any) -> None:
    username = f"erin_{uuid.uuid4().hex[:8]}"  # a Redis server outlives one test
    await make_user(username)
    for account in (username, f"nobody_{uuid.uuid4().hex[:8]}"):  # unknown accounts take the same path
        statuses = await _burst(app, account)
        # At most LIMIT guesses were checked (exactly LIMIT unless the machine is so slow that a queued
        # guess waited out its turn, which also answers 429); every other one was refused unchecked.
        assert set(statuses) <= {401, 429} and 0 < statuses[401] <= LIMIT, statuses
        assert statuses[401] + statuses[429] == BURST
