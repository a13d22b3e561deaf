"""The ASGI application: ``create_app()`` wires settings, database, routers and error handling.

Nothing is built at import: uvicorn calls the factory (``python -m backend_app serve``,
or ``uvicorn --factory backend_app.main:create_app``). ``backend_app.main:app`` still
works, built on first access.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from backend_app import __version__
from backend_app.audit import repository as audit_repository
from backend_app.audit.router import router as audit_router
from backend_app.auth import repository as auth_repository
from backend_app.auth import throttles as auth_throttles
from backend_app.auth.router import router as auth_router
from backend_app.auth.session_cache import LocalWrites, create_session_cache
from backend_app.auth.users_router import router as users_router
from backend_app.core.db import IndexInstaller, create_client, ensure_indexes
from backend_app.core.errors import DomainError, install_error_handlers
from backend_app.core.health import router as health_router
from backend_app.core.logging import configure_logging
from backend_app.core.metrics import router as metrics_router
from backend_app.core.metrics import worker_stopped
from backend_app.core.middleware import install_middleware
from backend_app.core.tracing import DatabaseCommandSpans, instrument, tracer_provider_from_env
from backend_app.dashboard.router import router as dashboard_router
from backend_app.events import repository as events_repository
from backend_app.events import service as events_service
from backend_app.events.router import router as events_router
from backend_app.idempotency import repository as idempotency_repository
from backend_app.orders import faults as order_faults
from backend_app.orders import forwarding as order_forwarding
from backend_app.orders import placement as order_placement
from backend_app.orders import repository as orders_repository
from backend_app.orders import service as orders_service
from backend_app.orders.router import router as orders_router
from backend_app.products import indexes as products_indexes
from backend_app.products.cache_wiring import create_page_cache
from backend_app.products.router import router as products_router
from backend_app.users import repository as users_repository
from backend_app.webhooks import openapi as webhooks_openapi
from backend_app.webhooks import repository as webhooks_repository
from backend_app.webhooks import urlguard
from backend_app.webhooks.dispatcher import Dispatcher
from backend_app.webhooks.router import router as webhooks_router
from backend_app.webhooks.service import sweep_deliveries
from config import Settings, get_settings

logger = logging.getLogger(__name__)

#: Each domain's index installer, run at start-up, so every list query has an index.
INDEX_INSTALLERS: list[IndexInstaller] = [
    products_indexes.ensure_indexes,
    orders_repository.ensure_indexes,
    users_repository.ensure_indexes,
    auth_repository.ensure_indexes,
    idempotency_repository.ensure_indexes,
    audit_repository.ensure_indexes,
    events_repository.ensure_indexes,
    webhooks_repository.ensure_indexes,
    # After the indexes: converts stock stored before on-hand/allocated (a no-op once recorded).
    orders_service.convert_to_inventory_model,
]
INDEX_RETRY_SECONDS = 5.0
#: Paths (and everything under them) whose responses carry tokens or personal data, never to be
#: stored by a cache (RFC 6749 §5.1, RFC 9111 §5.2.2.5), and the metrics scrape.
NO_STORE_PATHS = (
    *(
        router.prefix
        for router in (
            auth_router,
            users_router,
            orders_router,
            dashboard_router,
            audit_router,
            events_router,
            webhooks_router,
        )
    ),
    "/metrics",
)


async def _ensure_indexes_until_done(app: FastAPI) -> None:
    """Ensure indexes, retrying while the database is unreachable (the app keeps serving /health)."""
    while True:
        try:
            await ensure_indexes(app.state.db, INDEX_INSTALLERS)
        except DomainError:
            logger.warning("database unreachable at start-up; retrying index creation in %.0fs", INDEX_RETRY_SECONDS)
            await asyncio.sleep(INDEX_RETRY_SECONDS)
        else:
            app.state.indexes_ready = True
            logger.info("indexes ensured")
            return


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the process's one ``AsyncMongoClient``, catalog page cache and session cache (with its change
    feed), ensure indexes, start the order expiry sweeper, the events retention sweeper and the webhook
    dispatcher; stop them and close all on shutdown.

    ``app.state.indexes_ready`` turns true once the indexes are ensured (``GET /health/ready``).
    """
    settings: Settings = app.state.settings
    provider = app.state.tracer_provider
    app.state.indexes_ready = False
    session_cache = app.state.session_cache = create_session_cache(settings)
    listeners: list[Any] = [DatabaseCommandSpans(provider)] if provider is not None else []
    if session_cache is not None:
        listeners.append(LocalWrites(session_cache))
    client = create_client(settings, listeners=listeners)
    app.state.mongo_client = client
    app.state.db = client[settings.mongodb_db]
    if session_cache is not None:
        session_cache.watch(app.state.db)
    app.state.catalog_cache = create_page_cache(settings)
    order_faults.configure(settings.app_env)
    index_task = asyncio.create_task(_ensure_indexes_until_done(app))
    # Every process sweeps; conditional state changes make concurrent sweepers safe.
    sweeper = asyncio.create_task(
        orders_service.run_expiry_sweeper(
            app.state.db,
            ttl_seconds=settings.order_pending_ttl_seconds,
            interval_s=settings.order_sweep_interval_seconds,
        )
    )
    # Every process sweeps old events (and their deliveries); deleting one twice is harmless.
    events_sweeper = asyncio.create_task(
        events_service.run_retention_sweeper(
            app.state.db,
            retention_days=settings.events_retention_days,
            interval_s=settings.events_sweep_interval_seconds,
            also=[sweep_deliveries],
        )
    )
    # Every process dispatches webhooks; leases keep each delivery in one process at a time.
    app.state.webhook_dispatcher = Dispatcher(app.state.db, settings, resolver=app.state.webhook_resolver)
    dispatcher = (
        asyncio.create_task(app.state.webhook_dispatcher.run()) if settings.webhook_dispatcher_enabled else None
    )
    # Every process takes part in electing the placement leader; the lease is only a hint.
    leader = (
        await order_forwarding.start_leader(
            order_forwarding.PlacementLeader(
                app.state.db,
                signing_key=settings.signing_key,
                host=settings.order_forward_host,
                timeout_s=settings.order_forward_timeout_seconds,
                place_locally=order_placement.place_here,
                group=settings.order_forward_group,
            )
        )
        if settings.order_forwarding
        else None
    )
    # Wait for the first attempt so a healthy database has its indexes before traffic.
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(
            asyncio.shield(index_task), timeout=settings.mongodb_server_selection_timeout_ms / 1000 + 1
        )
    try:
        yield
    finally:
        if leader is not None:
            await order_forwarding.stop_leader(leader)
        for task in (dispatcher, sweeper, events_sweeper, index_task):
            if task is None:
                continue
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if app.state.session_cache is not None:
            await app.state.session_cache.close()
        await client.close()
        if app.state.catalog_cache is not None:
            await app.state.catalog_cache.close()
        worker_stopped()


