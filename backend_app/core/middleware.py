"""HTTP hardening and observability middleware, and their order.

:func:`install_middleware` wires, outermost first:

1. uvicorn's ``ProxyHeadersMiddleware`` (only with ``TRUSTED_PROXIES``): the
   client address and scheme come from ``X-Forwarded-For``/``-Proto`` only
   when the TCP peer is a trusted proxy.
2. asgi-correlation-id's ``CorrelationIdMiddleware``: ``X-Request-ID`` is
   honoured when it is 1..128 characters of ``[A-Za-z0-9._:-]`` (anything
   else could forge log lines), generated (UUID4 hex) otherwise, and returned
   on every response.
3. :class:`MetricsMiddleware`: request count, latency and in-flight
   gauge by route template (so 413s and 429s are counted too).
4. :class:`AccessLogMiddleware`: one JSON log line per request.
5. :class:`SecurityHeadersMiddleware`: security headers on every response.
6. Starlette's ``CORSMiddleware`` (only with ``ALLOWED_ORIGINS``), a
   refused preflight answered as a problem (:class:`ProblemCORSMiddleware`).
7. ``core.ratelimit.RateLimitMiddleware``: 429 before any work is done.
8. :class:`BodySizeLimitMiddleware`: 413 for bodies over ``MAX_BODY_BYTES``.
9. :class:`UnhandledErrorMiddleware`: the 500 problem, inside the stack so
   it still carries the request id and security headers.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from backend_app.core import metrics
from backend_app.core.errors import problem_response, unhandled_error_response
from backend_app.core.ratelimit import RateLimiter, RateLimitMiddleware
from backend_app.core.tracing import annotate_request_span
from config import Settings

access_logger = logging.getLogger("storefront.access")

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

#: Sent on every response.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
#: CSP of API (non-HTML) responses: nothing may load, nothing may frame them.
API_CSP = "default-src 'none'; frame-ancestors 'none'"
#: CSP of HTML pages (``/docs``, ``/redoc``), which load their own scripts and styles.
HTML_CSP = "frame-ancestors 'none'"
#: HSTS sent in production (the API is served over TLS there, usually by a proxy).
HSTS = "max-age=63072000; includeSubDomains"
#: Key in the ASGI scope's ``state`` (``request.state``) with which a route asks for ``no-store``.
_NO_STORE_STATE = "no_store"


def is_under(path: str, prefixes: tuple[str, ...]) -> bool:
    """Whether ``path`` is one of ``prefixes`` or under one of them (``/orders`` covers ``/orders/alice``)."""
    return any(path == prefix or path.startswith(prefix + "/") for prefix in prefixes)


def mark_no_store(request: Request) -> None:
    """Ask :class:`SecurityHeadersMiddleware` to send this one response with ``Cache-Control: no-store``.

    For a response outside the no-store paths that must not be stored (e.g. a
    failing readiness probe), so that no route sets the header itself.
    """
    setattr(request.state, _NO_STORE_STATE, True)


#: CORS: what a browser page from an allowed origin may send and read.
CORS_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
CORS_REQUEST_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", REQUEST_ID_HEADER]
CORS_EXPOSED_HEADERS = [
    REQUEST_ID_HEADER,
    "Retry-After",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "WWW-Authenticate",
]


def is_valid_request_id(value: str) -> bool:
    """Whether an incoming ``X-Request-ID`` is safe to reuse (1..128 of ``[A-Za-z0-9._:-]``)."""
    return _REQUEST_ID.fullmatch(value) is not None


class HTTPMiddleware:
    """Base of the pure-ASGI middleware here: other scopes (lifespan, websocket) pass straight through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Process one HTTP request."""
        raise NotImplementedError


class SecurityHeadersMiddleware(HTTPMiddleware):
    """Adds :data:`SECURITY_HEADERS`, a Content-Security-Policy, HSTS (production) and ``Cache-Control: no-store``.

    ``Cache-Control: no-store`` (and ``Pragma: no-cache``) is set on every
    response (success or error) under ``no_store_paths`` (the paths whose
    responses carry tokens or personal data, which the app names), and on a
    response whose route called :func:`mark_no_store`, replacing whatever the
    route set: the only mechanism that sets it (RFC 6749 §5.1, RFC 9111 §5.2.2.5).
    """

    def __init__(self, app: ASGIApp, *, no_store_paths: tuple[str, ...] = (), hsts: bool = False) -> None:
        super().__init__(app)
        self.no_store_paths = no_store_paths
        self.hsts = hsts

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        no_store_path = is_under(scope.get("path", ""), self.no_store_paths)
        state = scope.setdefault("state", {})  # shared with ``request.state`` of the route (mark_no_store)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                is_html = headers.get("content-type", "").startswith("text/html")
                headers.setdefault("Content-Security-Policy", HTML_CSP if is_html else API_CSP)
                if self.hsts:
                    headers.setdefault("Strict-Transport-Security", HSTS)
                if no_store_path or state.get(_NO_STORE_STATE):
                    headers["Cache-Control"] = "no-store"
                    headers["Pragma"] = "no-cache"
            await send(message)

        await self.app(scope, receive, send_with_headers)


class ProblemCORSMiddleware(CORSMiddleware):
    """Starlette's CORS middleware; a refused preflight is a ``400`` problem (``cors_refused``), not plain text."""

    def preflight_response(self, request_headers: Headers) -> Response:
        """Starlette's preflight answer, with its ``400`` body rewritten as problem+json."""
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        problem = problem_response(
            status=400, code="cors_refused", detail=f"CORS preflight refused: {bytes(response.body).decode()}."
        )
        problem.headers.update({k: v for k, v in response.headers.items() if k.startswith("access-control-")})
        return problem


