"""Pagination: the brief's offsets (docs/contract.md §1) and signed keyset cursors (docs/contract.md §2).

``page`` is ``{"next": "<offset>" | null, "limit": <count in this page>,
"previous": <offset> | null, "next_cursor": "<opaque>" | null,
"prev_cursor": "<opaque>" | null}``. Lists fetch ``limit + 1`` records so the
next page's existence is known without a ``count`` query.

How a list adopts cursors (products, orders, users all do it this way):

1. The route takes ``page: Pagination`` (``limit``, ``offset``, ``cursor``;
   ``cursor`` with ``offset`` → 422).
2. The service opens a window for the request's filters and sort:
   ``window = page.window(scope="products", filters={...}, sort=SortOrder.parse("-price"))``
   (a tampered, foreign or mismatched cursor → 400 ``invalid_cursor``).
3. The repository runs :func:`keyset_stages` / :func:`keyset_sort` (or
   :func:`find_window` for plain ``find`` lists) and returns up to
   ``window.fetch`` rows.
4. The service calls ``window.finish(rows)`` → ``(records, PageMeta)``.

A cursor is URL-safe base64 of ``{v, s: sort, f: filter fingerprint, k: last
sort key, i: last _id, d: "next" | "prev"}`` (BSON canonical extended JSON so
``ObjectId``, ``Decimal128`` and dates survive exactly) followed by ``.`` and an
HMAC-SHA256 of those bytes under a key derived from ``settings.signing_key``.
Cursor pages cost the same at any depth: the query is a range on the sort key
and ``_id``, never a skip.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from bson import Decimal128, ObjectId, json_util
from bson.errors import BSONError
from bson.json_util import CANONICAL_JSON_OPTIONS
from fastapi import Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from backend_app.core.config import AppSettings
from backend_app.core.errors import DomainError, UnprocessableError

T = TypeVar("T")

MAX_LIMIT = 100
DEFAULT_LIMIT = 10
MAX_OFFSET = 10_000
#: Longest accepted ``cursor`` query value, in characters.
MAX_CURSOR_LENGTH = 1024
CURSOR_VERSION = 1
#: Domain separation: the cursor key is derived from the signing key, so a
#: cursor MAC can never be confused with a JWT signature.
_CURSOR_KEY_LABEL = b"storefront/cursor/v1"


class InvalidCursorError(DomainError):
    """A cursor is tampered, truncated, foreign, or reused with other filters or sort: 400 (docs/contract.md §2)."""

    status = 400
    code = "invalid_cursor"
    title = "Invalid cursor"

    def __init__(self, detail: str = "The cursor is invalid for this list; start again without a cursor.") -> None:
        super().__init__(detail)


# --------------------------------------------------------------------------- sort and cursor values


@dataclass(frozen=True, slots=True)
class SortOrder:
    """A list's order: ``field`` then ``_id`` as tie-breaker, both in ``direction``.

    Attributes:
        field: the sort key's document field (``_id`` for the default order).
        direction: ``1`` ascending, ``-1`` descending.
    """

    field: str = "_id"
    direction: Literal[1, -1] = 1

    @classmethod
    def parse(cls, token: str) -> SortOrder:
        """Parse a ``sort`` value such as ``price`` or ``-created_at`` (``-`` prefix: descending)."""
        direction: Literal[1, -1] = -1 if token.startswith("-") else 1
        return cls(field=token.lstrip("-"), direction=direction)

    @property
    def token(self) -> str:
        """The canonical text of this order (``-price``), bound into cursors."""
        return ("-" if self.direction == -1 else "") + self.field


ID_ORDER = SortOrder()


@dataclass(frozen=True, slots=True)
class CursorPosition:
    """The boundary record a cursor points at.

    Attributes:
        key: the boundary record's sort-key value (``None`` when sorting by ``_id``).
        id: the boundary record's ``_id``.
        before: ``True`` for a ``prev_cursor`` (records preceding the boundary),
            ``False`` for a ``next_cursor`` (records following it).
    """

    key: Any
    id: ObjectId
    before: bool = False


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def filter_fingerprint(scope: str, filters: Mapping[str, Any]) -> str:
    """A stable digest of a list's identity: its ``scope`` (e.g. ``products``) and filter values.

    Values are rendered with ``str`` when not JSON-native (``Decimal``), keys sorted,
    so equal filters give equal fingerprints across processes.
    """
    canonical = json.dumps({"scope": scope, "filters": dict(filters)}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


class CursorCodec:
    """Signs and verifies cursors with HMAC-SHA256 (RFC 2104).

    Args:
        secret: the application's signing key (``settings.signing_key``); the
            cursor key is derived from it with a fixed label.
    """

    __slots__ = ("_key",)

    def __init__(self, secret: str) -> None:
        self._key = hmac.new(secret.encode("utf-8"), _CURSOR_KEY_LABEL, hashlib.sha256).digest()

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def encode(self, *, fingerprint: str, sort: SortOrder, position: CursorPosition) -> str:
        """Return the opaque, URL-safe cursor for ``position`` in the list ``fingerprint`` ordered by ``sort``."""
        body = {
            "v": CURSOR_VERSION,
            "s": sort.token,
            "f": fingerprint,
            "k": position.key,
            "i": position.id,
            "d": "prev" if position.before else "next",
        }
        payload = json_util.dumps(body, json_options=CANONICAL_JSON_OPTIONS, separators=(",", ":")).encode("utf-8")
        return f"{_b64encode(payload)}.{_b64encode(self._mac(payload))}"

    def decode(self, token: str, *, fingerprint: str, sort: SortOrder) -> CursorPosition:
        """Verify ``token`` and return its position.

        Raises:
            InvalidCursorError: malformed, truncated, bad signature, another
                version, or issued for other filters or another sort (docs/contract.md §2).
        """
        try:
            payload_text, mac_text = token.split(".")
            payload, mac = _b64decode(payload_text), _b64decode(mac_text)
        except (ValueError, binascii.Error):
            raise InvalidCursorError("The cursor is malformed or truncated.") from None
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise InvalidCursorError("The cursor's signature does not match; it was altered or not issued here.")
        try:
            body = json_util.loads(payload.decode("utf-8"), json_options=CANONICAL_JSON_OPTIONS)
            version, sort_token, bound, key, last_id, way = (
                body["v"],
                body["s"],
                body["f"],
                body["k"],
                body["i"],
                body["d"],
            )
        except (ValueError, KeyError, TypeError, BSONError):
            raise InvalidCursorError("The cursor is malformed.") from None
        if version != CURSOR_VERSION or not isinstance(last_id, ObjectId) or way not in ("next", "prev"):
            raise InvalidCursorError("The cursor is malformed.")
        if sort_token != sort.token or bound != fingerprint:
            raise InvalidCursorError("The cursor was issued for other filters or another sort order.")
        return CursorPosition(key=key, id=last_id, before=way == "prev")


# --------------------------------------------------------------------------- request parameters


class OffsetParams(BaseModel):
    """Validated ``limit`` (1..100, default 10) and ``offset`` (0..10000) query values."""

    limit: int = DEFAULT_LIMIT
    offset: int = 0


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


def page_params(
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
    """FastAPI dependency reading ``limit``, ``offset`` and ``cursor`` (docs/contract.md §1, §2).

    Raises:
        UnprocessableError: ``cursor`` and ``offset`` both given (422).
    """
    if cursor is not None and offset is not None:
        raise UnprocessableError("Give either 'cursor' or 'offset', not both.", field=("query", "offset"))
    return PageParams(limit=limit, offset=offset or 0, cursor=cursor, codec=CursorCodec(settings.signing_key))


#: ``limit`` + ``offset`` + ``cursor`` of a list route (docs/contract.md §1, §2).
Pagination = Annotated[PageParams, Depends(page_params)]


# --------------------------------------------------------------------------- response


class PageMeta(BaseModel):
    """The brief's ``page`` object plus the cursors of docs/contract.md §2.

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
    """A list response: ``{"data": [...], "page": {...}}`` (docs/contract.md §1)."""

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
        return -self.sort.direction if self.backward else self.sort.direction  # type: ignore[return-value]

    def _cursor(self, doc: Mapping[str, Any], *, before: bool) -> str:
        key = None if self.sort.field == "_id" else doc.get(self.sort.field)
        return self.codec.encode(
            fingerprint=self.fingerprint, sort=self.sort, position=CursorPosition(key=key, id=doc["_id"], before=before)
        )

    def finish(self, rows: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], PageMeta]:
        """Cut ``rows`` (up to :attr:`fetch`, in :attr:`scan_direction`) to the page, in list order.

        Returns:
            The page's documents and its :class:`PageMeta`: offsets in offset
            mode (with cursors to switch to keyset paging), ``next``/``previous``
            null in cursor mode (docs/contract.md §2).
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


# --------------------------------------------------------------------------- repository helpers


def _as_operators(condition: Any) -> dict[str, Any] | None:
    if isinstance(condition, dict):
        return condition if condition and all(str(k).startswith("$") for k in condition) else None
    return {"$eq": condition}


_LOWER_BOUNDS = {"$gt", "$gte"}
_UPPER_BOUNDS = {"$lt", "$lte"}


def _comparable(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:  # BSON dates are UTC; cursors decode them naive
        return value.replace(tzinfo=UTC)
    return value.to_decimal() if isinstance(value, Decimal128) else value


def _merge_operators(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any] | None:
    """One operator document meaning ``left`` AND ``right``, or ``None`` if that needs ``$and``."""
    merged = dict(left)
    for op, value in right.items():
        if op not in merged:
            merged[op] = value
            continue
        if op not in _LOWER_BOUNDS | _UPPER_BOUNDS:
            return None
        try:
            right_is_tighter = _comparable(value) > _comparable(merged[op])
        except TypeError:
            return None
        if right_is_tighter == (op in _LOWER_BOUNDS):
            merged[op] = value
    return merged


def merge_filters(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` AND ``extra`` as one flat filter document where possible.

    Conditions on the same field are merged into one operator document
    (``{"$gte": 10}`` + ``{"$gt": 12}``; of two bounds with the same operator
    the tighter is kept), so the planner still sees a single range per field;
    otherwise the two are joined with ``$and``.
    """
    merged = dict(base)
    for field, condition in extra.items():
        if field not in merged:
            merged[field] = condition
            continue
        left, right = _as_operators(merged[field]), _as_operators(condition)
        combined = _merge_operators(left, right) if left is not None and right is not None else None
        if combined is None:
            return {"$and": [dict(base), dict(extra)]}
        merged[field] = combined
    return merged


