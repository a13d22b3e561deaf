"""Prometheus metrics: what is counted, the single hooks that count it, and ``GET /metrics``.

Every metric is a ``prometheus_client`` object defined here, and every place
in the app that records one calls a function of this module (one line), so the
hooks are easy to find and to merge.

Metrics (all prefixed ``storefront_``; docs/operations.md (Observability) has the table):

- ``http_requests_total{method, route, status_class}`` and
  ``http_request_duration_seconds{method, route, status_class}``: by route
  **template** (``/products/{product_id}``), never the raw path, so ids do not
  explode the label set. A request no route matched (404, or refused before
  routing: 413, 429) is labelled ``route="<unmatched>"``.
- ``http_requests_in_flight``: requests being served now.
- ``db_command_duration_seconds{command, outcome}``: every MongoDB command,
  timed by a PyMongo command listener (:class:`DatabaseCommandMetrics`).
- ``orders_total{event}`` (``placed``, ``cancelled``, ``completed``,
  ``expired``) and ``orders_refused_total{reason}`` (the refusal's problem
  ``code``, e.g. ``insufficient_stock``).
- ``rate_limit_refusals_total{gate}`` (``auth`` or ``default``).
- ``page_cache_requests_total{result}`` (``hit`` or ``miss``).
- ``bcrypt_pool_queue_length``: password hashes waiting for a pool thread.

Several workers: when ``PROMETHEUS_MULTIPROC_DIR`` is set (before the process
starts), ``prometheus_client`` keeps each worker's values in memory-mapped
files in that directory and :func:`exposition` sums them over every worker,
whichever worker answers the scrape. Gauges are summed over live processes
(``livesum``). The directory must be empty when the server starts (the
Docker entry point wipes it).
"""

from __future__ import annotations

import hmac
import os
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from pymongo import monitoring
from starlette.exceptions import HTTPException

from backend_app.core.errors import DomainError
from config import Settings

if TYPE_CHECKING:
    from backend_app.core.throttle import FailureThrottle

#: Environment variable naming the multiprocess directory (prometheus_client's own name).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Values of the ``method`` label; any other method (``PROPFIND``, ``PURGE``, made-up ones) is counted as
#: ``other``, so a client cannot create one series per method it invents.
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
OTHER_METHOD = "other"
#: ``route`` label of requests no route matched.
UNMATCHED_ROUTE = "<unmatched>"
#: Latency buckets of HTTP requests and database commands, in seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Values of ``orders_total``'s ``event`` label (``expired``: the expiry sweeper released a pending order).
ORDER_EVENTS = ("placed", "cancelled", "completed", "expired")

HTTP_REQUESTS = Counter(
    "storefront_http_requests_total",
    "HTTP requests served, by route template and status class.",
    ["method", "route", "status_class"],
)
HTTP_DURATION = Histogram(
    "storefront_http_request_duration_seconds",
    "Time from request start to the end of the response body, in seconds.",
    ["method", "route", "status_class"],
    buckets=LATENCY_BUCKETS,
)
HTTP_IN_FLIGHT = Gauge(
    "storefront_http_requests_in_flight",
    "HTTP requests being served now.",
    multiprocess_mode="livesum",
)
DB_DURATION = Histogram(
    "storefront_db_command_duration_seconds",
    "MongoDB command round trips as the driver saw them, in seconds.",
    ["command", "outcome"],
    buckets=LATENCY_BUCKETS,
)
ORDERS = Counter("storefront_orders_total", "Order lifecycle events.", ["event"])
ORDERS_REFUSED = Counter(
    "storefront_orders_refused_total", "Orders refused, by problem code (e.g. insufficient_stock).", ["reason"]
)
RATE_LIMIT_REFUSALS = Counter("storefront_rate_limit_refusals_total", "Requests refused with 429, by gate.", ["gate"])
PAGE_CACHE = Counter("storefront_page_cache_requests_total", "Catalog page cache look-ups, by result.", ["result"])
BCRYPT_QUEUE = Gauge(
    "storefront_bcrypt_pool_queue_length",
    "Password hashes or checks waiting for a bcrypt pool thread.",
    multiprocess_mode="livesum",
)

