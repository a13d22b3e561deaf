"""Rate limiting with slowapi: per user when authenticated, per client IP otherwise.

:class:`RateLimitMiddleware` (pure ASGI) runs before routing, so it covers every route,
unknown paths and oversized bodies. It counts each request with one of two slowapi
``shared_limit`` gates: ``auth`` (``RATE_LIMIT_AUTH``) for the strict paths the app
hands over, one budget shared by them, and ``default`` (``RATE_LIMIT_DEFAULT``) for the
rest; probes and ``/metrics`` are exempt. Who is counted is :meth:`RateLimiter.key`.
Every counted response carries ``X-RateLimit-*`` headers; over the limit is ``429``
problem+json with ``Retry-After``. Storage is memory (per process) or Redis (shared);
an unreachable Redis falls back to memory and is probed again with back-off.

slowapi's own ``SlowAPIMiddleware`` is not used: it finds the route by walking
``app.routes`` and silently skips every route of an included router on FastAPI ≥ 0.137, and
its ASGI variant re-sends the response start for streamed bodies. Design and failure cases: docs/security.md (Rate limits).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from anyio.to_thread import run_sync
from fastapi.security.utils import get_authorization_scheme_param
from limits import RateLimitItem
from slowapi import Limiter
from slowapi.errors import RateLimitExceeded
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend_app.core import metrics
from backend_app.core.errors import problem_response
from backend_app.core.security import TokenError, decode_token
from backend_app.core.throttle import REDIS_TIMEOUT_S, FailureThrottle
from config import Settings

logger = logging.getLogger(__name__)

#: Paths never counted.
EXEMPT_PATHS = frozenset({"/health", "/health/live", "/health/ready", "/metrics"})

Gate = Callable[..., Any]

__all__ = ["FailureThrottle", "RateLimitMiddleware", "RateLimiter", "client_address"]


def client_address(request: Request) -> str:
    """The caller's IP: the peer, or (from a trusted proxy) the address uvicorn's ProxyHeadersMiddleware set."""
    return request.client.host if request.client and request.client.host else "unknown"


class RateLimiter:
    """The app's slowapi :class:`~slowapi.Limiter` and its two gates (``auth`` and ``default``).

    Args:
        settings: ``RATE_LIMIT_*`` values.
        strict_paths: paths under the ``auth`` budget (``RATE_LIMIT_AUTH``), shared by all of them.
        per_address_prefixes: paths under these prefixes are always counted per client address.

    Raises:
        limits.errors.ConfigurationError: the storage URI names a storage
            whose client library is missing.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        strict_paths: frozenset[str] = frozenset(),
        per_address_prefixes: tuple[str, ...] = (),
    ) -> None:
        storage_uri = settings.rate_limit_storage_uri
        self.is_shared = not storage_uri.startswith("memory://")
        self.strict_paths = strict_paths
        self.per_address_prefixes = per_address_prefixes
        options: dict[str, Any] = (
            {"socket_timeout": REDIS_TIMEOUT_S, "socket_connect_timeout": REDIS_TIMEOUT_S} if self.is_shared else {}
        )
        #: Failed ``GET /metrics`` authorisations, per client address (``METRICS_FAILURE_LIMIT``).
        self.metrics_throttle = FailureThrottle(
            settings, limit=settings.metrics_failure_limit, scope="metrics-failures"
        )
        self.limiter = Limiter(
            key_func=self.key,
            storage_uri=storage_uri,
            storage_options=options,
            strategy=settings.rate_limit_strategy,
            key_prefix="storefront",
            in_memory_fallback_enabled=True,
            swallow_errors=True,
            enabled=settings.rate_limit_enabled,
            # Headers are written by RateLimitMiddleware, which also covers 429s and streamed bodies.
            headers_enabled=False,
        )

        def auth_gate(request: Request) -> None:
            """Counts one request against the shared ``auth`` budget."""

        def default_gate(request: Request) -> None:
            """Counts one request against the caller's ``default`` budget."""

        self.auth_gate: Gate = self.limiter.shared_limit(settings.rate_limit_auth, scope="auth")(auth_gate)
        self.default_gate: Gate = self.limiter.shared_limit(settings.rate_limit_default, scope="default")(default_gate)

    def key(self, request: Request) -> str:
        """slowapi key function: ``ip:<client address>`` under a per-address prefix; elsewhere
        ``user:<sub>`` for a valid access token, else ``ip:<client address>``.

        The token is verified (signature, ``exp``, ``iss``, ``aud``, ``type``)
        without a database call; a missing, forged or expired token counts
        against the client IP. Paths under a per-address prefix (sign-in,
        sign-up, password change) never count per token, so a caller holding
        several tokens gets no extra guesses.
        """
        if request.url.path.startswith(self.per_address_prefixes):
            return f"ip:{client_address(request)}"
        scheme, token = get_authorization_scheme_param(request.headers.get("Authorization"))
        if scheme.lower() == "bearer" and token:
            try:
                claims = decode_token(request.app.state.settings, token, expected_type="access")
            except TokenError:
                pass
            else:
                return f"user:{claims.sub}"
        return f"ip:{client_address(request)}"

    @property
    def enabled(self) -> bool:
        """Whether requests are counted (``RATE_LIMIT_ENABLED``)."""
        return bool(self.limiter.enabled)

    def gate_for(self, path: str) -> Gate | None:
        """The gate counting a request to ``path``, or ``None`` for exempt paths."""
        if path in EXEMPT_PATHS:
            return None
        normalized = path.rstrip("/") or "/"
        return self.auth_gate if normalized in self.strict_paths else self.default_gate

    def check(self, gate: Gate, request: Request) -> tuple[dict[str, str], str | None]:
        """Count ``request`` with ``gate`` (a blocking call when the storage is Redis).

        Returns:
            The response's rate-limit headers, and ``None`` when the request is
            within its limit or the exceeded limit's text (e.g. ``10 per 1 minute``).
        """
        try:
            gate(request=request)
        except RateLimitExceeded as exc:
            return self.headers(request, exceeded=True), str(exc.detail)
        return self.headers(request), None

    def headers(self, request: Request, *, exceeded: bool = False) -> dict[str, str]:
        """``X-RateLimit-Limit/Remaining/Reset`` (and ``Retry-After`` when ``exceeded``) for ``request``.

        Empty when no limit was evaluated or the storage cannot be read.
        """
        current: tuple[RateLimitItem, list[str]] | None = getattr(request.state, "view_rate_limit", None)
        if current is None:
            return {}
        item, identifiers = current
        try:
            reset_at, remaining = self.limiter.limiter.get_window_stats(item, *identifiers)
        except Exception:  # storage went away between the hit and this read
            logger.warning("rate-limit storage unreadable; X-RateLimit headers omitted", exc_info=True)
            return {}
        reset = math.ceil(reset_at)
        headers = {
            "X-RateLimit-Limit": str(item.amount),
            "X-RateLimit-Remaining": str(max(remaining, 0)),
            "X-RateLimit-Reset": str(reset),
        }
        if exceeded:
            headers["Retry-After"] = str(max(reset - int(time.time()), 1))
        return headers


class RateLimitMiddleware:
    """ASGI middleware applying :class:`RateLimiter` to every HTTP request (see the module docstring)."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.rate_limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limiter = self.rate_limiter
        gate = limiter.gate_for(scope.get("path", "")) if scope["type"] == "http" and limiter.enabled else None
        if gate is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if limiter.is_shared:
            headers, exceeded = await run_sync(limiter.check, gate, request)
        else:
            headers, exceeded = limiter.check(gate, request)
        if exceeded is not None:
            metrics.rate_limited("auth" if gate is limiter.auth_gate else "default")
            response = problem_response(
                status=429,
                code="rate_limited",
                title="Too many requests",
                detail=f"Rate limit exceeded ({exceeded}); retry after the seconds given in Retry-After.",
                instance=scope.get("path"),
                headers=headers,
            )
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and headers:
                message_headers = MutableHeaders(scope=message)
                for name, value in headers.items():
                    message_headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
