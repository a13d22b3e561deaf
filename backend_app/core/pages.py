"""List responses: ``{"data": [...], "page": {...}}`` and the offset page's metadata.

``page`` is ``{"next": "<offset>" | null, "limit": <count in this page>,
"previous": <offset> | null, "next_cursor": "<opaque>" | null,
"prev_cursor": "<opaque>" | null}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")

#: Records per page when ``limit`` is not given.
DEFAULT_LIMIT = 10


class OffsetParams(BaseModel):
    """Validated ``limit`` (1..100, default 10) and ``offset`` (0..10000) query values."""

    limit: int = DEFAULT_LIMIT
    offset: int = 0


class PageMeta(BaseModel):
    """The brief's ``page`` object plus the keyset cursors ``next_cursor`` and ``prev_cursor``.

    ``next`` is a string (the brief's type), ``previous`` an integer and
    ``limit`` the number of records in this page, not the requested limit.
    In cursor mode ``next`` and ``previous`` are ``null``.
    """

    next: str | None = Field(description="Offset of the next page, as a string; null when no record follows.")
    limit: int = Field(description="Number of records in this page.")
    previous: int | None = Field(description="Offset of the previous page (clamped at 0); null on the first page.")
    next_cursor: str | None = Field(default=None, description="Opaque cursor of the following page; null at the end.")
    prev_cursor: str | None = Field(default=None, description="Opaque cursor of the preceding page; null at the start.")


class Page(BaseModel, Generic[T]):
    """A list response: ``{"data": [...], "page": {...}}``."""

    data: list[T]
    page: PageMeta


def offset_page(rows: Sequence[T], params: OffsetParams) -> tuple[list[T], PageMeta]:
    """Cut ``rows`` (fetched with ``limit + 1``) to one offset page and compute its ``page`` metadata.

    Args:
        rows: up to ``params.limit + 1`` records, in the list's order.
        params: the request's ``limit`` and ``offset``.

    Returns:
        The page's records and its :class:`PageMeta` (no cursors).
    """
    has_more = len(rows) > params.limit
    data = list(rows[: params.limit])
    meta = PageMeta(
        next=str(params.offset + len(data)) if has_more else None,
        limit=len(data),
        previous=max(params.offset - params.limit, 0) if params.offset > 0 else None,
    )
    return data, meta
