"""Errors of the events feed (mapped to problem+json in ``core.errors``)."""

from __future__ import annotations

from backend_app.core.errors import NotFoundError


class EventNotFoundError(NotFoundError):
    """No event has this id (never recorded, or removed after ``EVENTS_RETENTION_DAYS``): 404."""

    code = "event_not_found"
    title = "Event not found"

    def __init__(self, event_id: str) -> None:
        super().__init__(f"Event {event_id} does not exist.", eventId=event_id)
