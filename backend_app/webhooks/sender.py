"""One delivery attempt over HTTP (httpx): connect to a checked address, send, read at most 1 KiB back.

- The host is resolved and every address checked at each attempt
  (``urlguard.check_destination``), and the request goes to the first checked
  address itself, with the URL's host in ``Host`` and, for ``https``, as the
  TLS server name (SNI and certificate check), so a changed DNS answer cannot
  redirect it (DNS rebinding).
- Redirects are not followed (a ``3xx`` is a failed attempt: the
  specification asks senders not to follow them).
- The whole attempt (connect, send, answer) is bounded by ``timeout_s``.
- Connections are kept alive per (scheme, host, port, checked address)
  (:class:`ClientPool`): a connection is only ever reused for the same host
  name at the same address it was opened to, so neither another endpoint's
  host nor a new DNS answer can ride on it.
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from backend_app.webhooks import urlguard

#: Bytes of a response body kept with the attempt.
RESPONSE_KEPT = 1024
#: Longest ``Retry-After`` honoured, in seconds.
MAX_RETRY_AFTER = 24 * 3600.0
USER_AGENT = "storefront-webhooks/1"


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one attempt gave: an HTTP status, or an error without one.

    Attributes:
        status_code: the answer's status, ``None`` when none came.
        error: why no answer came (``timeout after 15s``, ``connection refused``, ``address refused: ...``).
        duration_ms: from the start of the attempt to its end.
        response: the first 1 KiB of the answer's body, decoded as UTF-8 (invalid bytes replaced).
        retry_after: seconds the receiver asked to wait (``Retry-After``), if it did.
    """

    status_code: int | None
    error: str | None
    duration_ms: float
    response: str | None = None
    retry_after: float | None = None

    @property
    def delivered(self) -> bool:
        """Whether the receiver accepted the delivery (any ``2xx``)."""
        return self.status_code is not None and 200 <= self.status_code < 300


def new_client() -> httpx.AsyncClient:
    """An HTTP client for one (host, address): no redirects, no proxy from the environment."""
    return httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_connections=32, max_keepalive_connections=8, keepalive_expiry=30),
        headers={"user-agent": USER_AGENT},
    )


class ClientPool:
    """One keep-alive HTTP client per ``(scheme, host, port, address)``, the least recently used closed beyond ``size``."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._clients: collections.OrderedDict[tuple[str, str, int, str], httpx.AsyncClient] = collections.OrderedDict()

    async def get(self, target: urlguard.Target, address: urlguard.IPAddress) -> httpx.AsyncClient:
        """The client for ``target`` connected to ``address``."""
        key = (target.url.scheme, target.host, target.port, str(address))
        client = self._clients.pop(key, None) or new_client()
        self._clients[key] = client
        while len(self._clients) > self.size:
            _key, old = self._clients.popitem(last=False)
            await old.aclose()
        return client

    async def aclose(self) -> None:
        """Close every client."""
        while self._clients:
            _key, client = self._clients.popitem()
            await client.aclose()


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """``Retry-After`` (seconds, or an HTTP date) in seconds from ``now``, capped at a day; ``None`` if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max((when - now).total_seconds(), 0.0), MAX_RETRY_AFTER)


async def attempt(
    clients: ClientPool,
    *,
    url: str,
    body: bytes,
    headers: dict[str, str],
    resolver: urlguard.Resolver,
    allow_private: bool,
    https_only: bool,
    timeout_s: float,
) -> AttemptResult:
    """POST ``body`` to ``url`` once, as described in the module docstring; never raises for the receiver's faults."""
    started = time.monotonic()

    def elapsed() -> float:
        return round((time.monotonic() - started) * 1000, 1)

    try:
        async with asyncio.timeout(timeout_s):
            target = urlguard.parse(url, https_only=https_only)
            addresses = await urlguard.check_destination(target, resolver=resolver, allow_private=allow_private)
            request_headers = {
                **headers,
                "content-type": "application/json",
                "host": target.url.netloc.decode("ascii"),
            }
            extensions = {"sni_hostname": target.host} if target.url.scheme == "https" else {}
            client = await clients.get(target, addresses[0])
            request = client.build_request(
                "POST",
                target.url.copy_with(host=str(addresses[0])),
                content=body,
                headers=request_headers,
                extensions=extensions,
                timeout=httpx.Timeout(timeout_s),
            )
            response = await client.send(request, stream=True)
            try:
                kept = bytearray()
                async for chunk in response.aiter_bytes():
                    kept.extend(chunk)
                    if len(kept) >= RESPONSE_KEPT:
                        break
            finally:
                await response.aclose()
    except urlguard.UnsafeUrlError as exc:
        return AttemptResult(status_code=None, error=f"address refused: {exc}", duration_ms=elapsed())
    except TimeoutError:
        return AttemptResult(status_code=None, error=f"timeout after {timeout_s:g}s", duration_ms=elapsed())
    except httpx.TimeoutException:
        return AttemptResult(status_code=None, error=f"timeout after {timeout_s:g}s", duration_ms=elapsed())
    except httpx.HTTPError as exc:
        return AttemptResult(status_code=None, error=f"{type(exc).__name__}: {exc}"[:300], duration_ms=elapsed())
    except OSError as exc:
        return AttemptResult(status_code=None, error=f"connection error: {exc}"[:300], duration_ms=elapsed())
    retry_after = None
    if response.status_code in (429, 503):
        retry_after = parse_retry_after(response.headers.get("retry-after"), now=datetime.now(UTC))
    return AttemptResult(
        status_code=response.status_code,
        error=None,
        duration_ms=elapsed(),
        response=bytes(kept[:RESPONSE_KEPT]).decode("utf-8", errors="replace"),
        retry_after=retry_after,
    )