class ContentTooLargeError(StarletteHTTPException):
    """The request body exceeds ``MAX_BODY_BYTES``: 413 (RFC 9110 §15.5.14).

    An ``HTTPException`` so that FastAPI re-raises it from body parsing and the
    ``core.errors`` mapping renders it as problem+json ``content_too_large``.
    """

    def __init__(self, max_body_bytes: int) -> None:
        super().__init__(status_code=413, detail=f"The request body is larger than {max_body_bytes} bytes.")


class BodySizeLimitMiddleware(HTTPMiddleware):
    """413 for request bodies over ``max_body_bytes``, with or without ``Content-Length``.

    A declared ``Content-Length`` over the limit is refused before the body is
    read. Otherwise (chunked uploads, or a lying length) the bytes are counted
    as the app reads them and :class:`ContentTooLargeError` is raised from
    ``receive`` once the limit is passed, so at most one chunk more than the
    limit is ever held in memory.

    (FastAPI's own ``max_body_size`` is not used: for an oversized
    ``Content-Length`` it answers ``text/plain`` from outside the user
    middleware, so the 413 would lose the problem+json body, the request id
    and the security headers.)
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        super().__init__(app)
        self.max_body_bytes = max_body_bytes

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.max_body_bytes
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            error = ContentTooLargeError(limit)
            response = problem_response(
                status=413, code="content_too_large", detail=error.detail, instance=scope.get("path")
            )
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise ContentTooLargeError(limit)
            return message

        await self.app(scope, limited_receive, send)


class StatusRecorder:
    """An ASGI ``send`` that passes messages on and remembers the response status (500 until one starts)."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.status = 500

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self.send(message)


class MetricsMiddleware(HTTPMiddleware):
    """Counts and times every HTTP request by route template and status class (``core.metrics``).

    The route template is read after the app has run, from ``scope["route"]``
    (set by the router on the shared scope), so it is the path template of
    the matched route, never the raw path. It also puts the request id on the
    request's trace span when tracing is on (``core.tracing``), being the
    first layer inside asgi-correlation-id.
    """

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        recorder = StatusRecorder(send)
        annotate_request_span()
        metrics.request_started()
        try:
            await self.app(scope, receive, recorder)
        finally:
            metrics.request_finished(
                method=scope["method"],
                route=getattr(scope.get("route"), "path", None),
                status=recorder.status,
                seconds=time.perf_counter() - started,
            )


