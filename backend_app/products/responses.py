"""The catalog GET responses: conditional GETs and a coherent server-side cache of ``GET /products`` pages.

Who does what: this module builds the two responses; ``products.page_store``
keeps pages (memory or Redis) and coordinates fills across processes;
``products.cache_wiring`` puts the store on the app; ``products.catalog_version``
bumps the version after a catalog write; ``core.single_flight`` shares one
query among concurrent misses.

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
    Pages are keyed by the route's *validated* parameters
    (:func:`~backend_app.core.http_cache.cache_key`), never by the raw query
    string: an undeclared parameter (``?junk=N``) is ignored, as FastAPI
    ignores it, so it cannot add an entry per value and crowd out the pages
    (or, in a shared Redis, other keys); spellings of one value share a page. The body does not depend on the
    caller (list items carry no stock and no per-user data), so one entry
    serves everyone; only ``Cache-Control`` differs per request.

    Coherence across workers and hosts comes from a **catalog version** kept in
    MongoDB (``catalog_meta``; ``products.catalog_meta.get_catalog_version``):
    every catalog write calls ``products.catalog_version.catalog_changed`` once it has completed,
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
    that task (``core.single_flight.SingleFlight``, per process). With the Redis store, the
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

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from backend_app.core import http_cache, metrics
from backend_app.core.db import MongoDatabase
from backend_app.products import catalog_meta
from backend_app.products.cache_wiring import catalog_flights, page_cache
from backend_app.products.page_store import CachedPage, fill_page

#: ``Cache-Control`` directives of both catalog GETs (after ``public``/``private``): store, but revalidate each use.
REVALIDATE = "no-cache"


async def list_response(
    request: Request, db: MongoDatabase, compute: Callable[[], Awaitable[Any]], *, params: Mapping[str, Any]
) -> Response:
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
    (``products.catalog_version.catalog_changed``). So a page stored under ``v`` came from a query
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
        request: the list request.
        db: the application's database (the version lives there).
        compute: runs the list query and returns the route's response model.
        params: every validated parameter that shapes the page (``None`` when unused): the cache key.

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
    key = http_cache.cache_key(request.url.path, params)
    version = await catalog_meta.get_catalog_version(db)
    page = await store.get(key)
    hit = page is not None and page.version == version
    metrics.page_cache_lookup(hit=hit)
    if not hit or page is None:  # a hit has a page

        async def make() -> CachedPage:
            body = http_cache.render_json(request, await compute())
            return CachedPage(version=version, etag=http_cache.entity_tag(body), body=body)

        page = await catalog_flights(request).run(f"{version}\n{key}", lambda: fill_page(store, key, version, make))
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
