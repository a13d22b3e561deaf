"""MongoDB access: one ``AsyncMongoClient`` per process, opened in the app lifespan.

PyMongo's async API, one client per process, indexes ensured at
start-up. Repositories receive an ``AsyncDatabase`` through the ``Database``
dependency alias; nothing else in the app creates clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Annotated, Any

import pymongo
from fastapi import Depends, Request
from pymongo import AsyncMongoClient, WriteConcern, monitoring
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure, PyMongoError, ServerSelectionTimeoutError

from backend_app.core.errors import (
    DatabaseUnavailableError,
    DomainError,
    ServiceUnavailableError,
    TransactionConflictError,
)
from backend_app.core.metrics import DatabaseCommandMetrics
from config import Settings

MongoDatabase = AsyncDatabase[dict[str, Any]]
#: Write concern of every write that a ``201``/``200`` promises (orders, stock, status changes): acknowledged
#: only once a majority of the replica set has it in its journal, so it survives the crash of any minority of members.
DURABLE = WriteConcern("majority", j=True)
#: How long :func:`run_in_transaction` keeps re-running a transaction that lost a write conflict, in seconds.
TRANSACTION_RETRY_SECONDS = 10.0
IndexInstaller = Callable[[MongoDatabase], Awaitable[None]]

logger = logging.getLogger(__name__)
#: Callbacks of the transaction attempt each session is running (:func:`after_commit`).
_after_commit: weakref.WeakKeyDictionary[AsyncClientSession, list[Callable[[], None]]] = weakref.WeakKeyDictionary()


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


async def get_database(request: Request) -> MongoDatabase:
    """FastAPI dependency: the application's database (``MONGODB_DB``; ``async``: no thread-pool hop per request)."""
    db: MongoDatabase = request.app.state.db
    return db


Database = Annotated[MongoDatabase, Depends(get_database)]


async def ping(db: MongoDatabase, *, timeout_s: float = 2.0) -> bool:
    """Return whether the database answers ``ping`` within ``timeout_s`` seconds."""
    try:
        await asyncio.wait_for(db.command("ping"), timeout=timeout_s)
    except (PyMongoError, TimeoutError, OSError):
        return False
    return True


