"""Two API processes share one rate-limit budget through a real Redis (spec §8).

Starts ``redis-server`` (Debian package; ``make test`` installs it when it
can) and two ``python -m backend_app serve`` processes on their own ports,
then spends one caller's budget alternately on both.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
import redis

from backend_app.devtools.embedded_db import EmbeddedMongo, free_port
from tests.helpers import REDIS_SERVER, wait_until

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        REDIS_SERVER is None,
        reason="redis-server is not installed and could not be installed with apt-get (see Makefile)",
    ),
]


def start_api(env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``python -m backend_app serve`` on a free port; return the process and its base URL."""
    port = free_port()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(  # noqa: S603 - fixed argv
            [sys.executable, "-m", "backend_app", "serve"],
            cwd=ROOT,
            env={**env, "HOST": "127.0.0.1", "PORT": str(port)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return process, f"http://127.0.0.1:{port}"


def test_two_processes_share_one_budget_through_redis(
    redis_url: str, mongo_server: EmbeddedMongo, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "APP_ENV": "test",
        "MONGODB_URI": mongo_server.uri,
        "MONGODB_DB": f"test_{uuid.uuid4().hex[:12]}",
        "RATE_LIMIT_ENABLED": "true",
        "RATE_LIMIT_DEFAULT": "4/minute",
        "RATE_LIMIT_STORAGE_URI": redis_url,
        "LOG_DIR": str(tmp_path / "logs"),
        "WEB_CONCURRENCY": "1",
    }
    apis = [start_api(env, tmp_path / f"api-{n}.log") for n in range(2)]
    try:
        for process, base in apis:
            wait_until(lambda base=base: httpx.get(f"{base}/health", timeout=1).status_code == 200, what=base)
        first, second = (base for _, base in apis)
        order = [first, second, first, second]
        responses = [httpx.get(f"{base}/products", timeout=5) for base in order]
        assert [r.status_code for r in responses] == [200, 200, 200, 200]
        assert [r.headers["X-RateLimit-Remaining"] for r in responses] == ["3", "2", "1", "0"]
        # The budget is spent in both processes.
        for base in (first, second):
            refused = httpx.get(f"{base}/products", timeout=5)
            assert refused.status_code == 429
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert int(refused.headers["Retry-After"]) >= 1
        # The counter lives in Redis.
        keys = redis.Redis.from_url(redis_url).keys("*storefront*")
        assert keys, "no rate-limit key in Redis"
    finally:
        for process, _ in apis:
            process.terminate()
        for process, _ in apis:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
