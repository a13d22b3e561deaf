"""Cheap catalog reads: conditional GETs and a coherent server-side cache of ``GET /products`` pages.

HTTP caching (both GET routes)
    Every ``GET /products`` and ``GET /products/{id}`` response carries a
    strong ``ETag`` (a hash of the body bytes) and ``Cache-Control``; an
    ``If-None-Match`` naming the current tag gets ``304`` with no body
    (``core.http_cache``). Both use :data:`REVALIDATE` (``no-cache``): a
    client or proxy may keep the response but must revalidate it on every use,
    so nothing stale is ever reused, and the revalidation is cheap (a cached
    list page answers it without a list query). ``public`` only for anonymous
    requests; ``private`` when ``Authorization`` is sent.

    The detail view is *not* cached on the server: it shows ``stock``, which
    every order changes, and orders do not bump the catalog version (below);
    its ``ETag`` still changes with the stock, because it hashes the body.

Server-side page cache (``GET /products``)
    Pages are keyed by the request's normalised query string
    (:func:`~backend_app.core.http_cache.normalized_query`: parameters sorted,
    declared defaults made explicit), so any list parameter the route declares
    is part of the key with no change here. The body does not depend on the
    caller (list items carry no stock and no per-user data), so one entry
    serves everyone; only ``Cache-Control`` differs per request.

    Coherence across workers and hosts comes from a **catalog version** kept in
    MongoDB (``catalog_meta``; ``products.repository.get_catalog_version``):
    every catalog write calls :func:`catalog_changed` once it has completed,
    which increments it. A page is stored together with the version it was
    computed under and served only while that is still the current version,
    which costs one point read per list request. So a write made through any
    process invalidates every process's pages at once, whether they are in
    process memory or in Redis. Orders change stock, which list pages do not
    show, so they do not bump the version and do not flush the list cache.

    Storage: in process (``cachetools.TTLCache``, least recently used evicted
    first, bounded by ``CACHE_MAX_ENTRIES`` pages and ``CACHE_MAX_BYTES`` bytes)
    or, with ``CACHE_URI=redis://...``, in Redis, shared by every worker and
    host. Entries also expire after ``CACHE_TTL_SECONDS``, which bounds what an
    edit made directly in the database (not through the API) can leave behind.
    ``CACHE_ENABLED=false`` turns the server-side cache off (no version read).

Single-flight (one query per miss)
    Concurrent requests missing the same page under the same catalog version
    share one computation: the first starts it as a task of its own (so a
    client hanging up does not cancel it for the others) and the rest await
    that task (:class:`SingleFlight`, per process). With the Redis store, the
    process that computes also takes a short Redis lock
    (``SET <page key>:fill:<version> NX PX``); other processes that miss while
    it is held poll the cache every 20 ms for the page instead of querying,
    for at most ``CACHE_FILL_WAIT_SECONDS``, after which they compute it
    themselves (a crashed holder only delays them, the lock expires). The
    version read per request is not shared: it is what keeps pages coherent.
    An unreachable Redis means no caching (pages come from the database): it is
    logged once, skipped for a back-off of 1 s doubling to 30 s, and its
    recovery is logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from cachetools import TTLCache
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from backend_app.core import http_cache, metrics
from backend_app.core.db import MongoDatabase
from backend_app.products import repository
from config import Settings

logger = logging.getLogger(__name__)

#: ``Cache-Control`` directives of both catalog GETs (after ``public``/``private``): store, but revalidate each use.
REVALIDATE = "no-cache"
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

    def __setitem__(self, key: str, value: tuple[CachedPage, int]) -> None:  # type: ignore[override]
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


def create_page_cache(settings: Settings) -> PageStore | None:
    """The app's page store from ``CACHE_*`` settings: ``None`` when ``CACHE_ENABLED`` is false."""
    if not settings.cache_enabled:
        return None
    if settings.cache_uri:
        return RedisPageStore(
            settings.cache_uri,
            prefix=f"storefront:{settings.mongodb_db}:catalog:list:",
            ttl_seconds=settings.cache_ttl_seconds,
            max_bytes=settings.cache_max_bytes,
            fill_wait_seconds=settings.cache_fill_wait_seconds,
        )
    return MemoryPageStore(
        max_entries=settings.cache_max_entries,
        max_bytes=settings.cache_max_bytes,
        ttl_seconds=settings.cache_ttl_seconds,
    )


#: How often a process waiting for another process's page polls the cache, in seconds.
FILL_POLL_SECONDS = 0.02


