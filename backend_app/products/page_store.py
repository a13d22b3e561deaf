"""Where catalog list pages are kept: in process (``cachetools``) or in Redis, and how one fill is shared.

The storage side of the ``GET /products`` page cache; what is cached and why
it stays coherent is told in ``products.responses``. A page is stored with the
catalog version it was computed under; the stores never decide whether it is
current. An unreachable Redis means no caching: it is logged once, skipped for
a back-off of 1 s doubling to 30 s, and its recovery is logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from cachetools import TTLCache
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

#: The catalog cache's logger; the name predates this module and is kept so log filters keep matching.
logger = logging.getLogger("backend_app.products.cache")

#: Bytes charged per in-process entry on top of its key, tag and body (object headers, links).
ENTRY_OVERHEAD_BYTES = 256
#: Socket timeouts of the Redis client, in seconds: a dead Redis must not stall list requests.
REDIS_TIMEOUT_S = 0.5
#: Back-off after a Redis failure, in seconds: first, and longest.
REDIS_RETRY_FIRST_S = 1.0
REDIS_RETRY_MAX_S = 30.0


@dataclass(frozen=True, slots=True)
class CachedPage:
    """One cached list response.

    Attributes:
        version: the catalog version token read *before* the page's query ran.
        etag: the strong entity tag of ``body``.
        body: the JSON body, exactly as sent.
    """

    version: str
    etag: str
    body: bytes


class PageStore(Protocol):
    """Where pages live: :class:`MemoryPageStore` or :class:`RedisPageStore`."""

    async def get(self, key: str) -> CachedPage | None:
        """The page stored under ``key``, or ``None`` (also when the store cannot be reached)."""
        ...

    async def put(self, key: str, page: CachedPage) -> None:
        """Store ``page`` under ``key``; a page larger than the store's byte bound is not stored."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...

    async def claim_fill(self, key: str, version: str) -> bool:
        """Claim the right to compute ``key``'s page under ``version`` across processes (True: go ahead)."""
        ...

    async def release_fill(self, key: str, version: str) -> None:
        """Give up a claim taken by :meth:`claim_fill`."""
        ...


class _BoundedTTLCache(TTLCache[str, tuple[CachedPage, int]]):
    """``cachetools.TTLCache`` (LRU order, per-item TTL) bounded by total bytes *and* by entry count.

    ``maxsize`` is the byte bound (each value is ``(page, bytes)``); the entry
    bound evicts the least recently used entries before a new key is added.
    """

    def __init__(self, *, max_entries: int, max_bytes: int, ttl: float, timer: Callable[[], float]) -> None:
        super().__init__(maxsize=max_bytes, ttl=ttl, timer=timer, getsizeof=lambda value: value[1])
        self.max_entries = max_entries

    def __setitem__(self, key: str, value: tuple[CachedPage, int]) -> None:
        if key not in self:
            while len(self) >= self.max_entries:  # len() drops expired entries first
                self.popitem()
        super().__setitem__(key, value)


class MemoryPageStore:
    """Pages in this process's memory, at most ``max_entries`` pages and ``max_bytes`` bytes.

    An entry's size is its key, tag and body in bytes plus
    :data:`ENTRY_OVERHEAD_BYTES`. Entries expire ``ttl_seconds`` after they
    were stored; the least recently used go first when a bound is reached.

    Args:
        timer: the clock of the TTL, in seconds (tests pass a fake one).
    """

    def __init__(
        self, *, max_entries: int, max_bytes: int, ttl_seconds: float, timer: Callable[[], float] = time.monotonic
    ) -> None:
        self._pages = _BoundedTTLCache(max_entries=max_entries, max_bytes=max_bytes, ttl=ttl_seconds, timer=timer)

    @property
    def entries(self) -> int:
        """Pages held now."""
        return len(self._pages)

    @property
    def bytes(self) -> int:
        """Bytes held now (as charged, see the class docstring)."""
        return int(self._pages.currsize)

    @property
    def max_bytes(self) -> int:
        """The byte bound (``CACHE_MAX_BYTES``)."""
        return int(self._pages.maxsize)

    async def get(self, key: str) -> CachedPage | None:
        """The live page under ``key`` (refreshing its LRU position), or ``None``."""
        entry = self._pages.get(key)
        return entry[0] if entry is not None else None

    async def put(self, key: str, page: CachedPage) -> None:
        """Store ``page``, evicting least recently used pages as the bounds require."""
        size = len(key.encode()) + len(page.etag) + len(page.body) + ENTRY_OVERHEAD_BYTES
        if size <= self.max_bytes:
            self._pages[key] = (page, size)

    async def close(self) -> None:
        """Drop every page."""
        self._pages.clear()

    async def claim_fill(self, key: str, version: str) -> bool:
        """Always True: one process's pages need no cross-process claim (:class:`SingleFlight` suffices)."""
        return True

    async def release_fill(self, key: str, version: str) -> None:
        """Nothing to release."""