#: Outcomes of webhook delivery attempts: accepted (2xx), to be retried, given up (schedule spent or the
#: endpoint disabled), and 410 Gone (the receiver asked to stop; the endpoint is disabled).
WEBHOOK_RESULTS = ("delivered", "retrying", "failed", "gone")
WEBHOOK_DELIVERIES = Counter("storefront_webhook_deliveries_total", "Webhook delivery attempts, by result.", ["result"])
WEBHOOK_ATTEMPT_DURATION = Histogram(
    "storefront_webhook_attempt_duration_seconds",
    "Duration of one webhook delivery attempt (connect, send, answer).",
    buckets=(*LATENCY_BUCKETS, 15.0, 30.0),
)
WEBHOOK_DELIVERY_LATENCY = Histogram(
    "storefront_webhook_delivery_latency_seconds",
    "From an event's commit to its successful delivery to one endpoint.",
    buckets=(*LATENCY_BUCKETS, 30.0, 60.0, 300.0, 3600.0, 86400.0),
)
OUTBOX_LAG = Gauge(
    "storefront_events_outbox_lag_seconds",
    "Age of the oldest event not yet delivered to every endpoint subscribed to it (0 when none).",
    multiprocess_mode="max",
)

# Export every label value known in advance at 0, so rates and alerts work before the first event.
for _event in ORDER_EVENTS:
    ORDERS.labels(event=_event)
for _result in ("hit", "miss"):
    PAGE_CACHE.labels(result=_result)
for _gate in ("auth", "default"):
    RATE_LIMIT_REFUSALS.labels(gate=_gate)
for _result in WEBHOOK_RESULTS:
    WEBHOOK_DELIVERIES.labels(result=_result)


# --- Hooks: one call at each place that records something ------------------------------------------


def order_event(event: str) -> None:
    """Count one order ``event`` (one of :data:`ORDER_EVENTS`)."""
    ORDERS.labels(event=event).inc()


def order_refused(reason: str) -> None:
    """Count one refused order; ``reason`` is the refusal's problem ``code``."""
    ORDERS_REFUSED.labels(reason=reason).inc()


def rate_limited(gate: str) -> None:
    """Count one 429 of ``gate`` (``auth`` or ``default``)."""
    RATE_LIMIT_REFUSALS.labels(gate=gate).inc()


def page_cache_lookup(*, hit: bool) -> None:
    """Count one page-cache look-up."""
    PAGE_CACHE.labels(result="hit" if hit else "miss").inc()


def bcrypt_queued(delta: int) -> None:
    """Add ``delta`` (+1 submitted, -1 started) to the bcrypt pool's queue length."""
    BCRYPT_QUEUE.inc(delta)


def webhook_attempt(result: str, *, seconds: float, latency_s: float | None = None) -> None:
    """Count one webhook attempt (``result`` one of :data:`WEBHOOK_RESULTS`), its duration and, when delivered,
    the time since its event was committed."""
    WEBHOOK_DELIVERIES.labels(result=result).inc()
    WEBHOOK_ATTEMPT_DURATION.observe(seconds)
    if latency_s is not None:
        WEBHOOK_DELIVERY_LATENCY.observe(max(latency_s, 0.0))


def outbox_lag(seconds: float) -> None:
    """Set the outbox lag: the age of the oldest undelivered event, in seconds."""
    OUTBOX_LAG.set(max(seconds, 0.0))


# --- HTTP requests --------------------------------------------------------------------------------


def status_class(status: int) -> str:
    """``2xx``, ``3xx``, ``4xx`` or ``5xx`` for an HTTP status code."""
    return f"{status // 100}xx"


def method_label(method: str) -> str:
    """The ``method`` label of a request: one of :data:`HTTP_METHODS`, else ``other``."""
    upper = method.upper()
    return upper if upper in HTTP_METHODS else OTHER_METHOD


def request_started() -> None:
    """Count a request as in flight (``core.middleware.MetricsMiddleware``)."""
    HTTP_IN_FLIGHT.inc()


def request_finished(*, method: str, route: str | None, status: int, seconds: float) -> None:
    """Count and time a finished request; ``route`` is its template, ``None`` when no route matched."""
    HTTP_IN_FLIGHT.dec()
    labels = {"method": method_label(method), "route": route or UNMATCHED_ROUTE, "status_class": status_class(status)}
    HTTP_REQUESTS.labels(**labels).inc()
    HTTP_DURATION.labels(**labels).observe(seconds)


