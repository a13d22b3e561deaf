"""One delivery attempt over HTTP (aiohttp): connect to a checked address, send, read at most 1 KiB back.

- The host is resolved and every address checked at each attempt
  (``urlguard.check_destination``), and the connection goes to the first
  checked address itself: the client's resolver answers with that address
  only, while the URL's host stays the ``Host`` header and, for ``https``, the
  TLS server name (SNI and certificate check). So a changed DNS answer cannot
  redirect it (DNS rebinding).
- Redirects are not followed (a ``3xx`` is a failed attempt: the
  specification asks senders not to follow them).
- The whole attempt (connect, send, answer) is bounded by ``timeout_s``.
- Connections are kept alive per (scheme, host, port, checked address)
  (:class:`ClientPool`): a connection is only ever reused for the same host
  name at the same address it was opened to, so neither another endpoint's
  host nor a new DNS answer can ride on it.

aiohttp rather than httpx (which the tests use as a client): an attempt is one
small ``POST``, and aiohttp spends about a tenth of httpx's CPU time on it
(``docs/benchmarks.md``, webhook delivery), time taken from the API requests
served by the same process.
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

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


class PinnedResolver(AbstractResolver):
    """A resolver answering every name with one address: the one ``urlguard`` checked for this client."""

    def __init__(self, address: urlguard.IPAddress) -> None:
        self.address = address

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """``[address]`` for ``host`` (whatever ``family`` asks: the address is what may be connected to)."""
        return [
            {
                "hostname": host,
                "host": str(self.address),
                "port": port,
                "family": socket.AF_INET6 if self.address.version == 6 else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        """Nothing to release."""


def new_client(address: urlguard.IPAddress) -> aiohttp.ClientSession:
    """An HTTP client that connects only to ``address``: no redirects, no proxy from the environment."""
    connector = aiohttp.TCPConnector(
        resolver=PinnedResolver(address), use_dns_cache=False, limit=32, keepalive_timeout=30
    )
    return aiohttp.ClientSession(connector=connector, trust_env=False, headers={"user-agent": USER_AGENT})


class ClientPool:
    """One keep-alive HTTP client per ``(scheme, host, port, address)``, the least recently used closed beyond ``size``."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._clients: collections.OrderedDict[tuple[str, str, int, str], aiohttp.ClientSession] = (
            collections.OrderedDict()
        )

    async def get(self, target: urlguard.Target, address: urlguard.IPAddress) -> aiohttp.ClientSession:
        """The client for ``target`` connected to ``address``."""
        key = (target.url.scheme, target.host, target.port, str(address))
        client = self._clients.pop(key, None) or new_client(address)
        self._clients[key] = client
        while len(self._clients) > self.size:
            _key, old = self._clients.popitem(last=False)
            await old.close()
        return client

    async def aclose(self) -> None:
        """Close every client."""
        while self._clients:
            _key, client = self._clients.popitem()
            await client.close()


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
            client = await clients.get(target, addresses[0])
            async with client.post(
                str(target.url),
                data=body,
                headers={**headers, "content-type": "application/json"},
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:
                kept = bytearray()
                while len(kept) < RESPONSE_KEPT:
                    chunk = await response.content.read(RESPONSE_KEPT - len(kept))
                    if not chunk:
                        break
                    kept.extend(chunk)
    except urlguard.UnsafeUrlError as exc:
        return AttemptResult(status_code=None, error=f"address refused: {exc}", duration_ms=elapsed())
    except TimeoutError:  # the attempt's own bound, and aiohttp's timeouts (subclasses of it)
        return AttemptResult(status_code=None, error=f"timeout after {timeout_s:g}s", duration_ms=elapsed())
    except aiohttp.ClientError as exc:
        return AttemptResult(status_code=None, error=f"{type(exc).__name__}: {exc}"[:300], duration_ms=elapsed())
    except OSError as exc:
        return AttemptResult(status_code=None, error=f"connection error: {exc}"[:300], duration_ms=elapsed())
    retry_after = None
    if response.status in (429, 503):
        retry_after = parse_retry_after(response.headers.get("retry-after"), now=datetime.now(UTC))
    return AttemptResult(
        status_code=response.status,
        error=None,
        duration_ms=elapsed(),
        response=bytes(kept[:RESPONSE_KEPT]).decode("utf-8", errors="replace"),
        retry_after=retry_after,
    )