def keyset_stages(base: Mapping[str, Any], window: PageWindow) -> list[dict[str, Any]]:
    """The filter documents to run, in order, for ``window`` over the list ``base``.

    - Offset mode or the first page: ``[base]``.
    - Sort by ``_id``: ``[base ∧ {_id: {$gt|$lt: last}}]``.
    - Sort by ``key`` then ``_id``: ``[base ∧ {key: last_key, _id: beyond last},
      base ∧ {key: beyond last_key}]`` — two plain ranges instead of one
      ``$or``, so each is an index range scan on ``{..., key, _id}`` (the
      embedded server plans any ``$or`` as a collection scan; docs/contract.md §9).

    Stages are disjoint and ordered, so concatenating their results in
    :func:`keyset_sort` order gives the page.
    """
    position = window.position
    if position is None:
        return [dict(base)]
    beyond = "$gt" if window.scan_direction == 1 else "$lt"
    if window.sort.field == "_id":
        return [merge_filters(base, {"_id": {beyond: position.id}})]
    field = window.sort.field
    # Stage 1 pins the sort key to the boundary value. The cursor is signed and
    # bound to these filters, so that value came from a record that satisfied
    # ``base``'s condition on ``field`` (e.g. a price range): the equality alone
    # implies it, and replacing it keeps the stage an equality prefix + one range.
    return [
        merge_filters({**base, field: position.key}, {"_id": {beyond: position.id}}),
        merge_filters(base, {field: {beyond: position.key}}),
    ]