# --- Database commands ----------------------------------------------------------------------------


class DatabaseCommandMetrics(monitoring.CommandListener):
    """PyMongo command listener timing every command into ``db_command_duration_seconds``.

    The driver reports each command's round-trip time itself (``duration_micros``),
    so nothing is kept between ``started`` and ``succeeded``/``failed``.
    Registered on the process's client (``core.db.create_client``); it covers
    ``AsyncMongoClient`` as well, since the async client publishes the same events.
    """

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        """Nothing to do: the duration comes with the outcome event."""

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        """Record a successful command's duration."""
        DB_DURATION.labels(command=event.command_name, outcome="ok").observe(event.duration_micros / 1e6)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        """Record a failed command's duration."""
        DB_DURATION.labels(command=event.command_name, outcome="error").observe(event.duration_micros / 1e6)


def worker_stopped() -> None:
    """In multiprocess mode, drop this process's live gauges (in flight, bcrypt queue) from the sums.

    Called when the app's lifespan ends; counters and histograms of the
    process are kept, so totals never go backwards.
    """
    if os.environ.get(MULTIPROC_ENV):
        mark_process_dead(os.getpid())


# --- Exposition and GET /metrics ------------------------------------------------------------------


def exposition(accept: str = "", multiproc_dir: str | None = None) -> tuple[bytes, str]:
    """Every metric in the exposition format the scraper's ``Accept`` header asks for.

    Args:
        accept: the scrape's ``Accept`` header (prometheus_client negotiates
            the text format version, or OpenMetrics).
        multiproc_dir: sum the values every process wrote there; defaults to
            ``PROMETHEUS_MULTIPROC_DIR``. Unset: this process's own registry.

    Returns:
        ``(body, content_type)``.
    """
    path = multiproc_dir or os.environ.get(MULTIPROC_ENV)
    registry = REGISTRY
    if path:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=path)
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type


class MetricsUnauthorizedError(DomainError):
    """``GET /metrics`` without the right bearer token: 401 with ``WWW-Authenticate: Bearer``."""

    status = 401
    code = "not_authenticated"
    title = "Unauthorized"


class MetricsThrottledError(DomainError):
    """Too many failed ``GET /metrics`` authorisations from one address (``METRICS_FAILURE_LIMIT``): 429."""

    status = 429
    code = "rate_limited"
    title = "Too many requests"


async def _authorize(request: Request, settings: Settings, throttle: FailureThrottle) -> None:
    """Check ``Authorization: Bearer <METRICS_TOKEN>`` in constant time, failures counted per client address.

    ``/metrics`` is outside the request budgets (scrapes must not be refused),
    so guessing the token is limited here: past ``METRICS_FAILURE_LIMIT``
    failures an address is refused before its token is compared, even a
    right one, until the window has room again.

    Raises:
        HTTPException: ``METRICS_TOKEN`` is unset: the same 404 as an unknown route.
        MetricsThrottledError: too many failures from this address (429, ``Retry-After``).
        MetricsUnauthorizedError: the header is missing or names another token (401).
    """
    if settings.metrics_token is None:
        raise HTTPException(status_code=404)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    expected = settings.metrics_token.get_secret_value().encode()
    from backend_app.core.ratelimit import client_address  # ratelimit imports this module

    async with throttle.attempt(client_address(request)) as attempt:
        if attempt.retry_after is not None:
            raise MetricsThrottledError(
                "Too many failed GET /metrics authorisations from this address; retry after Retry-After seconds.",
                headers={"Retry-After": str(attempt.retry_after)},
            )
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
            await attempt.failed()
            raise MetricsUnauthorizedError(
                "GET /metrics needs Authorization: Bearer <METRICS_TOKEN>.",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )


router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus scrape target (text format or OpenMetrics, as ``Accept`` asks); private: see :func:`_authorize`.

    Not in the OpenAPI schema: it is for the scraper, not API clients.
    """
    await _authorize(request, request.app.state.settings, request.app.state.rate_limiter.metrics_throttle)
    body, content_type = exposition(request.headers.get("accept", ""))
    return Response(
        body, headers={"Content-Type": content_type}
    )  # no-store: the app names /metrics among its no-store paths
