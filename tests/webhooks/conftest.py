"""Fixtures of the webhook tests: a loopback receiver, and an app whose dispatcher delivers to it quickly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from backend_app.devtools.webhook_receiver import Receiver

#: Settings of the webhook tests: loopback allowed, a short retry schedule, a fast poll.
FAST = {
    "webhook_allow_private_urls": True,
    "webhook_retry_schedule": "0.2,0.2,0.2",
    "webhook_poll_interval_seconds": 0.05,
    "webhook_timeout_seconds": 2.0,
    "webhook_lease_seconds": 5.0,
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A receiver answering 200 (tests change ``receiver.behaviour``)."""
    with Receiver() as r:
        yield r


async def wait_for(predicate: Callable[[], Any], *, timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned), or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


async def create_endpoint(
    client: httpx.AsyncClient, headers: dict[str, str], url: str, events: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    """Register an endpoint through the API; returns the 201 body (with ``secret``)."""
    response = await client.post(
        "/webhooks/endpoints", json={"url": url, "events": events or ["*"], **extra}, headers=headers
    )
    assert response.status_code == 201, response.text
    return response.json()


async def deliveries(client: httpx.AsyncClient, headers: dict[str, str], endpoint_id: str) -> list[dict[str, Any]]:
    """Every delivery of an endpoint (first 100), newest first."""
    response = await client.get(f"/webhooks/endpoints/{endpoint_id}/deliveries", params={"limit": 100}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]
