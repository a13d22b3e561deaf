"""The webhook dispatcher: every API process runs one; leases make sure no delivery is sent twice at once.

Each round (:meth:`Dispatcher.step`) fans out events into first attempts (those
recorded here are handed over right after their commit; those whose lease ran
out are claimed from the outbox), claims due retries, and starts attempts in
the free sending slots (``webhooks.attempt``). Delivery is at least once: a
process that dies between sending and settling leaves its lease to run out,
and another process sends again with the same ``webhook-id``. The lease is
longer than an attempt can take (checked by the settings), so a live process's
delivery is never taken over. The design, its failure cases and its indexes:
docs/architecture.md, "Events and webhooks" (its "At least once" and "Several
workers and hosts: the dispatcher").
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

from bson import ObjectId

from backend_app.core import metrics
from backend_app.core.db import MongoDatabase
from backend_app.core.types import as_utc
from backend_app.events import service as events
from backend_app.events.documents import EventDocument
from backend_app.webhooks import outcomes, repository, urlguard
from backend_app.webhooks.attempt import Attempts, Held
from backend_app.webhooks.repository import NO_LEASE
from backend_app.webhooks.settle_batch import SettleBatch
from config import Settings

logger = logging.getLogger(__name__)

#: Outbox events claimed per round at most.
FANOUT_BATCH = 500
#: How often the outbox lag gauge is refreshed, in seconds.
LAG_INTERVAL_S = 5.0
#: Deliveries one process holds at most: ``WEBHOOK_CONCURRENCY`` × this (in flight and waiting for a slot).
BACKLOG_FACTOR = 8


class Dispatcher:
    """One process's webhook dispatcher (see the module docstring).

    Args:
        db: the process's database.
        settings: ``WEBHOOK_*`` settings; ``APP_ENV=production`` allows https only.
        resolver: resolves endpoint hosts (the system's; tests pass their own).
    """

    def __init__(self, db: MongoDatabase, settings: Settings, *, resolver: urlguard.Resolver) -> None:
        self.db = db
        self.settings = settings
        self.resolver = resolver
        self.lease = timedelta(seconds=settings.webhook_lease_seconds)
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._backlog: collections.deque[Held] = collections.deque()
        self._next_lag = 0.0
        self._next_claim = 0.0
        self._claim_again = False
        self._settles = SettleBatch(db)
        self._attempts = Attempts(db, settings, resolver=resolver, settles=self._settles)
        #: This process's outbox lease token (``events.service.consume_locally``).
        self.token = uuid.uuid4().hex
        #: Events recorded here and committed, not fanned out yet.
        self._fresh: collections.deque[EventDocument] = collections.deque()

    def _take(self, recorded: list[EventDocument]) -> None:
        """Receive events this process just committed (called on the event loop, right after the commit)."""
        self._fresh.extend(recorded)
        self._wake.set()

    # ----------------------------------------------------------------------- loop

    async def run(self) -> None:
        """Dispatch until cancelled; errors (e.g. the database is down) are logged and the loop goes on."""
        unregister = events.consume_locally(
            self.db, token=self.token, lease_seconds=self.settings.webhook_lease_seconds, hand_off=self._take
        )
        try:
            while True:
                try:
                    worked = await self.step()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        # The driver turned our cancellation (shutdown) into its own error: stop anyway.
                        raise asyncio.CancelledError from None
                    logger.warning("webhook dispatch round failed", exc_info=True)
                    worked = False
                if not worked:
                    await self._idle()
        finally:
            unregister()
            await self.close()

    async def close(self) -> None:
        """Hand back held deliveries and events, cancel attempts in flight (their leases are released), close the HTTP client."""
        fresh = [event["_id"] for event in self._fresh]
        self._fresh.clear()
        with contextlib.suppress(Exception):
            await events.release_fanout(self.db, event_ids=fresh, token=self.token)
        while self._backlog:
            with contextlib.suppress(Exception):
                await self._hand_back(self._backlog.popleft(), stopping=True)
        for task in list(self._in_flight):
            task.cancel()
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        await self._attempts.aclose()

    async def _idle(self) -> None:
        """Wait for a local event or the poll interval; meanwhile fill freed sending slots from the backlog.

        A finished attempt needs no database round trip to start the next held
        delivery, so only an event recorded here or the poll interval leads to
        the next round's reads.
        """
        deadline = time.monotonic() + self.settings.webhook_poll_interval_seconds
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            while (left := deadline - time.monotonic()) > 0:
                done, _pending = await asyncio.wait(
                    [waker, *self._in_flight], timeout=left, return_when=asyncio.FIRST_COMPLETED
                )
                if waker in done or not done:
                    return
                if self._fresh and self._room() > 0:
                    return  # room for events waiting to be fanned out: a round is due
                await self.start_held()
        finally:
            waker.cancel()
            self._wake.clear()

    async def step(self) -> bool:
        """One round: fan out, claim (at most once per poll interval unless work is waiting), start attempts.

        Returns whether more work may be waiting right now (a full claim of the
        outbox or of due deliveries, or events recorded here waiting while
        there is room), so the caller runs another round at once instead of idling.
        """
        claiming = self._claim_again or time.monotonic() >= self._next_claim
        if claiming:
            self._next_claim = time.monotonic() + self.settings.webhook_poll_interval_seconds
        full_outbox = await self.fan_out(claim=claiming)
        started = await self.start_held()
        claimed = False
        if claiming:
            claimed = await self.claim()
            self._claim_again = claimed or full_outbox
            await self.start_held()
        if time.monotonic() >= self._next_lag:
            self._next_lag = time.monotonic() + LAG_INTERVAL_S
            await self.refresh_lag()
        return full_outbox or claimed or (bool(self._fresh) and self._room() > 0) or (started and bool(self._backlog))

    async def drain(self, *, timeout_s: float = 30.0) -> None:
        """Run rounds until nothing is due and no attempt is in flight (tests and benchmarks), at most ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        idle_rounds = 0
        while time.monotonic() < deadline:
            self._next_claim = 0.0  # claim every round: a drain waits for nothing
            worked = await self.step()
            if self._in_flight:
                await asyncio.wait(self._in_flight, timeout=max(deadline - time.monotonic(), 0))
                idle_rounds = 0
            elif not worked and not self._backlog and not self._fresh:
                idle_rounds += 1
                if idle_rounds >= 2:
                    return

    # ----------------------------------------------------------------------- fan-out

    def _room(self) -> int:
        """How many more deliveries this process may hold (leased, waiting or in flight)."""
        return max(self.settings.webhook_concurrency * BACKLOG_FACTOR - len(self._backlog) - len(self._in_flight), 0)

    async def fan_out(self, *, claim: bool = True) -> bool:
        """Turn events into first attempts in the backlog; returns whether the outbox claim was full.

        Takes the events recorded here (leased to this process since their
        transaction), as many as there is room for, and, when ``claim``, the
        outbox events whose lease is over (one conditional update). Events
        subscribed by no endpoint leave the outbox at once (one update).
        """
        room = self._room()
        fresh: list[EventDocument] = []
        while self._fresh and len(fresh) < room:
            fresh.append(self._fresh.popleft())
        room -= len(fresh)
        claimed: list[EventDocument] = []
        try:
            if claim and room > 0:
                now = datetime.now(UTC)
                claimed = await events.claim_outbox(
                    self.db,
                    now=now,
                    lease_until=now + self.lease,
                    token=uuid.uuid4().hex,
                    limit=min(room, FANOUT_BATCH),
                )
            if not fresh and not claimed:
                return False
            endpoints = await repository.endpoints_for_dispatch(self.db)
            recorded = await repository.existing_pairs(self.db, event_ids=[e["_id"] for e in claimed])
        except BaseException:
            # Interrupted (a shutdown's cancellation, a failed read) before the taken events became held
            # attempts: they go back to the front of the queue, so close() hands them back at once, or the
            # next round takes them, instead of their lease running out with nobody holding them.
            self._fresh.extendleft(reversed(fresh))
            raise
        no_attempts: list[ObjectId] = []
        for event in [*fresh, *claimed]:
            targets = [
                endpoint
                for endpoint in endpoints
                if outcomes.subscribed(endpoint, event["type"])
                and as_utc(endpoint["created_at"]) <= as_utc(event["created_at"])
                and (event["_id"], endpoint["_id"]) not in recorded
            ]
            if not targets:
                no_attempts.append(event["_id"])
                continue
            self._settles.expect(event["_id"], len(targets))
            for endpoint in targets:
                delivery = {
                    "_id": ObjectId(),
                    "event_id": event["_id"],
                    "endpoint_id": endpoint["_id"],
                    "schedule_step": 0,
                }
                lease_until = as_utc(event.get("fanout_lease_until") or NO_LEASE)
                self._backlog.append(
                    Held(delivery, event, endpoint, event.get("fanout_token", ""), lease_until, first=True)
                )
        await events.mark_fanned_out(self.db, event_ids=no_attempts)
        return bool(claimed) and len(claimed) == min(room, FANOUT_BATCH)

    # ----------------------------------------------------------------------- claim and send

    async def claim(self) -> bool:
        """Lease due deliveries (up to this process's room) into the backlog; whether the room was filled."""
        room = self._room()
        if room <= 0 or len(self._backlog) >= self.settings.webhook_concurrency:
            return False
        now = datetime.now(UTC)
        token, lease_until = uuid.uuid4().hex, now + self.lease
        claimed = await repository.claim_due(self.db, now=now, lease_until=lease_until, token=token, limit=room)
        if not claimed:
            return False
        found = await events.get_events(self.db, event_ids=list({d["event_id"] for d in claimed}))
        endpoint_ids = list({d["endpoint_id"] for d in claimed})
        endpoints = {e["_id"]: e for e in await repository.endpoints_by_ids(self.db, endpoint_ids=endpoint_ids)}
        for delivery in claimed:
            self._backlog.append(
                Held(
                    delivery,
                    found.get(delivery["event_id"]),
                    endpoints.get(delivery["endpoint_id"]),
                    token,
                    lease_until,
                )
            )
        return len(claimed) == room

    async def start_held(self) -> bool:
        """Start attempts from the backlog while sending slots are free; whether any started.

        A held delivery whose lease would end before an attempt could finish
        is handed back instead (another process may claim it then), so no
        attempt ever runs past its lease.
        """
        started = False
        margin = timedelta(seconds=self.settings.webhook_timeout_seconds + 1)
        while self._backlog and len(self._in_flight) < self.settings.webhook_concurrency:
            held = self._backlog.popleft()
            if held.lease_until - datetime.now(UTC) < margin:
                await self._hand_back(held)
                continue
            task = asyncio.create_task(self._deliver(held))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
            started = True
        return started

    async def _hand_back(self, held: Held, *, stopping: bool = False) -> None:
        """Give up a held attempt unsent: release the delivery's lease, or leave a first attempt's event to be claimed.

        A first attempt's event lease is ended at once only when this process
        is ``stopping`` (its other attempts are cancelled too). Otherwise other
        attempts of the same event may still be in flight here, each started
        only because the lease outlasts it: the lease is left to run out, so no
        other process sends the event to those endpoints meanwhile.
        """
        if held.first:
            self._settles.abandon(held.delivery["event_id"])
            if stopping:
                await events.release_fanout(self.db, event_ids=[held.delivery["event_id"]], token=held.token)
        else:
            await repository.settle(
                self.db, delivery_id=held.delivery["_id"], token=held.token, changes={}, attempt=None
            )

    async def _deliver(self, held: Held) -> None:
        try:
            await self._attempts.run(held)
        except asyncio.CancelledError:
            # Shutting down: hand the delivery back at once instead of after its lease.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._hand_back(held, stopping=True))
            raise
        except Exception:
            if held.first:
                self._settles.abandon(held.delivery["event_id"])
            logger.warning("webhook delivery %s failed to settle", held.delivery["_id"], exc_info=True)

    # ----------------------------------------------------------------------- lag

    async def refresh_lag(self) -> float:
        """Set and return the outbox lag: age of the oldest event not yet fanned out or delivered, in seconds."""
        candidates = [await events.oldest_pending_fanout(self.db), await repository.oldest_undelivered(self.db)]
        oldest = min((as_utc(c) for c in candidates if c is not None), default=None)
        lag = 0.0 if oldest is None else (datetime.now(UTC) - oldest).total_seconds()
        metrics.outbox_lag(lag)
        return lag
