"""OpenTelemetry tracing, off by default and turned on by the standard ``OTEL_*`` variables.

When on (:func:`tracing_enabled`), :func:`tracer_provider_from_env` builds an
SDK ``TracerProvider`` (service name and resource from ``OTEL_SERVICE_NAME`` /
``OTEL_RESOURCE_ATTRIBUTES``, sampler from ``OTEL_TRACES_SAMPLER``, batch
export to each exporter of ``OTEL_TRACES_EXPORTER``, default ``otlp`` over
HTTP to ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT``), and :func:`instrument`
wires it:

- HTTP: ``opentelemetry-instrumentation-fastapi`` (one server span per
  request, named by route template). FastAPI's own native telemetry sees
  this middleware and stays off, so spans are never doubled.
- MongoDB: :class:`DatabaseCommandSpans`, a PyMongo command listener that
  opens a client span per command, a child of the request's span.
  ``opentelemetry-instrumentation-pymongo`` is not used: its newest release
  (0.66b1) needs ``opentelemetry-api`` 1.45.1 and ``opentelemetry-instrumentation``
  0.66b1, which cannot be installed beside the SDK 1.45.2 and FastAPI
  instrumentation 0.66b2 pinned here. (Like it, this listener relies on
  PyMongo's command monitoring, which ``AsyncMongoClient`` publishes as the
  sync client does.)
- Privacy: query values are replaced by ``REDACTED`` in the server span's
  URL attributes (:func:`redact_query`); probes and scrapes
  (:data:`EXCLUDED_URLS`, anchored to the whole path) are not traced.
- Request id: ``core.middleware.MetricsMiddleware`` puts the
  ``X-Request-ID`` (asgi-correlation-id) on the server span as
  ``request_id``; every database span carries it too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from asgi_correlation_id import correlation_id
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from pymongo import monitoring

logger = logging.getLogger(__name__)

#: Span attribute carrying the request id (the ``X-Request-ID`` of the logs).
REQUEST_ID_ATTRIBUTE = "request_id"
#: Paths never traced: probes and scrapes. The instrumentation searches these regexes (comma-separated)
#: in ``scheme://host/path``, so each is anchored to the whole path: ``/orders/healthy_hank/...`` is traced.
EXCLUDED_URLS = r"^[a-z]+://[^/]+/health(/live|/ready)?/?$,^[a-z]+://[^/]+/metrics/?$"
#: What replaces each query value in span attributes (names are kept; values may be personal data).
REDACTED = "REDACTED"
#: Span attributes holding the URL or its query, old and new HTTP semantic conventions.
_URL_ATTRIBUTES = ("http.url", "url.full", "http.target")
_QUERY_ATTRIBUTES = ("url.query",)


def redact_query(text: str) -> str:
    """``text`` (a URL, a target or a bare query) with every query value replaced by :data:`REDACTED`.

    ``/products?email=alice@example.com&limit=5`` → ``/products?email=REDACTED&limit=REDACTED``. The access
    log leaves the query out altogether; traces keep the names, which tell which filters a request used.
    """
    path, mark, query = text.partition("?")
    if not mark:
        return text
    return f"{path}?{_redact_pairs(query)}"


def _redact_pairs(query: str) -> str:
    return "&".join(
        f"{pair.partition('=')[0]}={REDACTED}" if pair.partition("=")[1] else pair for pair in query.split("&")
    )


def _redact_request_span(span: Any, scope: dict[str, Any]) -> None:
    """``server_request_hook``: overwrite the URL attributes the instrumentation set with redacted ones."""
    if not span.is_recording():
        return
    attributes = getattr(span, "attributes", None) or {}
    for name in _URL_ATTRIBUTES:
        if name in attributes:
            span.set_attribute(name, redact_query(str(attributes[name])))
    for name in _QUERY_ATTRIBUTES:
        if name in attributes:
            span.set_attribute(name, _redact_pairs(str(attributes[name])))


def tracing_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the ``OTEL_*`` variables ask for traces.

    On when ``OTEL_TRACES_EXPORTER`` names an exporter (not ``none``) or an
    OTLP endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``); ``OTEL_SDK_DISABLED=true`` and
    ``OTEL_TRACES_EXPORTER=none`` always turn it off.
    """
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters == "none":
        return False
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return bool(exporters or endpoint)


