"""Prometheus metrics at GET /metrics, liveness/readiness probes, OpenTelemetry traces."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from backend_app.core import metrics, security, tracing
from backend_app.devtools.embedded_db import EmbeddedMongo, free_port
from backend_app.main import create_app
from config import Settings
from tests.support.helpers import assert_problem, create_product
from tests.support.lifespan import lifespan

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "scrape-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, keyed by (name, labels), parsed with prometheus_client's own parser."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics", headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return parse(response.text)


# --- GET /metrics access ---------------------------------------------------------------------------


async def test_metrics_is_404_while_no_token_is_configured(client: httpx.AsyncClient) -> None:
    unset = assert_problem(await client.get("/metrics"), 404, "not_found")
    assert unset["detail"] == "No route matches GET /metrics."  # as if the route did not exist
    assert_problem(await client.get("/metrics", headers={"Authorization": "Bearer "}), 404, "not_found")


def test_a_blank_metrics_token_counts_as_unset() -> None:
    assert Settings(app_env="test", metrics_token="  ").metrics_token is None


@pytest.mark.settings(metrics_token=TOKEN)
async def test_metrics_needs_the_bearer_token_and_is_not_in_the_openapi_schema(client: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        response = await client.get("/metrics", headers=headers)
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert (await client.get("/metrics", headers=AUTH)).status_code == 200
    schema = (await client.get("/openapi.json")).json()
    assert "/metrics" not in schema["paths"]


# --- What is counted -------------------------------------------------------------------------------


@pytest.mark.settings(metrics_token=TOKEN)
async def test_requests_are_counted_by_route_template_and_status_class(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    before = await scrape(client)
    product_id = await create_product(client, admin_headers)
    for _ in range(3):
        assert (await client.get(f"/products/{product_id}")).status_code == 200
    assert (await client.get("/products/" + "f" * 24)).status_code == 404
    assert (await client.get("/no/such/path")).status_code == 404
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = "/products/{product_id}"
    assert delta("storefront_http_requests_total", method="GET", route=route, status_class="2xx") == 3
    assert delta("storefront_http_requests_total", method="GET", route=route, status_class="4xx") == 1
    assert delta("storefront_http_requests_total", method="POST", route="/products", status_class="2xx") == 1
    assert delta("storefront_http_requests_total", method="GET", route="<unmatched>", status_class="4xx") == 1
    assert delta("storefront_http_request_duration_seconds_count", method="GET", route=route, status_class="2xx") == 3
    # Never the raw path: no label value anywhere holds the product id.
    assert not any(product_id in v for _, labels in after for _, v in labels)
    # The scrape itself is in flight while it is rendered.
    assert value(after, "storefront_http_requests_in_flight") >= 1
    # The driver's command listener timed the find and insert commands.
    assert delta("storefront_db_command_duration_seconds_count", command="find", outcome="ok") >= 4
    assert delta("storefront_db_command_duration_seconds_count", command="insert", outcome="ok") >= 1


@pytest.mark.settings(metrics_token=TOKEN)
async def test_orders_placed_refused_cancelled_and_the_expired_series(
    client: httpx.AsyncClient, admin_headers: dict[str, str], alice: dict[str, str]
) -> None:
    product_id = await create_product(client, admin_headers, sizes=[{"size": "m", "quantity": 2}])
    before = await scrape(client)
    placed = await client.post("/orders", json={"items": [{"productId": product_id, "qty": 1}]}, headers=alice)
    assert placed.status_code == 201
    short = await client.post("/orders", json={"items": [{"productId": product_id, "qty": 5}]}, headers=alice)
    assert_problem(short, 409, "insufficient_stock")
    cancel = await client.patch(f"/orders/alice/{placed.json()['id']}", json={"status": "cancelled"}, headers=alice)
    assert cancel.status_code == 200, cancel.text
    after = await scrape(client)
    assert (
        value(after, "storefront_orders_total", event="placed")
        - value(before, "storefront_orders_total", event="placed")
        == 1
    )
    assert (
        value(after, "storefront_orders_refused_total", reason="insufficient_stock")
        - value(before, "storefront_orders_refused_total", reason="insufficient_stock")
        == 1
    )
    assert (
        value(after, "storefront_orders_total", event="cancelled")
        - value(before, "storefront_orders_total", event="cancelled")
        == 1
    )
    # Exported before the first expiry, so alerts and rate() work from the start.
    assert ("storefront_orders_total", frozenset({("event", "expired")})) in after


@pytest.mark.settings(metrics_token=TOKEN)
async def test_page_cache_hits_and_misses_are_counted(client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    for _ in range(3):
        assert (await client.get("/products?limit=7")).status_code == 200
    after = await scrape(client)
    hits = "storefront_page_cache_requests_total"
    assert value(after, hits, result="miss") - value(before, hits, result="miss") == 1
    assert value(after, hits, result="hit") - value(before, hits, result="hit") == 2


@pytest.mark.settings(metrics_token=TOKEN, rate_limit_enabled=True, rate_limit_default="3/minute")
async def test_rate_limit_refusals_are_counted_and_scrapes_are_not_limited(client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    statuses = [(await client.get("/products")).status_code for _ in range(5)]
    assert statuses.count(429) == 2
    after = await scrape(client)  # /metrics is exempt, so this scrape is not refused
    name = "storefront_rate_limit_refusals_total"
    assert value(after, name, gate="default") - value(before, name, gate="default") == 2


async def test_bcrypt_pool_queue_length_counts_jobs_waiting_for_a_thread() -> None:
    release = threading.Event()
    workers = security.PASSWORD_HASH_WORKERS
    jobs = [asyncio.create_task(security._run_in_password_pool(release.wait, 10)) for _ in range(workers + 2)]
    try:
        for _ in range(200):
            await asyncio.sleep(0.01)
            if metrics.BCRYPT_QUEUE._value.get() == 2:
                break
        assert metrics.BCRYPT_QUEUE._value.get() == 2  # two jobs wait while `workers` threads are busy
    finally:
        release.set()
        await asyncio.gather(*jobs)
    assert metrics.BCRYPT_QUEUE._value.get() == 0


# --- Several workers -------------------------------------------------------------------------------

WORKER_SCRIPT = """
from backend_app.core import metrics
for _ in range({n}):
    metrics.order_event("placed")
