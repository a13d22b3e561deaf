"""Request and response shapes of the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

#: What an entry is about.
EntityType = Literal["product", "user", "order", "webhook_endpoint"]


class AuditEntry(BaseModel):
    """One recorded admin change.

    ``before`` is ``null`` for a creation and ``after`` for a deletion; for
    other changes both hold the fields that changed (public forms only: never
    a password, hash or token).
    """

    id: str = Field(description="The entry's 24-hex id.")
    actor: str = Field(description="Username (token subject) of the admin who made the change.")
    action: str = Field(description="What was done, e.g. `product.update`, `user.update`, `order.status`.")
    entity_type: EntityType
    entity_id: str = Field(description="Product or order id (24 hex), or username.")
    at: datetime = Field(description="When the change was committed (UTC).")
    before: dict[str, Any] | None = Field(description="Changed fields before, or null when created.")
    after: dict[str, Any] | None = Field(description="Changed fields after, or null when deleted.")
