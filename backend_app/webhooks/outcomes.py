"""What an attempt's answer means for its delivery and its endpoint: the retry rules and endpoint health.

The rules follow the Standard Webhooks specification (standardwebhooks.com):
``2xx`` is delivered; ``410 Gone`` fails the delivery and disables the
endpoint; ``429``/``503`` with ``Retry-After`` wait as long as asked; any other
failure waits the next value of ``WEBHOOK_RETRY_SCHEDULE`` (±10 % jitter, so
failing receivers are not hit in waves) or, once the schedule is spent, fails
and disables the endpoint. An endpoint whose attempt failed is ``failing``
until one succeeds; every status change is audited (actor ``system:webhooks``).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession

from backend_app.audit import service as audit
from backend_app.core.db import MongoDatabase, run_in_transaction
from backend_app.webhooks import repository
from backend_app.webhooks.documents import AttemptRecord
from backend_app.webhooks.schemas import ALL_EVENTS
from backend_app.webhooks.sender import AttemptResult

#: Actor of the endpoint status changes the dispatcher makes, in the audit trail.
SYSTEM_ACTOR = "system:webhooks"
JITTER = 0.1
#: How long an endpoint status change re-runs on write conflicts, in seconds.
STATUS_RETRY_S = 2.0
#: Statuses an endpoint may move to each status from.
_FROM = {"enabled": ["failing"], "failing": ["enabled"], "disabled": ["enabled", "failing"]}
_VERB = {"enabled": "recovered", "failing": "failing", "disabled": "disabled"}


def subscribed(endpoint: Mapping[str, Any], event_type: str) -> bool:
    """Whether ``endpoint`` receives events of ``event_type`` (``ping`` only through its test call)."""
    if event_type == "ping":
        return False
    types = endpoint.get("events", [])
    return ALL_EVENTS in types or event_type in types


def jittered(seconds: float) -> float:
    """``seconds`` ± 10 %."""
    return seconds * (1 + random.uniform(-JITTER, JITTER))  # noqa: S311 - jitter, not cryptographic


@dataclass(frozen=True, slots=True)
class Decision:
    """An attempt's consequences.

    Attributes:
        outcome: ``delivered``, ``gone``, ``retrying`` or ``failed`` (the metric's label).
        changes: the delivery fields to set (``status``, ``next_attempt_at``, ``updated_at``, ...).
        new_status: the endpoint's new status, when this outcome changes it.
        reason: why the endpoint is disabled, when it is.
    """

    outcome: str
    changes: dict[str, Any]
    new_status: str | None = None
    reason: str | None = None


def decide(
    result: AttemptResult, *, step: int, delays: Sequence[float], endpoint_status: str | None, now: datetime
) -> Decision:
    """The consequences of ``result`` for a delivery at ``step`` of the retry schedule ``delays`` (seconds)."""
    if result.delivered:
        changes: dict[str, Any] = {"status": "delivered", "next_attempt_at": None, "delivered_at": now}
        decision = Decision("delivered", changes, "enabled" if endpoint_status == "failing" else None)
    elif result.status_code == 410:
        changes = {"status": "failed", "next_attempt_at": None}
        decision = Decision("gone", changes, "disabled", "the receiver answered 410 Gone")
    elif step < len(delays):
        wait = result.retry_after if result.retry_after is not None else jittered(delays[step])
        changes = {"status": "pending", "next_attempt_at": now + timedelta(seconds=wait), "schedule_step": step + 1}
        decision = Decision("retrying", changes, "failing" if endpoint_status == "enabled" else None)
    else:
        changes = {"status": "failed", "next_attempt_at": None}
        decision = Decision("failed", changes, "disabled", "every attempt of the retry schedule failed")
    changes["updated_at"] = now
    return decision


def attempt_record(result: AttemptResult, *, started: datetime, next_attempt_at: datetime | None) -> AttemptRecord:
    """The attempt as a delivery keeps it (``GET /webhooks/endpoints/{id}/deliveries`` shows it)."""
    return {
        "at": started,
        "status_code": result.status_code,
        "error": result.error,
        "duration_ms": result.duration_ms,
        "response": result.response,
        "next_attempt_at": next_attempt_at,
    }


async def change_endpoint_status(
    db: MongoDatabase, *, endpoint_id: ObjectId, new_status: str, reason: str | None, now: datetime
) -> None:
    """Move an endpoint to ``new_status`` (if its status still leads there) with its audit entry, in one transaction.

    Write conflicts re-run it for 2 s at most, then the driver's error is raised.
    """

    async def work(session: AsyncClientSession) -> None:
        before = await repository.get_endpoint(db, endpoint_id=endpoint_id, session=session)
        after = await repository.update_endpoint(
            db,
            endpoint_id=endpoint_id,
            changes={"status": new_status, "disabled_reason": reason, "updated_at": now},
            only_if_status=_FROM[new_status],
            session=session,
        )
        if after is not None and before is not None:
            await audit.record(
                db,
                actor=SYSTEM_ACTOR,
                action=f"webhook_endpoint.{_VERB[new_status]}",
                entity_type="webhook_endpoint",
                entity_id=str(endpoint_id),
                before={"status": before["status"]},
                after={"status": new_status, "disabled_reason": reason},
                session=session,
            )

    await run_in_transaction(db.client, work, retry_seconds=STATUS_RETRY_S)
