"""The outbox's hand-off: events recorded in a process go to that process's dispatcher right after their commit.

An event is stored flagged ``pending_fanout`` in the transaction of its change
(``events.service``). When the process runs a dispatcher
(:func:`consume_locally`), the event is also stored leased to it and handed to
it once the transaction has committed, so its first attempts need no read of
the outbox, and no other process sends it while the lease lasts. Otherwise the
event is stored unleased, and any dispatcher claims it from the outbox.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pymongo.asynchronous.client_session import AsyncClientSession

from backend_app.core.db import MongoDatabase, after_commit
from backend_app.events import repository
from backend_app.events.documents import EventDocument


@dataclass(frozen=True, slots=True)
class LocalConsumer:
    """This process's consumer of the outbox (the webhook dispatcher), registered by :func:`consume_locally`."""

    db: MongoDatabase
    token: str
    lease: timedelta
    hand_off: Callable[[list[EventDocument]], None]


_consumers: list[LocalConsumer] = []


def consume_locally(
    db: MongoDatabase, *, token: str, lease_seconds: float, hand_off: Callable[[list[EventDocument]], None]
) -> Callable[[], None]:
    """Have the events this process records in ``db`` leased to ``token`` and handed to ``hand_off`` after their commit.

    Each such event is stored with ``fanout_token`` = ``token`` and
    ``fanout_lease_until`` = now + ``lease_seconds``, in the transaction of its
    change; once that transaction has committed, ``hand_off(events)`` receives
    the stored documents (on the event loop; it must not block). So the
    committing process sends an event's first attempts without reading the
    outbox, and no other process takes the event before the lease ends. Events
    of a commit whose outcome stayed unknown are never handed off: their lease
    runs out and any dispatcher claims them (:func:`claim_outbox`).

    Returns a function that unregisters the consumer.
    """
    consumer = LocalConsumer(db=db, token=token, lease=timedelta(seconds=lease_seconds), hand_off=hand_off)
    _consumers.append(consumer)
    return lambda: _consumers.remove(consumer) if consumer in _consumers else None


def _local_consumer(db: MongoDatabase) -> LocalConsumer | None:
    # By client and name: tests run several apps (each with its own client) in one process.
    return next((c for c in _consumers if c.db.client is db.client and c.db.name == db.name), None)


async def insert(db: MongoDatabase, events: list[EventDocument], session: AsyncClientSession | None) -> None:
    """Insert ``events`` into the outbox, leased to this process's dispatcher when one runs (:func:`consume_locally`)."""
    consumer = _local_consumer(db)
    in_transaction = session is not None and session.in_transaction
    if consumer is not None and in_transaction:
        hand_off = consumer.hand_off
        if not after_commit(session, lambda: hand_off(events)):  # type: ignore[arg-type]
            consumer = None  # nobody would hand them off: leave them unleased, for any dispatcher to claim
    if consumer is not None:
        until = datetime.now(UTC) + consumer.lease
        for event in events:
            event["fanout_token"], event["fanout_lease_until"] = consumer.token, until
    await repository.insert_events(db, events=events, session=session)
    if consumer is not None and not in_transaction:
        consumer.hand_off(events)