metrics.HTTP_REQUESTS.labels(method="GET", route="/products", status_class="2xx").inc({n})
metrics.HTTP_IN_FLIGHT.inc()
if {stop}:
    metrics.worker_stopped()  # what the app's lifespan does on a graceful stop
"""


def test_values_written_by_two_worker_processes_add_up(tmp_path: Path) -> None:
    """prometheus-client multiprocess mode: each worker writes its own file, the scrape sums them."""
    env = {**os.environ, metrics.MULTIPROC_ENV: str(tmp_path)}
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER_SCRIPT.format(n=n, stop=stop)], cwd=ROOT, env=env)
        for n, stop in ((2, True), (3, False))
    ]
    assert [worker.wait(timeout=60) for worker in workers] == [0, 0]
    samples = parse(metrics.exposition(multiproc_dir=str(tmp_path))[0].decode())
    assert value(samples, "storefront_orders_total", event="placed") == 5
    assert value(samples, "storefront_http_requests_total", method="GET", route="/products", status_class="2xx") == 5
    # Gauges are summed over workers not stopped: a stopped worker's in-flight requests no longer count.
    assert value(samples, "storefront_http_requests_in_flight") == 1


# --- Liveness and readiness ------------------------------------------------------------------------


async def test_live_and_ready_answer_when_the_database_is_up(client: httpx.AsyncClient) -> None:
    live = await client.get("/health/live")
    assert live.status_code == 200 and live.json() == {"status": "alive"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "database": "connected", "indexes": "ensured"}
    health = await client.get("/health")
    assert health.json() == {"status": "healthy", "database": "connected"}


async def test_without_a_database_live_still_answers_and_ready_is_503(tmp_path: Path, log_dir: Path) -> None:
    # Nothing listens on a free port.
    settings = Settings(
        app_env="test",
        mongodb_uri=f"mongodb://127.0.0.1:{free_port()}/?directConnection=true",
        mongodb_db="gone",
        rate_limit_enabled=False,
        log_dir=str(log_dir),
        mongodb_server_selection_timeout_ms=300,
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        lifespan(app, startup_timeout=10),
        httpx.AsyncClient(transport=transport, base_url="http://t") as http,
    ):
        live = await http.get("/health/live")
        assert live.status_code == 200
        ready = await http.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json() == {"status": "not_ready", "database": "disconnected", "indexes": "pending"}
        assert (await http.get("/health")).status_code == 503


# --- Tracing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "enabled"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "storefront"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, False),
    ],
)
def test_tracing_is_off_unless_the_otel_variables_ask_for_it(environ: dict[str, str], enabled: bool) -> None:
    assert tracing.tracing_enabled(environ) is enabled
    provider = tracing.tracer_provider_from_env(environ)
    assert (provider is not None) is enabled
    if provider is not None:
        provider.shutdown()


@pytest.fixture
async def traced(settings: Settings, mongo_server: EmbeddedMongo) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """An app traced into an in-memory exporter, and that exporter."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = create_app(settings, tracer_provider=provider)
    async with lifespan(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            yield http, exporter
        await app.state.mongo_client.drop_database(settings.mongodb_db)


async def test_one_trace_spans_the_request_and_its_database_calls(traced: tuple[httpx.AsyncClient, Any]) -> None:
    client, exporter = traced
    exporter.clear()
    response = await client.get("/products/" + "a" * 24, headers={"X-Request-ID": "trace-me-42"})
    assert response.status_code == 404
    spans = exporter.get_finished_spans()
    servers = [s for s in spans if s.kind == SpanKind.SERVER]
    assert len(servers) == 1
    server = servers[0]
    assert server.name == "GET /products/{product_id}"
    assert server.attributes["request_id"] == "trace-me-42"
    db_spans = [s for s in spans if s.kind == SpanKind.CLIENT and s.attributes.get("db.system.name") == "mongodb"]
    assert db_spans, [s.name for s in spans]
    for span in db_spans:
        assert span.context.trace_id == server.context.trace_id
        assert span.parent is not None
        assert span.attributes["request_id"] == "trace-me-42"
        assert span.attributes["db.namespace"]
    assert any(s.name == "find products" for s in db_spans)


# --- Bounded label values, throttled scrapes, private traces -------------------------------------


@pytest.mark.settings(metrics_token=TOKEN)
async def test_unusual_http_methods_are_counted_under_one_other_label(client: httpx.AsyncClient) -> None:
    for method in ("PROPFIND", "MKCOL", "PURGE", "X-JUNK-1", "X-JUNK-2"):
        await client.request(method, "/products")
    samples = await scrape(client)
    methods = {dict(labels)["method"] for name, labels in samples if name == "storefront_http_requests_total"}
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}, methods
    other = sum(
        count
        for (name, labels), count in samples.items()
        if name == "storefront_http_requests_total" and dict(labels)["method"] == "other"
    )
    assert other >= 5


