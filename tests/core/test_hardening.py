"""HTTP hardening (docs/contract.md §8): body size limit, security headers, CORS, request ids, 500s."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.support.helpers import assert_problem

SMALL_BODY = {"max_body_bytes": 2048}
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (name, response.headers)
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


@pytest.mark.settings(**SMALL_BODY)
async def test_a_declared_content_length_over_the_limit_is_413_before_auth_or_parsing(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/products", content=b"{" + b" " * 4096 + b"}")
    body = assert_problem(response, 413, "content_too_large")
    assert "2048" in body["detail"]
    assert_security_headers(response)
    assert response.headers["X-Request-ID"]


@pytest.mark.settings(**SMALL_BODY)
async def test_a_chunked_body_without_content_length_over_the_limit_is_413(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        for _ in range(10):
            yield b"x" * 512
        yield b'", "price": 1.0}'

    request = client.build_request(
        "POST", "/products", content=chunks(), headers={**admin_headers, "Content-Type": "application/json"}
    )
    assert "content-length" not in request.headers
    response = await client.send(request)
    assert_problem(response, 413, "content_too_large")
    assert_security_headers(response)


@pytest.mark.settings(**SMALL_BODY)
async def test_bodies_within_the_limit_pass(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    response = await client.post("/products", json={"name": "Shirt", "price": 10.0}, headers=admin_headers)
    assert response.status_code == 201, response.text


async def test_security_headers_on_success_error_and_docs(client: httpx.AsyncClient) -> None:
    for path, status in [("/health", 200), ("/products", 200), ("/nowhere", 404), ("/products?limit=0", 422)]:
        response = await client.get(path)
        assert response.status_code == status
        assert_security_headers(response)
        assert response.headers["content-security-policy"].startswith("default-src 'none'")
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert_security_headers(docs)
    # The docs page loads its own scripts, so only framing is forbidden there.
    assert docs.headers["content-security-policy"] == "frame-ancestors 'none'"


async def test_auth_responses_are_never_cached(app: FastAPI, client: httpx.AsyncClient) -> None:
    served = {getattr(route, "path", None) for route in app.routes}
    if "/auth/me" not in served:

        async def me_stub() -> dict[str, str]:
            return {"username": "stub"}

        app.add_api_route("/auth/me", me_stub, methods=["GET"])
    for path in ("/auth/me", "/auth/no-such-route"):
        response = await client.get(path)
        assert response.headers["Cache-Control"] == "no-store", path
        assert response.headers["Pragma"] == "no-cache"
    assert "no-store" not in (await client.get("/products")).headers.get("Cache-Control", "")


@pytest.mark.settings(app_env="production", jwt_secret="p" * 40)
async def test_hsts_in_production(client: httpx.AsyncClient) -> None:
    assert "max-age=" in (await client.get("/health")).headers["Strict-Transport-Security"]


async def test_no_cors_headers_without_allowed_origins(client: httpx.AsyncClient) -> None:
    response = await client.get("/products", headers={"Origin": "https://shop.example"})
    assert "access-control-allow-origin" not in response.headers
    preflight = await client.options(
        "/products", headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in preflight.headers


@pytest.mark.settings(allowed_origins=["https://shop.example"])
async def test_cors_only_for_allowed_origins(client: httpx.AsyncClient) -> None:
    preflight = await client.options(
        "/orders",
        headers={
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://shop.example"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    simple = await client.get("/products", headers={"Origin": "https://shop.example"})
    assert simple.headers["access-control-allow-origin"] == "https://shop.example"
    assert "X-Request-ID" in simple.headers["access-control-expose-headers"]

    evil = await client.get("/products", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in evil.headers
    refused = await client.options(
        "/orders", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in refused.headers
    assert "origin" in assert_problem(refused, 400, "cors_refused")["detail"]


async def test_request_id_is_honoured_or_generated_and_returned(client: httpx.AsyncClient) -> None:
    honoured = await client.get("/health", headers={"X-Request-ID": "edge-7f3a.42"})
    assert honoured.headers["X-Request-ID"] == "edge-7f3a.42"
    generated = await client.get("/health")
    other = await client.get("/health")
    assert len(generated.headers["X-Request-ID"]) == 32
    assert generated.headers["X-Request-ID"] != other.headers["X-Request-ID"]
    # A value that could forge log lines is replaced.
    forged = await client.get("/health", headers={"X-Request-ID": 'x" , "level": "CRITICAL'})
    assert forged.headers["X-Request-ID"] != 'x" , "level": "CRITICAL'
    assert len(forged.headers["X-Request-ID"]) == 32


async def test_an_unhandled_error_is_a_500_problem_with_the_usual_headers(app: FastAPI) -> None:
    async def broken() -> Any:
        raise RuntimeError("driver said: mongodb://admin:hunter2@db:27017 is down")

    app.add_api_route("/broken", broken, methods=["GET"])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get("/broken", headers={"X-Request-ID": "req-500"})
    body = assert_problem(response, 500, "internal_error")
    assert "hunter2" not in response.text and "mongodb://" not in response.text
    assert body["detail"] == "The server could not complete the request."
    assert response.headers["X-Request-ID"] == "req-500"
    assert_security_headers(response)
