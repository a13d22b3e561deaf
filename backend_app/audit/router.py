"""HTTP route of the audit trail: ``GET /audit``, for admins only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from backend_app.audit import service
from backend_app.audit.schemas import AuditEntry, EntityType
from backend_app.auth.dependencies import AdminUser
from backend_app.core.db import Database
from backend_app.core.errors import problem_responses
from backend_app.core.pages import Page
from backend_app.core.pagination import Pagination

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get(
    "",
    response_model=Page[AuditEntry],
    responses=problem_responses(400, 401, 403, 422, 500),
    summary="Read the audit trail of admin changes (admin)",
)
async def list_audit(
    db: Database,
    page: Pagination,
    _admin: AdminUser,
    actor: Annotated[str | None, Query(min_length=1, max_length=32, description="Only changes by this admin.")] = None,
    entity_type: Annotated[EntityType | None, Query(description="Only changes to this kind of entity.")] = None,
    entity_id: Annotated[
        str | None, Query(min_length=1, max_length=64, description="Only changes to this product/order id or username.")
    ] = None,
    since: Annotated[
        datetime | None, Query(description="Changes at or after this instant (ISO 8601; UTC if no offset).")
    ] = None,
    until: Annotated[
        datetime | None, Query(description="Changes before this instant (ISO 8601; UTC if no offset).")
    ] = None,
) -> Page[AuditEntry]:
    """Admin changes, oldest first, with the brief's ``page`` metadata and cursors (docs/contract.md §1, §2).

    Each entry: ``actor``, ``action``, ``entity_type``, ``entity_id``, ``at``,
    ``before``, ``after``. ``since`` not before ``until`` → 422.
    """
    data, meta = await service.list_entries(
        db, actor=actor, entity_type=entity_type, entity_id=entity_id, since=since, until=until, page=page
    )
    return Page[AuditEntry](data=data, page=meta)