def create_app(settings: Settings | None = None, *, tracer_provider: Any | None = None) -> FastAPI:
    """Build the storefront application.

    Args:
        settings: configuration to use; defaults to :func:`config.get_settings`.
        tracer_provider: an OpenTelemetry ``TracerProvider`` to trace with;
            defaults to the one the ``OTEL_*`` variables ask for, if any
            (``core.tracing``; tracing is off when they are unset).

    Returns:
        A FastAPI app whose lifespan opens the database client, with JSON
        logging configured and the hardening middleware of ``core.middleware``
        (proxy headers, request id, access log, security headers, CORS, rate
        limits, body size limit) installed.
    """
    settings = settings or get_settings()
    configure_logging(settings)
    # FastAPIOffline: /docs and /redoc with Swagger UI and ReDoc assets served by the app, no CDN, so they work offline.
    app = FastAPIOffline(
        title="storefront",
        version=__version__,
        summary="A multi-tenant e-commerce API: catalog and orders on MongoDB.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.tracer_provider = None
    install_error_handlers(app)
    install_middleware(
        app,
        settings,
        no_store_paths=NO_STORE_PATHS,
        strict_rate_limited_paths=auth_throttles.RATE_LIMITED_PATHS,
        per_address_prefixes=(auth_throttles.PER_ADDRESS_PREFIX,),
    )
    auth_throttles.install_throttles(app, settings)
    provider = tracer_provider if tracer_provider is not None else tracer_provider_from_env()
    if provider is not None:
        instrument(app, provider)
    app.include_router(health_router)
    app.include_router(metrics_router)
    app.include_router(products_router)
    app.include_router(orders_router)
    app.include_router(auth_router)
    app.include_router(users_router)
    app.include_router(dashboard_router)
    app.include_router(audit_router)
    app.include_router(events_router)
    app.include_router(webhooks_router)
    webhooks_openapi.install(app)
    # How webhook hosts are resolved (checked, then connected to): tests replace it before the lifespan starts.
    app.state.webhook_resolver = urlguard.system_resolver
    return app


def __getattr__(name: str) -> Any:
    """``backend_app.main.app``: an app built by :func:`create_app` on first access, not at import.

    The supported entry points call the factory (``python -m backend_app serve``,
    ``uvicorn --factory backend_app.main:create_app``); this keeps plain
    ``uvicorn backend_app.main:app`` and ``from backend_app.main import app``
    working for tools that expect a module-level app (PEP 562).
    """
    if name == "app":
        built = globals()["app"] = create_app()
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
