"""Named leases in MongoDB: one holder at a time per name, for as long as it keeps renewing.

A lease is one document ``{_id: name, holder, address, expires_at, host, pid}``
in the ``leases`` collection (``host`` and ``pid`` tell an operator which process
holds it). A process takes the lease when it is free or expired,
and renews it while it holds it; whoever reads it learns the holder and the
address it advertises.

A lease here is a hint for sharing work, never a lock that correctness
depends on: expiry is read from each host's clock, so with clock skew or a
paused holder two processes can both believe they hold it for up to a lease
period. Callers must stay correct when that happens (the transactions they
run are); a lease only makes it rare.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from backend_app.core.db import MongoDatabase

COLLECTION = "leases"


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease as last read: who holds it, the address it advertises, until when (UTC), and on which host."""

    holder: str
    address: str
    expires_at: datetime
    host: str = ""

    def held_by_another(self, holder: str, *, now: datetime) -> bool:
        """Whether someone other than ``holder`` holds it at ``now`` (not expired)."""
        return self.holder != holder and now < self.expires_at


def _lease(doc: dict[str, Any]) -> Lease:
    expires_at: datetime = doc["expires_at"]
    if expires_at.tzinfo is None:  # BSON dates come back naive unless the client is tz_aware
        expires_at = expires_at.replace(tzinfo=UTC)
    return Lease(
        holder=str(doc["holder"]), address=str(doc["address"]), expires_at=expires_at, host=str(doc.get("host", ""))
    )


async def take_or_renew(db: MongoDatabase, *, name: str, holder: str, address: str, ttl_s: float) -> Lease:
    """Take lease ``name`` for ``holder`` if it is free, expired or already ``holder``'s; return it as it stands.

    One ``findOneAndUpdate`` (upserting when the lease does not exist yet);
    when another holder has it, one ``find`` reads who.

    Args:
        address: what ``holder`` advertises to the others (e.g. an internal URL).
        ttl_s: seconds the lease lasts from now unless renewed.

    Raises:
        pymongo.errors.PyMongoError: the database could not be reached.
    """
    now = datetime.now(UTC)
    try:
        doc = await db[COLLECTION].find_one_and_update(
            {"_id": name, "$or": [{"holder": holder}, {"expires_at": {"$lt": now}}]},
            {
                "$set": {
                    "holder": holder,
                    "address": address,
                    "expires_at": now + timedelta(seconds=ttl_s),
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                }
            },
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
    except DuplicateKeyError:  # held by someone else and not expired: the upsert met the existing _id
        doc = await db[COLLECTION].find_one({"_id": name})
    if doc is None:  # deleted between the two calls; the next round takes it
        return Lease(holder="", address="", expires_at=now)
    return _lease(doc)


async def refresh(
    db: MongoDatabase, *, name: str, holder: str, address: str, ttl_s: float, known: Lease | None
) -> Lease:
    """The lease as it stands now, taken or renewed for ``holder`` whenever it may be.

    While ``known`` (the last read) says another holder has it, only reads it (one ``find``):
    the holder renews it, and a write attempt by every other process every round would be a
    failed upsert each. When the read finds it expired, takes it at once
    (:func:`take_or_renew`); otherwise, and when it is ``holder``'s or unknown, takes or renews it.

    Raises:
        pymongo.errors.PyMongoError: the database could not be reached.
    """
    now = datetime.now(UTC)
    if known is not None and known.held_by_another(holder, now=now):
        doc = await db[COLLECTION].find_one({"_id": name})
        if doc is not None and (current := _lease(doc)).held_by_another(holder, now=now):
            return current
    return await take_or_renew(db, name=name, holder=holder, address=address, ttl_s=ttl_s)


async def release(db: MongoDatabase, *, name: str, holder: str) -> None:
    """Give lease ``name`` up if ``holder`` holds it (on shutdown), so another process takes it at once."""
    await db[COLLECTION].update_one(
        {"_id": name, "holder": holder}, {"$set": {"expires_at": datetime.now(UTC) - timedelta(seconds=1)}}
    )