class AccessLogMiddleware(HTTPMiddleware):
    """Logs one line per HTTP request on ``storefront.access`` when the response is complete.

    Fields: ``method``, ``path`` (never the query string, which may carry
    secrets), ``status``, ``duration_ms``, ``user`` (the username the auth
    dependency resolved, else ``null``), ``client`` (IP); ``request_id`` is
    added by the log filter. Headers and bodies are never logged.
    """

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        state: dict[str, Any] = scope.setdefault("state", {})
        recorder = StatusRecorder(send)
        try:
            await self.app(scope, receive, recorder)
        finally:
            status = recorder.status
            duration_ms = round((time.perf_counter() - started) * 1000, 2)
            method, path = scope["method"], scope.get("path", "")
            client = scope.get("client")
            access_logger.info(
                "%s %s %d %.2fms",
                method,
                path,
                status,
                duration_ms,
                extra={
                    "method": method,
                    "path": path,
                    "status": status,
                    "duration_ms": duration_ms,
                    "user": state.get("user"),
                    "client": client[0] if client else None,
                },
            )


class UnhandledErrorMiddleware(HTTPMiddleware):
    """Turns an exception escaping the routes into the 500 problem, inside the middleware stack.

    Starlette answers unhandled exceptions from its outermost layer, so that
    500 would miss the headers the middleware above adds (``X-Request-ID``,
    security headers). Installed innermost, this renders the same problem
    (``core.errors.unhandled_error_response``, which logs the traceback). An
    exception raised after the response started is re-raised (the server
    then closes the connection).
    """

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def send_tracking_start(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking_start)
        except Exception as exc:
            if started:
                raise
            response = await unhandled_error_response(Request(scope), exc)
            await response(scope, receive, send)


def install_middleware(
    app: FastAPI,
    settings: Settings,
    *,
    no_store_paths: tuple[str, ...] = (),
    strict_rate_limited_paths: frozenset[str] = frozenset(),
    per_address_prefixes: tuple[str, ...] = (),
) -> None:
    """Add the middleware stack described in the module docstring to ``app``.

    The domains' rules come from the app: ``no_store_paths`` (and everything
    under them) are never stored by caches; ``strict_rate_limited_paths`` share
    the ``RATE_LIMIT_AUTH`` budget; ``per_address_prefixes`` are counted per
    client address whatever token is sent. Also stores the app's
    :class:`~backend_app.core.ratelimit.RateLimiter` on ``app.state.rate_limiter``.
    """
    rate_limiter = RateLimiter(
        settings, strict_paths=strict_rate_limited_paths, per_address_prefixes=per_address_prefixes
    )
    app.state.rate_limiter = rate_limiter
    # add_middleware wraps what was added before: innermost first.
    app.add_middleware(UnhandledErrorMiddleware)
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(RateLimitMiddleware, limiter=rate_limiter)
    if settings.allowed_origins:
        app.add_middleware(
            ProblemCORSMiddleware,
            allow_origins=settings.allowed_origins,
            allow_methods=CORS_METHODS,
            allow_headers=CORS_REQUEST_HEADERS,
            expose_headers=CORS_EXPOSED_HEADERS,
            allow_credentials=False,  # bearer tokens, no cookies
            max_age=600,
        )
    app.add_middleware(SecurityHeadersMiddleware, no_store_paths=no_store_paths, hsts=settings.app_env == "production")
    app.add_middleware(AccessLogMiddleware)
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(CorrelationIdMiddleware, header_name=REQUEST_ID_HEADER, validator=is_valid_request_id)
    if settings.trusted_proxies:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
