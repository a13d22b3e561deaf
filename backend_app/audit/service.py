"""Audit rules: one entry per admin change, written in the change's own transaction.

:func:`record` is the single entry point. Each admin write (catalog create,
replace, patch, delete and quantity; user role and activation; an admin's
order status change) calls it inside the transaction that makes the change,
passing that transaction's ``session``, so the change and its entry commit
together or not at all: an entry never describes a change that did not
happen, and no committed change lacks its entry.

Secrets never enter the trail: ``before`` and ``after`` are the entity's
public form (or its changed fields), and :func:`record` drops, at any depth,
every key that names a secret (:data:`SECRET_KEYS`), as a second guard.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession

from backend_app.audit import repository
from backend_app.audit.documents import AuditEntryDocument
from backend_app.audit.repository import AuditFilter
from backend_app.audit.schemas import AuditEntry, EntityType
from backend_app.core.cursors import SortOrder
from backend_app.core.db import MongoDatabase
from backend_app.core.errors import UnprocessableError
from backend_app.core.pages import PageMeta
from backend_app.core.pagination import PageParams
from backend_app.core.types import as_utc

#: Cursor scope of ``GET /audit``.
LIST_SCOPE = "audit"
#: Keys never recorded, at any depth (case-insensitive substrings).
SECRET_KEYS = ("password", "hash", "token", "secret")
#: Fields not worth recording as a change (they change on every write).
IGNORED_FIELDS = frozenset({"updated_at"})


def _is_secret(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in SECRET_KEYS)


def redact(value: Any) -> Any:
    """``value`` with every mapping key naming a secret removed, recursively."""
    if isinstance(value, Mapping):
        return {k: redact(v) for k, v in value.items() if not _is_secret(str(k))}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def changed_fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fields whose value differs between two snapshots, as ``(before, after)`` (``updated_at`` ignored).

    A field present on one side only appears with ``None`` on the other.
    """
    keys = [k for k in dict.fromkeys([*before, *after]) if k not in IGNORED_FIELDS]
    diff = [k for k in keys if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in diff}, {k: after.get(k) for k in diff}


async def record(
    db: MongoDatabase,
    *,
    actor: str,
    action: str,
    entity_type: EntityType,
    entity_id: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    session: AsyncClientSession | None,
) -> None:
    """Record one admin change, inside ``session``'s transaction.

    Args:
        actor: the admin's username (the access token's ``sub``).
        action: ``<entity_type>.<verb>``, e.g. ``product.update``.
        entity_type: ``product``, ``user`` or ``order``.
        entity_id: product or order id (24 hex), or username.
        before: the entity before (``None`` when created): JSON-compatible
            values (the public form, e.g. ``model_dump(mode="json")``).
        after: the entity after (``None`` when deleted).
        session: the transaction making the change. Pass ``None`` only for a
            change that is itself this single insert (there is none today).

    Raises:
        Whatever the driver raises; inside a transaction that aborts the change too.
    """
    await repository.insert_entries(
        db,
        entries=[
            new_entry(
                actor=actor, action=action, entity_type=entity_type, entity_id=entity_id, before=before, after=after
            )
        ],
        session=session,
    )


def new_entry(
    *,
    actor: str,
    action: str,
    entity_type: EntityType,
    entity_id: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
) -> AuditEntryDocument:
    """The stored form of one audit entry (secrets redacted), stamped now; see :func:`record` for the fields."""
    return {
        "_id": ObjectId(),
        "at": datetime.now(UTC),
        "actor": actor,
        "action": action,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "before": redact(dict(before)) if before is not None else None,
        "after": redact(dict(after)) if after is not None else None,
    }


async def record_many(db: MongoDatabase, *, entries: list[AuditEntryDocument], session: AsyncClientSession) -> None:
    """Record several changes made by one transaction (``entries`` from :func:`new_entry`), inside ``session``.

    Used by the catalog's bulk write (``POST /products/batch``, ``import-products``):
    one ``insert_many`` in the transaction that writes the products.
    """
    await repository.insert_entries(db, entries=entries, session=session)


def to_public(doc: AuditEntryDocument) -> AuditEntry:
    """Map a stored entry to its public form."""
    return AuditEntry(
        id=str(doc["_id"]),
        actor=doc["actor"],
        action=doc["action"],
        entity_type=doc["entity_type"],
        entity_id=doc["entity_id"],
        at=doc["at"],
        before=doc.get("before"),
        after=doc.get("after"),
    )


async def list_entries(
    db: MongoDatabase,
    *,
    actor: str | None = None,
    entity_type: EntityType | None = None,
    entity_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    page: PageParams,
) -> tuple[list[AuditEntry], PageMeta]:
    """One page of audit entries, oldest first (``at``, then ``_id``), filtered (``GET /audit``).

    Raises:
        UnprocessableError: ``since`` is not before ``until`` (422).
        InvalidCursorError: the cursor is bad or was issued for other filters (400).
    """
    since = as_utc(since) if since is not None else None
    until = as_utc(until) if until is not None else None
    if since is not None and until is not None and since >= until:
        raise UnprocessableError("since must be before until.", field=("query", "since"))
    filters = AuditFilter(actor=actor, entity_type=entity_type, entity_id=entity_id, since=since, until=until)
    window = page.window(
        scope=LIST_SCOPE, filters=filters.fingerprint_fields(), sort=SortOrder.parse(repository.SORT_TOKEN)
    )
    docs, meta = window.finish(await repository.list_entries(db, filters=filters, window=window))
    return [to_public(d) for d in docs], meta
