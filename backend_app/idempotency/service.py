"""``Idempotency-Key`` semantics (after the IETF draft "The Idempotency-Key HTTP Header Field").

- The first request with a key creates an *in-flight* record, atomically
  (unique ``(owner, key)``), holding a fingerprint of the request.
- The work's transaction marks the record *completed* with the response, so
  "order placed" and "key completed" commit together or not at all.
- A repeat with the same fingerprint replays the stored response; a different
  fingerprint → 422; while the first is in flight → 409.
- A failed request releases its record, so the client may retry with the
  same key (only successes are remembered).
- An in-flight record whose lease expired (its process died) may be taken
  over: its work never committed, because completion is transactional.
- Keys are scoped per user (``owner``) and kept 24 h (:data:`RETENTION`).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from backend_app.core.db import MongoDatabase
from backend_app.core.types import as_utc
from backend_app.idempotency import repository
from backend_app.idempotency.exceptions import IdempotencyInFlightError, IdempotencyKeyReusedError

#: How long a completed key is remembered (the promise is at least 24 h).
RETENTION = timedelta(hours=24)
#: How long an in-flight claim is honoured before another request may take it over.
LEASE = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Claim:
    """This request holds the key: do the work, then :func:`complete` or :func:`release`."""

    record_id: ObjectId
    token: str


@dataclass(frozen=True, slots=True)
class Replay:
    """The key was completed earlier with the same request: answer with ``response``."""

    response: dict[str, Any]


def request_fingerprint(operation: str, body: Any) -> str:
    """SHA-256 hex of ``operation`` (e.g. ``POST /orders``) and the canonical JSON of ``body``.

    Key order and whitespace do not matter; values do.
    """
    canonical = json.dumps({"op": operation, "body": body}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


async def begin(db: MongoDatabase, *, owner: str, key: str, fingerprint: str) -> Claim | Replay:
    """Claim ``key`` for ``owner``'s request with ``fingerprint``, or find its earlier outcome.

    Raises:
        IdempotencyKeyReusedError: the key was used with another request (422).
        IdempotencyInFlightError: a request with the key is still running (409).
    """
    for _attempt in range(2):
        now = datetime.now(UTC)
        token = uuid.uuid4().hex
        try:
            record_id = await repository.insert_in_flight(
                db,
                owner=owner,
                key=key,
                fingerprint=fingerprint,
                token=token,
                now=now,
                lease_expires_at=now + LEASE,
                expires_at=now + RETENTION,
            )
        except DuplicateKeyError:
            pass
        else:
            return Claim(record_id=record_id, token=token)
        record = await repository.find(db, owner=owner, key=key)
        if record is None:  # released or expired in between: try to insert again
            continue
        if record["fingerprint"] != fingerprint:
            raise IdempotencyKeyReusedError()
        if record["state"] == "completed" and record["response"] is not None:
            # ``complete`` stores the response in the write that marks the record completed.
            return Replay(response=record["response"])
        if as_utc(record["lease_expires_at"]) <= now and await repository.take_over(
            db, record_id=record["_id"], old_token=record["token"], token=token, lease_expires_at=now + LEASE
        ):
            return Claim(record_id=record["_id"], token=token)
        raise IdempotencyInFlightError()
    raise IdempotencyInFlightError()


async def complete(db: MongoDatabase, *, claim: Claim, response: dict[str, Any], session: AsyncClientSession) -> None:
    """Record ``response`` for ``claim`` inside the work's transaction.

    Raises:
        IdempotencyInFlightError: the claim was taken over (its lease expired);
            raising aborts the transaction, so the work is not applied twice.
    """
    expires_at = datetime.now(UTC) + RETENTION
    if not await repository.complete(
        db, record_id=claim.record_id, token=claim.token, response=response, expires_at=expires_at, session=session
    ):
        raise IdempotencyInFlightError()


async def release(db: MongoDatabase, *, claim: Claim) -> None:
    """Forget ``claim`` after the work failed, so the same key can be retried."""
    await repository.release(db, record_id=claim.record_id, token=claim.token)
