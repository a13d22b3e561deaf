"""Offset pagination with the brief's ``page`` metadata (spec §1).

``page`` is ``{"next": "<offset>" | null, "limit": <count in this page>,
"previous": <offset> | null}``. Lists fetch ``limit + 1`` records so ``next``
is known without a ``count`` query.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, Field

T = TypeVar("T")

MAX_LIMIT = 100
DEFAULT_LIMIT = 10
MAX_OFFSET = 10_000


class OffsetParams(BaseModel):
    """Validated ``limit`` (1..100, default 10) and ``offset`` (0..10000) query values."""

    limit: int = DEFAULT_LIMIT
    offset: int = 0


def offset_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Records per page (1..100).")] = DEFAULT_LIMIT,
    offset: Annotated[
        int, Query(ge=0, le=MAX_OFFSET, description="Records to skip, in ascending `_id` order (0..10000).")
    ] = 0,
) -> OffsetParams:
    """FastAPI dependency reading ``limit`` and ``offset``; out of range → 422 (spec §1)."""
    return OffsetParams(limit=limit, offset=offset)


Pagination = Annotated[OffsetParams, Depends(offset_params)]


class PageMeta(BaseModel):
    """The brief's ``page`` object.

    ``next`` is a string (the brief's type), ``previous`` an integer and
    ``limit`` the number of records in this page, not the requested limit.
    """

    next: str | None = Field(description="Offset of the next page, as a string; null when no record follows.")
    limit: int = Field(description="Number of records in this page.")
    previous: int | None = Field(description="Offset of the previous page (clamped at 0); null on the first page.")


class Page(BaseModel, Generic[T]):
    """A list response: ``{"data": [...], "page": {...}}`` (spec §1)."""

    data: list[T]
    page: PageMeta


def offset_page(rows: Sequence[T], params: OffsetParams) -> tuple[list[T], PageMeta]:
    """Cut ``rows`` (fetched with ``limit + 1``) to one page and compute its ``page`` metadata.

    Args:
        rows: up to ``params.limit + 1`` records, in ascending ``_id`` order.
        params: the request's ``limit`` and ``offset``.

    Returns:
        The page's records and its :class:`PageMeta`.
    """
    has_more = len(rows) > params.limit
    data = list(rows[: params.limit])
    meta = PageMeta(
        next=str(params.offset + len(data)) if has_more else None,
        limit=len(data),
        previous=max(params.offset - params.limit, 0) if params.offset > 0 else None,
    )
    return data, meta