class SingleFlight:
    """Concurrent callers asking for the same key share one run of the work (one per process).

    The work runs as its own task, so a caller that goes away (client hung up)
    does not cancel it for the others; every caller gets its result or its
    exception. The key is forgotten as soon as the work finishes, so a later
    call runs the work again (the page cache, not this, remembers results).
    """

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Task[Any]] = {}

    @property
    def in_flight(self) -> int:
        """Keys being computed now."""
        return len(self._running)

    async def run(self, key: str, work: Callable[[], Awaitable[Any]]) -> Any:
        """``await work()`` once for all concurrent callers with ``key``; returns (or raises) its outcome."""
        task = self._running.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(work())
            self._running[key] = task
            task.add_done_callback(lambda done, key=key: self._forget(key, done))
        return await asyncio.shield(task)

    def _forget(self, key: str, task: asyncio.Task[Any]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # retrieved: a failure every caller already saw is not "never retrieved"


def _flights(request: Request) -> SingleFlight:
    state = request.app.state
    flights = getattr(state, "catalog_flights", None)
    if flights is None:
        flights = state.catalog_flights = SingleFlight()
    return flights


async def _fill(store: PageStore, key: str, version: str, make: Callable[[], Awaitable[CachedPage]]) -> CachedPage:
    """The page of ``key`` under ``version``: computed here, or by the process holding the fill claim."""
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


def page_cache(request: Request) -> PageStore | None:
    """The store the app's lifespan put on ``app.state.catalog_cache`` (``None``: caching off)."""
    return getattr(request.app.state, "catalog_cache", None)


async def list_response(request: Request, db: MongoDatabase, compute: Callable[[], Awaitable[Any]]) -> Response:
    """The ``GET /products`` response, from the page cache when it holds the page for the current version.

    Order of operations, and why it never serves a stale page as current:

    1. read the catalog version ``v`` (one point read);
    2. if the cache holds this query's page stored under ``v``, send it;
    3. otherwise run the query (``compute()``), render it, and store it under
       ``v`` (the version read in 1, **before** the query), then send it.
       Concurrent misses of the same page under ``v`` share that one query
       (single-flight, module docstring); sharing keeps the argument below,
       since every sharer read ``v`` and the query started after ``v`` was read.

    A writer bumps the version only *after* its write has completed
    (:func:`catalog_changed`). So a page stored under ``v`` came from a query
    that started after ``v`` became current, hence after every write whose
    bump led to ``v`` had completed: it shows all of them. A request that
    starts after a write has returned reads a version at least as new as that
    write's bump, so it can only be served a page that shows the write. A
    page computed while a write is under way may miss the write, but it is
    stored under the version from before that write's bump and is never
    served once the bump has happened. (Reading the version after the query
    instead would let a bump land between the two and label pre-write data
    with the post-write version.) Two requests computing one page across a
    bump may store in either order; an older page stored last is only a miss
    for the next request, never served.

    Args:
        request: the list request; its normalised query string is the key.
        db: the application's database (the version lives there).
        compute: runs the list query and returns the route's response model.

    Returns:
        ``200`` with ``ETag`` and ``Cache-Control``, or ``304``.

    Raises:
        Whatever ``compute`` raises (e.g. 422 for a bad pattern); nothing is cached then.
    """
    store = page_cache(request)
    control = http_cache.cache_control(request, REVALIDATE)
    if store is None:
        body = http_cache.render_json(request, await compute())
        return http_cache.conditional_response(request, body=body, cache_control=control)
    key = http_cache.normalized_query(request)
    version = await repository.get_catalog_version(db)
    page = await store.get(key)
    hit = page is not None and page.version == version
    metrics.page_cache_lookup(hit=hit)
    if not hit:

        async def make() -> CachedPage:
            body = http_cache.render_json(request, await compute())
            return CachedPage(version=version, etag=http_cache.entity_tag(body), body=body)

        page = await _flights(request).run(f"{version}\n{key}", lambda: _fill(store, key, version, make))
    return http_cache.conditional_response(request, body=page.body, etag=page.etag, cache_control=control)


def detail_response(request: Request, product: Any) -> Response:
    """The ``GET /products/{id}`` response for ``product`` (the route's response model): ``200`` or ``304``.

    Not cached on the server (it shows stock, which orders change); the
    ``ETag`` hashes the body, so it changes with the stock too.
    """
    body = http_cache.render_json(request, product)
    return http_cache.conditional_response(
        request, body=body, cache_control=http_cache.cache_control(request, REVALIDATE)
    )


async def catalog_changed(db: MongoDatabase) -> None:
    """Record that the catalog changed: bump the catalog version, so every cached list page is out of date.

    Call it from each catalog write of ``products.service`` (create, replace,
    update, delete, set quantity) **after** the write has completed, never
    before: a list request that reads the new version and then queries must
    see the write. Bumped before the write, a request could read the new
    version, query the old data before the write lands, and store that page
    under the new version, where it would be served as current until the next
    write. Orders need not call it: they change only stock, which list pages
    do not show.

    If the bump itself fails (database gone between the write and the bump),
    the error propagates; pages can then be out of date for at most
    ``CACHE_TTL_SECONDS``.
    """
    await repository.bump_catalog_version(db)
