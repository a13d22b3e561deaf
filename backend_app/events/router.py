"""HTTP routes of the events feed: ``GET /events`` and ``GET /events/{event_id}``, admins only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from backend_app.auth.dependencies import AdminUser
from backend_app.core.db import Database
from backend_app.core.errors import problem_responses
from backend_app.core.pages import Page
from backend_app.core.pagination import Pagination
from backend_app.core.types import ObjectIdStr
from backend_app.events import service
from backend_app.events.schemas import EventPublic, EventType

router = APIRouter(prefix="/events", tags=["events"])


@router.get(
    "",
    response_model=Page[EventPublic],
    responses=problem_responses(400, 401, 403, 422, 500),
    summary="Read the events feed, newest first (admin)",
)
async def list_events(
    db: Database,
    page: Pagination,
    _admin: AdminUser,
    type: Annotated[EventType | None, Query(description="Only events of this type.")] = None,
    entity_id: Annotated[
        str | None, Query(min_length=1, max_length=64, description="Only events about this order or product id.")
    ] = None,
) -> Page[EventPublic]:
    """Events kept for ``EVENTS_RETENTION_DAYS``, newest first, with the ``page`` metadata and cursors of every list (docs/contract.md §1, §2).

    The same envelopes webhook endpoints receive (docs/architecture.md (Events and webhooks)).
    """
    data, meta = await service.list_events(db, type=type, entity_id=entity_id, page=page)
    return Page[EventPublic](data=data, page=meta)


@router.get(
    "/{event_id}",
    response_model=EventPublic,
    responses=problem_responses(401, 403, 404, 422, 500),
    summary="Read one event (admin)",
)
async def get_event(
    db: Database, _admin: AdminUser, event_id: Annotated[ObjectIdStr, Path(description="The event's 24-hex id.")]
) -> EventPublic:
    """One event's envelope; 404 when unknown or past its retention."""
    return await service.get_event(db, event_id=event_id)
