"""MongoDB access: one ``AsyncMongoClient`` per process, opened in the app lifespan.

Spec §9: PyMongo's async API, one client per process, indexes ensured at
start-up. Repositories receive an ``AsyncDatabase`` through the ``Database``
dependency alias; nothing else in the app creates clients.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Annotated, Any

import pymongo
from fastapi import Depends, Request
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from backend_app.core.errors import DomainError, ServiceUnavailableError
from backend_app.core.metrics import DatabaseCommandMetrics
from config import Settings

MongoDatabase = AsyncDatabase[dict[str, Any]]
IndexInstaller = Callable[[MongoDatabase], Awaitable[None]]


def create_client(
    settings: Settings, *, listeners: Sequence[monitoring.CommandListener] = ()
) -> AsyncMongoClient[dict[str, Any]]:
    """Create the process's client for ``settings.effective_mongodb_uri``.

    The client connects lazily; ``tz_aware`` makes datetimes come back in UTC.
    Every command is timed into ``db_command_duration_seconds``
    (``core.metrics``); ``listeners`` adds more command listeners (tracing).
    """
    return AsyncMongoClient(
        settings.effective_mongodb_uri,
        tz_aware=True,
        serverSelectionTimeoutMS=settings.mongodb_server_selection_timeout_ms,
        appname="storefront",
        event_listeners=[DatabaseCommandMetrics(), *listeners],
    )


def get_database(request: Request) -> MongoDatabase:
    """FastAPI dependency: the application's database (``MONGODB_DB``)."""
    return request.app.state.db


Database = Annotated[MongoDatabase, Depends(get_database)]


async def ping(db: MongoDatabase, *, timeout_s: float = 2.0) -> bool:
    """Return whether the database answers ``ping`` within ``timeout_s`` seconds."""
    try:
        await asyncio.wait_for(db.command("ping"), timeout=timeout_s)
    except (PyMongoError, TimeoutError, OSError):
        return False
    return True


async def ensure_indexes(db: MongoDatabase, installers: list[IndexInstaller]) -> None:
    """Run each domain's index installer; ``create_index`` is idempotent (spec §4).

    Raises:
        ServiceUnavailableError: the database could not be reached.
    """
    try:
        for install in installers:
            await install(db)
    except PyMongoError as exc:
        raise ServiceUnavailableError("The database is unreachable; indexes could not be ensured.") from exc


async def run_in_transaction(
    client: AsyncMongoClient[dict[str, Any]],
    work: Callable[[AsyncClientSession], Awaitable[Any]],
) -> Any:
    """Run ``work(session)`` in a multi-document transaction and return its result.

    Uses the driver's ``with_transaction``, which retries the whole callback on
    ``TransientTransactionError`` (write conflicts between concurrent
    transactions) and the commit on ``UnknownTransactionCommitResult``.
    Exceptions raised by ``work`` abort the transaction and propagate.
    """
    async with client.start_session() as session:
        return await session.with_transaction(work)


@contextlib.contextmanager
def query_deadline(max_time_ms: int, *, error: Callable[[], DomainError]) -> Iterator[None]:
    """Bound every database operation in the block to ``max_time_ms`` ms in total, on the client's clock.

    Uses PyMongo's client-side operation timeout (``pymongo.timeout``): each
    command carries the time left as ``maxTimeMS`` *and* the driver stops
    waiting for the reply when it runs out, closing that connection. So the
    caller gets its answer on time even when the server does not stop (the
    embedded server checks ``maxTimeMS`` only while filtering, never while
    sorting; issue 11). Every timeout the driver reports inside the block
    (``ExecutionTimeout`` from the server, ``NetworkTimeout`` from the client,
    any ``PyMongoError`` whose ``timeout`` is true) becomes ``error()``.

    Raises:
        DomainError: ``error()`` (e.g. 503 ``query_timeout``) when the time ran out.
    """
    try:
        with pymongo.timeout(max_time_ms / 1000):
            yield
    except PyMongoError as exc:
        if exc.timeout:
            raise error() from None
        raise