async def ensure_indexes(db: MongoDatabase, installers: list[IndexInstaller]) -> None:
    """Run each domain's index installer (every list query has its index); ``create_index`` is idempotent.

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
    *,
    write_concern: WriteConcern = DURABLE,
    retry_seconds: float = TRANSACTION_RETRY_SECONDS,
) -> Any:
    """Run ``work(session)`` in a multi-document transaction and return its result.

    Like the driver's ``with_transaction`` (re-runs the whole callback on
    ``TransientTransactionError``, i.e. write conflicts between concurrent
    transactions, and retries a commit whose result is unknown), with two
    differences:

    - a lost connection or a server that cannot be selected is not retried
      here: it raises :class:`DatabaseUnavailableError` (503) at once, so a
      request during an outage fails within the server selection timeout
      instead of retrying for the driver's 120 s;
    - conflicts are retried for ``retry_seconds`` (default 10 s), then
      :class:`TransactionConflictError` (503) is raised.

    The commit uses ``write_concern`` (default :data:`DURABLE`: majority, journaled).

    Raises:
        DatabaseUnavailableError: the database could not be reached (503).
        TransactionConflictError: write conflicts outlasted ``retry_seconds`` (503).
        Exception: whatever ``work`` raises (the transaction is aborted).
    """
    deadline = time.monotonic() + retry_seconds
    attempt = 0
    async with client.start_session() as session:
        while True:
            attempt += 1
            await session.start_transaction(write_concern=write_concern)
            # A re-run is a new attempt: what an aborted attempt registered is dropped with it.
            callbacks = _after_commit[session] = []
            try:
                result = await work(session)
                await _commit(session, deadline)
            except ConnectionFailure as exc:
                await _abandon(session)
                raise DatabaseUnavailableError() from exc
            except PyMongoError as exc:
                await _abandon(session)
                if exc.has_error_label("TransientTransactionError"):
                    if time.monotonic() >= deadline:
                        raise TransactionConflictError() from exc
                    await asyncio.sleep(random.random() * min(0.005 * 1.5**attempt, 0.5))  # noqa: S311 - jitter
                    continue
                raise
            except BaseException:
                await _abandon(session)
                raise
            finally:
                _after_commit.pop(session, None)
            for callback in callbacks:
                try:
                    callback()
                except Exception:  # the commit stands: a failing callback must not turn it into an error
                    logger.exception("after-commit callback failed")
            return result


def after_commit(session: AsyncClientSession, callback: Callable[[], None]) -> bool:
    """Call ``callback()`` once the transaction ``session`` is running has committed (never if it aborts).

    Only for transactions run by :func:`run_in_transaction`: the driver itself
    signals no commit. The callback runs on the event loop right after the
    commit is acknowledged, before ``run_in_transaction`` returns; it must not
    block. A commit whose outcome stayed unknown counts as not committed (the
    callback is not called), so a caller must tolerate a committed change whose
    callback never ran.

    Returns:
        Whether the callback was registered (``False``: ``session`` is not in a
        transaction run by :func:`run_in_transaction`; nothing will be called).
    """
    callbacks = _after_commit.get(session) if session.in_transaction else None
    if callbacks is None:
        return False
    callbacks.append(callback)
    return True


async def _commit(session: AsyncClientSession, deadline: float) -> None:
    """Commit, retrying while the result is unknown (the driver's rule) until ``deadline``."""
    while True:
        try:
            await session.commit_transaction()
        except ConnectionFailure:
            raise
        except PyMongoError as exc:
            if exc.has_error_label("UnknownTransactionCommitResult") and time.monotonic() < deadline:
                continue
            raise
        return


async def _abandon(session: AsyncClientSession) -> None:
    """Abort the session's transaction if one is open; errors ignored (the server aborts it itself)."""
    if session.in_transaction:
        with contextlib.suppress(PyMongoError, TimeoutError):
            await asyncio.wait_for(session.abort_transaction(), timeout=1.0)


@contextlib.contextmanager
def query_deadline(
    max_time_ms: int, *, error: Callable[[], DomainError], client: AsyncMongoClient[Any] | None = None
) -> Iterator[None]:
    """Bound every database operation in the block to ``max_time_ms`` ms in total, on the client's clock.

    Uses PyMongo's client-side operation timeout (``pymongo.timeout``): each
    command carries the time left as ``maxTimeMS`` *and* the driver stops
    waiting for the reply when it runs out, closing that connection. So the
    caller gets its answer on time even when the server does not stop (the
    embedded server checks ``maxTimeMS`` only while filtering, never while
    sorting). Every timeout the driver reports inside the block
    (``ExecutionTimeout`` from the server, ``NetworkTimeout`` from the client,
    any ``PyMongoError`` whose ``timeout`` is true) becomes ``error()``, except
    a server selection time-out: no reachable server is an outage, left to the
    central ``database_unavailable`` mapping.

    While ``client`` knows no readable server (an outage under way, or a
    topology not discovered yet) the bound is at most the server selection
    timeout: under a client-side timeout the driver keeps retrying server
    selection until the whole deadline is spent, and an outage must answer 503
    within the selection timeout plus 1 s, not after the query deadline.

    Raises:
        DomainError: ``error()`` (e.g. 503 ``query_timeout``) when the time ran out.
    """
    seconds = max_time_ms / 1000
    if client is not None and not client.topology_description.has_readable_server():
        seconds = min(seconds, client.options.server_selection_timeout)
    try:
        with pymongo.timeout(seconds):
            yield
    except PyMongoError as exc:
        # No server to send the query to is an outage (503 database_unavailable,
        # mapped centrally), not a slow query, even when it is the deadline that
        # ended the wait for one.
        if exc.timeout and not isinstance(exc, ServerSelectionTimeoutError):
            raise error() from None
        raise
