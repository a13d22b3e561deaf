"""The catalog page cache on the app: built from settings at start-up, found on ``app.state`` per request."""

from __future__ import annotations

from starlette.requests import Request

from backend_app.core.single_flight import SingleFlight
from backend_app.products.page_store import MemoryPageStore, PageStore, RedisPageStore
from config import Settings


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


def page_cache(request: Request) -> PageStore | None:
    """The store the app's lifespan put on ``app.state.catalog_cache`` (``None``: caching off)."""
    return getattr(request.app.state, "catalog_cache", None)


def catalog_flights(request: Request) -> SingleFlight:
    """The app's single-flight of catalog list queries (``app.state.catalog_flights``, made on first use)."""
    state = request.app.state
    flights = getattr(state, "catalog_flights", None)
    if flights is None:
        flights = state.catalog_flights = SingleFlight()
    return flights