def keyset_sort(window: PageWindow) -> dict[str, int]:
    """The ``$sort``/``sort()`` document for ``window``: sort key then ``_id``, in scan direction."""
    direction = window.scan_direction
    if window.sort.field == "_id":
        return {"_id": direction}
    return {window.sort.field: direction, "_id": direction}


async def read_window(
    base: Mapping[str, Any],
    window: PageWindow,
    read: Callable[[dict[str, Any], int], Awaitable[list[dict[str, Any]]]],
) -> list[dict[str, Any]]:
    """Call ``read(filter, limit)`` for each of :func:`keyset_stages` until ``window.fetch`` rows are read.

    ``read`` must return rows matching ``filter`` in :func:`keyset_sort` order,
    skipping ``window.skip``. At most two calls (one for ``_id`` order).
    """
    rows: list[dict[str, Any]] = []
    for stage in keyset_stages(base, window):
        need = window.fetch - len(rows)
        rows.extend(await read(stage, need))
        if len(rows) >= window.fetch:
            break
    return rows


async def find_window(
    collection: Any,
    base: Mapping[str, Any],
    window: PageWindow,
    *,
    projection: Mapping[str, Any] | None = None,
    max_time_ms: int | None = None,
) -> list[dict[str, Any]]:
    """:func:`read_window` with ``find``: the rows of ``window`` over the list ``base`` in ``collection``.

    Raises whatever the driver raises (``ExecutionTimeout`` when
    ``max_time_ms`` is exceeded).
    """
    sort = list(keyset_sort(window).items())

    async def read(stage: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        cursor = collection.find(stage, projection).sort(sort).skip(window.skip).limit(limit)
        if max_time_ms is not None:
            cursor = cursor.max_time_ms(max_time_ms)
        return await cursor.to_list(length=limit)

    return await read_window(base, window, read)
