"""The catalog GET responses: conditional GETs and a coherent server-side cache of ``GET /products`` pages.

Both routes answer with a strong ``ETag`` and ``Cache-Control: no-cache`` (``public``
for anonymous callers, ``private`` with ``Authorization``) and ``304`` to a matching
``If-None-Match``. List pages are cached under the route's validated parameters and
served only while the catalog version they were computed under is current (one point
read per request), so a write through any process invalidates every process's pages;
concurrent misses share one query. The detail view is never cached on the server (it
shows stock, which orders change without bumping the version). Design, failure cases
and settings: docs/architecture.md (Catalog caching).

Who does what: this module builds the two responses; ``products.page_store`` keeps
pages (memory or Redis) and coordinates fills across processes;
``products.cache_wiring`` puts the store on the app; ``products.catalog_version``
bumps the version; ``core.single_flight`` shares one query among concurrent misses.
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
