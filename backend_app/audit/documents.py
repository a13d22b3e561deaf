"""The ``audit_log`` collection's stored documents, as types.

Entries are only ever inserted, never updated or deleted by the app: the trail
is what happened, in the transaction that made it happen.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict

from bson import ObjectId

from backend_app.audit.schemas import EntityType


class AuditEntryDocument(TypedDict):
    """One recorded change."""

    _id: ObjectId
    #: When the change was made, UTC.
    at: datetime
    #: Who made it: an admin's username, or a command's name (``cli:import-products``).
    actor: str
    #: ``<entity_type>.<verb>``, e.g. ``product.update``.
    action: str
    entity_type: EntityType
    #: Product, order or endpoint id (24 hex), or a username.
    entity_id: str
    #: The entity's public form before (``None`` when created) and after (``None`` when deleted), secrets
    #: redacted; only the changed fields when both exist.
    before: dict[str, Any] | None
    after: dict[str, Any] | None