def tracer_provider_from_env(environ: Mapping[str, str] = os.environ) -> Any | None:
    """An SDK ``TracerProvider`` exporting as the ``OTEL_*`` variables say, or ``None`` when tracing is off.

    Exporters (``OTEL_TRACES_EXPORTER``, comma-separated, default ``otlp``):
    ``otlp`` (OTLP over HTTP/protobuf; the SDK exporter reads endpoint,
    headers and timeout from the environment itself) and ``console``. An
    unknown name is logged and skipped.
    """
    if not tracing_enabled(environ):
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    provider = TracerProvider(resource=Resource.create())
    names = [n.strip() for n in (environ.get("OTEL_TRACES_EXPORTER") or "otlp").lower().split(",") if n.strip()]
    for name in names:
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        elif name == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        else:
            logger.warning("OTEL_TRACES_EXPORTER=%s is not supported here (otlp, console); skipped", name)
    return provider


def instrument(app: FastAPI, provider: Any) -> None:
    """Trace ``app``'s HTTP requests with ``provider`` (``opentelemetry-instrumentation-fastapi``).

    Database spans come from :class:`DatabaseCommandSpans`, which the lifespan
    registers on the client when ``app.state.tracer_provider`` is set.
    """
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        excluded_urls=EXCLUDED_URLS,
        exclude_spans=["receive", "send"],
        server_request_hook=_redact_request_span,
    )
    app.state.tracer_provider = provider


def annotate_request_span() -> None:
    """Put the request id on the current (server) span, if one is recording."""
    span = trace.get_current_span()
    if span.is_recording():
        request_id = correlation_id.get()
        if request_id:
            span.set_attribute(REQUEST_ID_ATTRIBUTE, request_id)


class DatabaseCommandSpans(monitoring.CommandListener):
    """PyMongo command listener: one ``CLIENT`` span per MongoDB command, child of the current span.

    ``started`` runs in the task that sends the command, so the span's parent
    is the request's span; the span is ended by ``succeeded``/``failed``.
    Attributes follow the OpenTelemetry database conventions
    (``db.system.name``, ``db.namespace``, ``db.operation.name``,
    ``db.collection.name``, ``server.address``/``server.port``); command
    documents are never recorded (they hold user data).
    """

    def __init__(self, provider: Any) -> None:
        self._tracer = provider.get_tracer(__name__)
        self._spans: dict[tuple[int, Any], Any] = {}

    @staticmethod
    def _key(event: Any) -> tuple[int, Any]:
        return (event.request_id, event.connection_id)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        """Open the command's span."""
        if not trace.get_current_span().get_span_context().is_valid:
            return  # background work (e.g. start-up index creation): no request, no trace
        collection = event.command.get(event.command_name)
        attributes: dict[str, Any] = {
            "db.system.name": "mongodb",
            "db.namespace": event.database_name,
            "db.operation.name": event.command_name,
        }
        if isinstance(collection, str):
            attributes["db.collection.name"] = collection
        if isinstance(event.connection_id, tuple):
            host, port = event.connection_id
            attributes["server.address"] = str(host)
            if port is not None:
                attributes["server.port"] = int(port)
        request_id = correlation_id.get()
        if request_id:
            attributes[REQUEST_ID_ATTRIBUTE] = request_id
        name = f"{event.command_name} {collection}" if isinstance(collection, str) else event.command_name
        self._spans[self._key(event)] = self._tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        """End the command's span."""
        span = self._spans.pop(self._key(event), None)
        if span is not None:
            span.end()

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        """End the command's span with an error status (the failure's code name, not the server's message)."""
        span = self._spans.pop(self._key(event), None)
        if span is not None:
            failure = event.failure or {}
            span.set_status(Status(StatusCode.ERROR, str(failure.get("codeName", "command failed"))))
            span.end()
