"""Pagination of list routes: the brief's offsets and signed keyset cursors.

Lists fetch ``limit + 1`` records so the next page's existence is known without
a ``count`` query. This module is the request side: the ``Pagination``
dependency and the :class:`PageWindow` a request reads. The cursor codec is
``core.cursors``, the response models ``core.pages``, and the MongoDB filters of
a window ``core.keyset`` (used by repositories only).

How a list adopts cursors (products, orders, users all do it this way):

1. The route takes ``page: Pagination`` (``limit``, ``offset``, ``cursor``;
   ``cursor`` with ``offset`` → 422) and answers ``Page[Model]`` (``core.pages``).
2. The service opens a window for the request's filters and sort:
   ``window = page.window(scope="products", filters={...}, sort=SortOrder.parse("-price"))``
   (a tampered, foreign or mismatched cursor → 400 ``invalid_cursor``).
3. The repository runs ``core.keyset``'s :func:`~backend_app.core.keyset.keyset_stages` /
   :func:`~backend_app.core.keyset.keyset_sort` (or
   :func:`~backend_app.core.keyset.find_window` for plain ``find`` lists) and returns up to
   ``window.fetch`` rows.
4. The service calls ``window.finish(rows)`` → ``(records, PageMeta)``.

Cursor pages cost the same at any depth: the query is a range on the sort key
and ``_id``, never a skip.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, Query
from pydantic import ConfigDict, Field

from backend_app.core.config import AppSettings
from backend_app.core.cursors import (
    ID_ORDER,
    MAX_CURSOR_LENGTH,
    CursorCodec,
    CursorPosition,
    SortOrder,
    filter_fingerprint,
)
from backend_app.core.errors import UnprocessableError
from backend_app.core.pages import DEFAULT_LIMIT, OffsetParams, PageMeta, offset_page

MAX_LIMIT = 100
MAX_OFFSET = 10_000

#: A row of a list as a repository returns it: a stored document (or a projection of one) of any domain.
Row = TypeVar("Row", bound=Mapping[str, Any])


class PageParams(OffsetParams):
    """``limit``, ``offset`` and ``cursor`` of one list request, with the codec that checks cursors."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    cursor: str | None = None
    codec: CursorCodec | None = Field(default=None, exclude=True, repr=False)

    def window(self, *, scope: str, filters: Mapping[str, Any], sort: SortOrder = ID_ORDER) -> PageWindow:
        """Open the page this request asks for in the list ``scope`` with ``filters`` and ``sort``.

        Args:
            scope: the list's name (``products``, ``orders``, ``users``), so a
                cursor of one list is foreign to every other.
            filters: every filter value that shapes the list (``None`` for unused).
            sort: the list's order.

        Raises:
            InvalidCursorError: the cursor does not verify or belongs to other
                filters, another sort or another list (400).
        """
        if self.codec is None:
            raise RuntimeError("PageParams.codec is not set; build PageParams through the Pagination dependency")
        codec = self.codec
        fingerprint = filter_fingerprint(scope, filters)
        position = codec.decode(self.cursor, fingerprint=fingerprint, sort=sort) if self.cursor else None
        return PageWindow(
            sort=sort,
            limit=self.limit,
            skip=0 if position else self.offset,
            position=position,
            fingerprint=fingerprint,
            codec=codec,
        )


async def page_params(
    settings: AppSettings,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Records per page (1..100).")] = DEFAULT_LIMIT,
    offset: Annotated[
        int | None,
        Query(ge=0, le=MAX_OFFSET, description="Records to skip in the list's order (0..10000); not with `cursor`."),
    ] = None,
    cursor: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=MAX_CURSOR_LENGTH,
            description="Opaque `next_cursor` or `prev_cursor` of an earlier page of the same list.",
        ),
    ] = None,
) -> PageParams:
    """FastAPI dependency reading ``limit`` (1 to 100), ``offset`` (0 to 10,000) and ``cursor``.

    Raises:
        UnprocessableError: ``cursor`` and ``offset`` both given (422).
    """
    if cursor is not None and offset is not None:
        raise UnprocessableError("Give either 'cursor' or 'offset', not both.", field=("query", "offset"))
    return PageParams(limit=limit, offset=offset or 0, cursor=cursor, codec=CursorCodec(settings.signing_key))


#: ``limit`` + ``offset`` + ``cursor`` of a list route.
Pagination = Annotated[PageParams, Depends(page_params)]


# --------------------------------------------------------------------------- the window a request reads


@dataclass(frozen=True, slots=True)
class PageWindow:
    """The slice of a list one request reads, and how to describe it afterwards.

    Attributes:
        sort: the list's order.
        limit: records in a full page.
        skip: records to skip (offset mode; 0 in cursor mode).
        position: the decoded cursor, ``None`` in offset mode.
        fingerprint: the list's filter fingerprint, bound into new cursors.
        codec: signs the cursors of the response.
    """

    sort: SortOrder
    limit: int
    skip: int
    position: CursorPosition | None
    fingerprint: str
    codec: CursorCodec

    @property
    def fetch(self) -> int:
        """Rows a repository should fetch: ``limit + 1`` (the extra one says whether more follow)."""
        return self.limit + 1

    @property
    def backward(self) -> bool:
        """Whether this page reads towards the start of the list (a ``prev_cursor``)."""
        return self.position is not None and self.position.before

    @property
    def scan_direction(self) -> Literal[1, -1]:
        """The direction rows are fetched in: the sort's, inverted for a backward page."""
        return -self.sort.direction if self.backward else self.sort.direction

    def _cursor(self, doc: Mapping[str, Any], *, before: bool) -> str:
        key = None if self.sort.field == "_id" else doc.get(self.sort.field)
        return self.codec.encode(
            fingerprint=self.fingerprint, sort=self.sort, position=CursorPosition(key=key, id=doc["_id"], before=before)
        )

    def finish(self, rows: Sequence[Row]) -> tuple[list[Row], PageMeta]:
        """Cut ``rows`` (up to :attr:`fetch`, in :attr:`scan_direction`) to the page, in list order.

        Returns:
            The page's documents and its :class:`PageMeta`: offsets in offset
            mode (with cursors to switch to keyset paging), ``next``/``previous``
            null in cursor mode.
        """
        if self.position is None:  # offset mode: the brief's page, plus cursors to switch to keyset paging
            data, meta = offset_page(rows, OffsetParams(limit=self.limit, offset=self.skip))
            meta.next_cursor = self._cursor(data[-1], before=False) if meta.next is not None else None
            meta.prev_cursor = self._cursor(data[0], before=True) if self.skip > 0 and data else None
            return data, meta
        has_more = len(rows) > self.limit
        data = list(rows[: self.limit])
        if self.backward:
            data.reverse()
        first, last = (data[0], data[-1]) if data else (None, None)
        more_after = has_more if not self.backward else True
        more_before = has_more if self.backward else True
        return data, PageMeta(
            next=None,
            limit=len(data),
            previous=None,
            next_cursor=self._cursor(last, before=False) if more_after and last is not None else None,
            prev_cursor=self._cursor(first, before=True) if more_before and first is not None else None,
        )
