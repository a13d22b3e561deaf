"""Two API processes share one rate-limit budget through a real Redis (docs/contract.md §8).

Starts ``redis-server`` (Debian package; ``make test`` installs it when it
can) and two uvicorn processes of the API on their own ports,
then spends one caller's budget alternately on both.
"""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

import httpx
import pytest
import redis

from backend_app.devtools.api_server import ApiServer
from backend_app.devtools.embedded_db import EmbeddedMongo
from backend_app.devtools.redis_server import REDIS_SERVER

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        REDIS_SERVER is None,
        reason="redis-server is not installed and could not be installed with apt-get (see Makefile)",
    ),
]


def test_two_processes_share_one_budget_through_redis(
    redis_url: str, mongo_server: EmbeddedMongo, tmp_path: Path
) -> None:
    env = {
        "MONGODB_URI": mongo_server.uri,
        "MONGODB_DB": f"test_{uuid.uuid4().hex[:12]}",
        "RATE_LIMIT_ENABLED": "true",
        "RATE_LIMIT_DEFAULT": "4/minute",
        "RATE_LIMIT_STORAGE_URI": redis_url,
        "LOG_DIR": str(tmp_path / "logs"),
        "WEB_CONCURRENCY": "1",
    }
    with contextlib.ExitStack() as stack:
        apis = [stack.enter_context(ApiServer(env=env, log_path=str(tmp_path / f"api-{n}.log"))) for n in range(2)]
        first, second = (api.base_url for api in apis)
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
