"""Small helpers shared by the tests: fixtures data and problem+json assertions."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from backend_app.devtools.embedded_db import free_port

#: The ``redis-server`` binary (Debian package; ``make test`` installs it when it can), or ``None``.
REDIS_SERVER = shutil.which("redis-server")

PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """Assert ``response`` is an RFC 9457 problem with ``status`` (and ``code``); return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body = response.json()
    assert PROBLEM_KEYS <= body.keys(), body
    assert body["status"] == status
    if code is not None:
        assert body["code"] == code, body
    if status == 422:
        assert body["errors"], body
    assert "Traceback" not in response.text
    return body


async def create_product(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    name: str = "Shirt",
    price: float = 10.0,
    sizes: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> str:
    """Create a product through the API (as the admin whose ``headers`` are given) and return its id."""
    body: dict[str, Any] = {"name": name, "price": price}
    body["sizes"] = sizes if sizes is not None else [{"size": "m", "quantity": 10}]
    body.update(extra)
    response = await client.post("/products", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def wait_until(check: object, *, timeout_s: float = 30.0, what: str) -> None:
    """Poll ``check()`` every 0.1 s until it returns true; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except (OSError, httpx.HTTPError, redis.RedisError):
            pass
        time.sleep(0.1)
    pytest.fail(f"{what} did not come up within {timeout_s:.0f}s")


@contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """Run a throw-away ``redis-server`` (no persistence) on a free loopback port; yield its URL."""
    assert REDIS_SERVER is not None
    port = free_port()
    cmd = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(  # noqa: S603 - fixed argv
        [*cmd, "--dir", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, socket_timeout=0.5)
    try:
        wait_until(client.ping, what="redis-server")
        yield url
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)
