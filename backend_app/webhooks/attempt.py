"""One delivery attempt, from a held lease to its stored outcome: sign, send, decide, settle.

The dispatcher (``webhooks.dispatcher``) decides which deliveries this process
holds and when a sending slot is free; this module runs one attempt in that
slot. What an answer means is ``webhooks.outcomes``; how outcomes finishing at
once share a write is ``webhooks.settle_batch``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from backend_app.core import metrics
from backend_app.core.db import MongoDatabase
from backend_app.core.types import as_utc
from backend_app.events import entities
from backend_app.events import service as events
from backend_app.events.documents import FeedEvent
from backend_app.webhooks import outcomes, repository, sender, signing, urlguard
from backend_app.webhooks.documents import EndpointDocument
from backend_app.webhooks.settle_batch import SettleBatch
from config import Settings

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Held:
    """A delivery this process holds the lease of, with what sending it needs."""

    #: The claimed delivery, or for a first attempt the fields it will be created with.
    delivery: Mapping[str, Any]
    event: FeedEvent | None
    endpoint: EndpointDocument | None
    token: str
    lease_until: datetime
    #: A first attempt: the delivery is created by its outcome, under the event's outbox lease.
    first: bool = False


class Attempts:
    """Runs the attempts of one dispatcher: what they share (HTTP clients, the settle batch, settings).

    Args:
        db: the process's database.
        settings: ``WEBHOOK_*`` settings; ``APP_ENV=production`` allows https only.
        resolver: resolves endpoint hosts.
        settles: the dispatcher's :class:`SettleBatch` (it also abandons first attempts handed back).
    """

    def __init__(
        self, db: MongoDatabase, settings: Settings, *, resolver: urlguard.Resolver, settles: SettleBatch
    ) -> None:
        self.db = db
        self.settings = settings
        self.resolver = resolver
        self.settles = settles
        self.clients = sender.ClientPool()

    async def aclose(self) -> None:
        """Close the HTTP clients."""
        await self.clients.aclose()

    async def run(self, held: Held) -> None:
        """Send ``held`` once and store its outcome; a delivery with no endpoint or event left fails unsent.

        Raises whatever the database raises while settling (the dispatcher logs it; the lease then runs
        out and another round sends the delivery again: at least once).
        """
        delivery, event, endpoint, token = held.delivery, held.event, held.endpoint, held.token
        now = datetime.now(UTC)
        if endpoint is None or endpoint.get("status") == "disabled" or event is None:
            # Only a later attempt gets here: a first attempt's event and endpoint were just read.
            reason = "event removed after its retention" if event is None else "endpoint disabled"
            await repository.settle(
                self.db,
                delivery_id=delivery["_id"],
                token=token,
                changes={"status": "failed", "next_attempt_at": None, "updated_at": now, "last_error": reason},
                attempt=None,
            )
            return
        body = entities.envelope_bytes(events.envelope(event)).decode()
        headers = signing.headers(
            message_id=str(event["_id"]),
            body=body,
            secrets_=signing.valid_keys(endpoint.get("signing_keys", []), now=now),
            now=now,
        )
        result = await sender.attempt(
            self.clients,
            url=endpoint["url"],
            body=body.encode(),
            headers=headers,
            resolver=self.resolver,
            allow_private=self.settings.webhook_allow_private_urls,
            https_only=self.settings.app_env == "production",
            timeout_s=self.settings.webhook_timeout_seconds,
        )
        await self._settle(held, result, started=now)

    async def _settle(self, held: Held, result: sender.AttemptResult, *, started: datetime) -> None:
        delivery, event, endpoint, token = held.delivery, held.event, held.endpoint, held.token
        assert event is not None and endpoint is not None  # run() returned before sending otherwise
        now = datetime.now(UTC)
        decided = outcomes.decide(
            result, step=int(delivery.get("schedule_step", 0)), delays=self.settings.webhook_retry_delays,
            endpoint_status=endpoint.get("status"), now=now,
        )  # fmt: skip
        outcome, changes, new_status = decided.outcome, decided.changes, decided.new_status
        attempt = outcomes.attempt_record(result, started=started, next_attempt_at=changes.get("next_attempt_at"))
        latency = (now - as_utc(event["created_at"])).total_seconds() if outcome == "delivered" else None
        metrics.webhook_attempt(outcome, seconds=result.duration_ms / 1000, latency_s=latency)
        if held.first:
            document = repository.first_outcome_document(
                delivery_id=delivery["_id"], event=event, endpoint_id=endpoint["_id"], changes=changes,
                attempt=attempt, now=now,
            )  # fmt: skip
            settled = await self.settles.record_first(document)
        else:
            settled = await self.settles.settle(
                delivery_id=delivery["_id"], token=token, changes=changes, attempt=attempt
            )
        if not settled:
            logger.warning("webhook delivery %s: lease lost before its outcome was written", delivery["_id"])
        if new_status is not None:
            # After the outcome, never holding the delivery: a transaction a dead process left open on the
            # endpoint (until the server reaps it) must not keep this process's sending slots busy.
            try:
                await outcomes.change_endpoint_status(
                    self.db, endpoint_id=endpoint["_id"], new_status=new_status, reason=decided.reason, now=now
                )
            except Exception:
                logger.warning(
                    "webhook endpoint %s: status change to %s not written", endpoint["_id"], new_status, exc_info=True
                )
