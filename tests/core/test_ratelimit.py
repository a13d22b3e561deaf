"""Rate limiting (docs/contract.md §8): per user or client IP, stricter on the auth routes, headers, proxies, storage faults."""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from backend_app.auth.throttles import RATE_LIMITED_PATHS as AUTH_LIMITED_PATHS
from backend_app.devtools.embedded_db import free_port
from tests.support.helpers import assert_problem

LIMITED = {"rate_limit_enabled": True, "rate_limit_default": "3/minute", "rate_limit_auth": "2/minute"}


def client_for(app: FastAPI, peer: str = "127.0.0.1") -> httpx.AsyncClient:
    """A client whose TCP peer address (as the app sees it) is ``peer``."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(peer, 50000)), base_url="http://testserver")


def add_auth_stubs(app: FastAPI) -> None:
    """Register tiny ``POST`` routes on the auth paths that the app does not serve yet.

    The stricter limit applies by path, so it must hold for whatever route
    answers there: the real auth router once it is included, these otherwise.
    """
    served = {getattr(route, "path", None) for route in app.routes}
    for path in AUTH_LIMITED_PATHS - served:

        async def stub() -> dict[str, str]:
            return {"status": "stub"}

        app.add_api_route(path, stub, methods=["POST"])


@pytest.mark.settings(**LIMITED)
async def test_anonymous_callers_are_limited_per_ip_with_headers_and_a_429_problem(app: FastAPI) -> None:
    async with client_for(app, "10.1.1.1") as first, client_for(app, "10.1.1.2") as second:
        remaining = []
        for _ in range(3):
            response = await first.get("/products")
            assert response.status_code == 200
            assert response.headers["X-RateLimit-Limit"] == "3"
            assert int(response.headers["X-RateLimit-Reset"]) > time.time()
            remaining.append(response.headers["X-RateLimit-Remaining"])
        assert remaining == ["2", "1", "0"]

        refused = await first.get("/products")
        body = assert_problem(refused, 429, "rate_limited")
        assert "3 per 1 minute" in body["detail"]
        assert 1 <= int(refused.headers["Retry-After"]) <= 61
        assert refused.headers["X-RateLimit-Limit"] == "3"
        assert refused.headers["X-RateLimit-Remaining"] == "0"
        assert int(refused.headers["X-RateLimit-Reset"]) > time.time()

        # Another client IP has its own budget.
        assert (await second.get("/products")).status_code == 200


@pytest.mark.settings(**LIMITED)
async def test_authenticated_callers_are_limited_per_user_not_per_ip(app: FastAPI, make_user: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    async with client_for(app) as http:
        for _ in range(3):
            assert (await http.get("/products", headers=alice)).status_code == 200
        assert_problem(await http.get("/products", headers=alice), 429, "rate_limited")
        # Same IP, other user: a fresh budget; and anonymous calls from that IP too.
        response = await http.get("/products", headers=bob)
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Remaining"] == "2"
        assert (await http.get("/products")).headers["X-RateLimit-Remaining"] == "2"


@pytest.mark.settings(**LIMITED)
async def test_a_forged_token_counts_against_the_client_ip(app: FastAPI) -> None:
    async with client_for(app) as http:
        for attempt in range(3):
            forged = {"Authorization": f"Bearer not-a-jwt-{attempt}"}
            assert (await http.get("/products", headers=forged)).status_code == 200
        assert_problem(await http.get("/products"), 429, "rate_limited")


@pytest.mark.settings(**LIMITED)
async def test_auth_routes_share_one_stricter_budget_separate_from_the_default(app: FastAPI) -> None:
    add_auth_stubs(app)
    credentials = {"username": "mallory", "password": "guess-0001"}
    async with client_for(app) as http:
        first = await http.post("/auth/login", json=credentials)
        assert first.status_code != 429
        assert first.headers["X-RateLimit-Limit"] == "2"
        assert (await http.post("/auth/token", data=credentials)).status_code != 429
        # The third attempt, on any of the three paths, is refused.
        for path in sorted(AUTH_LIMITED_PATHS):
            refused = await http.post(path, json=credentials)
            assert_problem(refused, 429, "rate_limited")
            assert refused.headers["Cache-Control"] == "no-store"
        # The general budget is untouched.
        response = await http.get("/products")
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Limit"] == "3"
        assert response.headers["X-RateLimit-Remaining"] == "2"


@pytest.mark.settings(**LIMITED)
async def test_health_is_not_limited(app: FastAPI) -> None:
    async with client_for(app) as http:
        for _ in range(5):
            response = await http.get("/health")
            assert response.status_code == 200
            assert "X-RateLimit-Limit" not in response.headers


@pytest.mark.settings(**LIMITED)
async def test_rotating_x_forwarded_for_does_not_escape_the_limit_from_an_untrusted_peer(app: FastAPI) -> None:
    async with client_for(app, "203.0.113.7") as http:
        statuses = [
            (await http.get("/products", headers={"X-Forwarded-For": f"198.51.100.{n}"})).status_code for n in range(5)
        ]
    assert statuses == [200, 200, 200, 429, 429]


@pytest.mark.settings(**LIMITED, trusted_proxies=["10.0.0.0/8"])
async def test_x_forwarded_for_is_honoured_only_from_a_trusted_proxy(app: FastAPI) -> None:
    async with client_for(app, "10.0.0.5") as proxy, client_for(app, "203.0.113.9") as outsider:
        # Through the trusted proxy, each real client has its own budget...
        for n in range(4):
            response = await proxy.get("/products", headers={"X-Forwarded-For": f"198.51.100.{n}"})
            assert response.status_code == 200
            assert response.headers["X-RateLimit-Remaining"] == "2"
        # ...and a client cannot hide behind a forged hop: the nearest untrusted address is used.
        spoofed = {"X-Forwarded-For": "192.0.2.1, 198.51.100.77"}
        assert [(await proxy.get("/products", headers=spoofed)).status_code for _ in range(4)] == [200, 200, 200, 429]
        # An untrusted peer sending the header is counted by its own address.
        statuses = [
            (await outsider.get("/products", headers={"X-Forwarded-For": f"192.0.2.{n}"})).status_code for n in range(4)
        ]
        assert statuses == [200, 200, 200, 429]


@pytest.mark.settings(**LIMITED)
async def test_limits_also_count_unknown_paths(app: FastAPI) -> None:
    async with client_for(app) as http:
        for n in range(3):
            assert_problem(await http.get(f"/no-such-page-{n}"), 404, "not_found")
        assert_problem(await http.get("/products"), 429, "rate_limited")


async def test_rate_limiting_is_off_in_the_test_app_unless_a_test_turns_it_on(client: httpx.AsyncClient) -> None:
    responses = [await client.get("/products") for _ in range(5)]
    assert all(r.status_code == 200 and "X-RateLimit-Limit" not in r.headers for r in responses)


@pytest.mark.settings(**LIMITED, rate_limit_storage_uri=f"redis://127.0.0.1:{free_port()}/0")
async def test_an_unreachable_redis_degrades_to_in_memory_limits_and_is_logged(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with client_for(app) as http:
        statuses = [(await http.get("/products")).status_code for _ in range(4)]
    # Still serving, still limiting (in memory), and the fault is in the log.
    assert statuses == [200, 200, 200, 429]
    assert any("storage unreachable" in record.getMessage() for record in caplog.records), caplog.text