class RedisPageStore:
    """Pages in Redis, shared by every worker and host: ``SET <prefix><sha256(key)> <page> EX <ttl>``.

    The value is ``version \\n etag \\n body``. Redis bounds its own memory
    (``maxmemory`` with a ``volatile-*`` policy evicts these expiring keys);
    a page over ``max_bytes`` is not stored. Any Redis error (unreachable,
    timeout) makes :meth:`get` a miss and :meth:`put` a no-op, is logged once,
    and Redis is not called again for a back-off of 1 s doubling to 30 s.

    Args:
        url: ``redis://[:password@]host:port/db``, ``rediss://...`` or ``unix://...``.
        prefix: key prefix, naming the database so two catalogs never share pages.
    """

    def __init__(
        self, url: str, *, prefix: str, ttl_seconds: int, max_bytes: int, fill_wait_seconds: float = 2.0
    ) -> None:
        self._redis = Redis.from_url(
            url,
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),  # our back-off below; the client's default retries would stall requests
        )
        self.prefix = prefix
        self.ttl_seconds = ttl_seconds
        self.max_bytes = max_bytes
        self.fill_wait_seconds = fill_wait_seconds
        self._skip_until = 0.0
        self._backoff = REDIS_RETRY_FIRST_S
        self._down = False

    def redis_key(self, key: str) -> str:
        """The Redis key of a page key."""
        return self.prefix + hashlib.sha256(key.encode()).hexdigest()

    async def get(self, key: str) -> CachedPage | None:
        """The page under ``key``, or ``None`` when absent or Redis fails."""
        if not self._available():
            return None
        try:
            raw = await self._redis.get(self.redis_key(key))
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return None
        self._succeeded()
        parts = raw.split(b"\n", 2) if raw is not None else []
        if len(parts) != 3:  # absent, or not written by this class
            return None
        version, etag, body = parts
        return CachedPage(version=version.decode(), etag=etag.decode(), body=body)

    async def put(self, key: str, page: CachedPage) -> None:
        """Store ``page`` for ``ttl_seconds``; nothing when it is too large or Redis fails."""
        if len(page.body) > self.max_bytes or not self._available():
            return
        value = b"\n".join((page.version.encode(), page.etag.encode(), page.body))
        try:
            await self._redis.set(self.redis_key(key), value, ex=self.ttl_seconds)
        except (RedisError, OSError) as exc:
            self._failed(exc)
        else:
            self._succeeded()

    async def close(self) -> None:
        """Close the client's connections."""
        await self._redis.aclose()

    def _fill_key(self, key: str, version: str) -> str:
        return f"{self.redis_key(key)}:fill:{version}"

    async def claim_fill(self, key: str, version: str) -> bool:
        """``SET <key>:fill:<version> 1 NX PX <fill_wait>``: True when taken (or Redis fails: compute locally)."""
        if not self._available() or self.fill_wait_seconds <= 0:
            return True
        try:
            taken = await self._redis.set(
                self._fill_key(key, version), b"1", nx=True, px=max(1, int(self.fill_wait_seconds * 1000))
            )
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return True
        return bool(taken)

    async def release_fill(self, key: str, version: str) -> None:
        """Delete the claim (it also expires on its own after ``fill_wait_seconds``)."""
        if not self._available():
            return
        try:
            await self._redis.delete(self._fill_key(key, version))
        except (RedisError, OSError) as exc:
            self._failed(exc)

    def _available(self) -> bool:
        return not self._down or time.monotonic() >= self._skip_until

    def _failed(self, exc: Exception) -> None:
        if not self._down:
            logger.warning(
                "catalog cache: Redis unreachable (%s); serving product lists from the database", type(exc).__name__
            )
        else:
            self._backoff = min(self._backoff * 2, REDIS_RETRY_MAX_S)
        self._down = True
        self._skip_until = time.monotonic() + self._backoff

    def _succeeded(self) -> None:
        if self._down:
            logger.info("catalog cache: Redis reachable again; caching product lists")
            self._down = False
            self._backoff = REDIS_RETRY_FIRST_S


#: How often a process waiting for another process's page polls the cache, in seconds.
FILL_POLL_SECONDS = 0.02


async def fill_page(store: PageStore, key: str, version: str, make: Callable[[], Awaitable[CachedPage]]) -> CachedPage:
    """The page of ``key`` under ``version``: computed here by ``make()`` and stored, or by the process holding the fill claim.

    With a store that claims fills across processes (Redis), a process that
    finds the claim held polls the store every :data:`FILL_POLL_SECONDS` for at
    most ``store.fill_wait_seconds``, then computes the page itself.

    Raises:
        Whatever ``make`` raises; nothing is stored then.
    """
    claimed = await store.claim_fill(key, version)
    if not claimed:
        deadline = time.monotonic() + getattr(store, "fill_wait_seconds", 0.0)
        while time.monotonic() < deadline:
            await asyncio.sleep(FILL_POLL_SECONDS)
            page = await store.get(key)
            if page is not None and page.version == version:
                return page
    try:
        page = await make()
        await store.put(key, page)
        return page
    finally:
        if claimed:
            await store.release_fill(key, version)