@pytest.mark.settings(metrics_token=TOKEN, metrics_failure_limit="3/minute")
async def test_failed_metrics_authorisations_are_throttled_per_address(app: Any) -> None:
    def peer(address: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=(address, 50000)), base_url="http://testserver"
        )

    async with peer("198.51.100.9") as guesser, peer("198.51.100.10") as prometheus:
        wrong = {"Authorization": "Bearer not-the-token"}
        statuses = [(await guesser.get("/metrics", headers=wrong)).status_code for _ in range(4)]
        assert statuses == [401, 401, 401, 429]
        refused = await guesser.get("/metrics", headers=AUTH)  # no more guesses from there, even right ones
        assert_problem(refused, 429, "rate_limited")
        assert int(refused.headers["Retry-After"]) >= 1
        assert (await prometheus.get("/metrics", headers=AUTH)).status_code == 200


async def test_traces_redact_query_values_and_exclude_only_the_probe_paths(
    traced: tuple[httpx.AsyncClient, Any],
) -> None:
    client, exporter = traced
    exporter.clear()
    await client.get("/products", params={"name": "alice@example.com", "limit": "5"})
    await client.get("/orders/healthy_hank/" + "a" * 24)
    await client.get("/metrics_report")
    for probe in ("/health", "/health/live", "/health/ready", "/metrics"):
        await client.get(probe)
    servers = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
    targets = sorted(str(s.attributes.get("http.target", s.attributes.get("url.path"))) for s in servers)
    assert [t.split("?")[0] for t in targets] == ["/metrics_report", "/orders/healthy_hank/" + "a" * 24, "/products"]
    for span in servers:
        for attribute, text in span.attributes.items():
            assert "alice" not in str(text), (attribute, text)
    products = next(s for s in servers if str(s.attributes.get("http.target", "")).startswith("/products"))
    assert "name=REDACTED" in products.attributes["http.url"]
