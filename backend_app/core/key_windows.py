"""Key windows: list queries that read about one page on a server that materialises every candidate.

SecantusDB 0.7.0b3 materialises and sorts *every* document a query's index
range selects before applying the limit (``Storage.find_matching``: no early
stop). So a list query costs what its index range holds, not what the page
needs. Each keyset stage that is a range on the sort key (the first page, or
"beyond the cursor") is therefore cut into consecutive *windows* of that key,
run in scan order until the page is full; each window is an equality prefix
plus one range on the sort key, one index range scan on both servers. See
docs/architecture.md (Catalog at scale) ("Key windows"); the catalog and the order lists
use it.

Repository-side, like ``core.keyset``: only repositories import this module.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId

from backend_app.core.keyset import merge_filters
from backend_app.core.pagination import Row


@dataclass(frozen=True, slots=True)
class KeyAxis:
    """How to cut a sort key into windows: its values as integer coordinates and back.

    Attributes:
        field: the stored sort key.
        coord: a stored value's coordinate (rounded down).
        value: the smallest stored value at a coordinate (a filter bound).
        first_span: width of the first window, in coordinates.
        relative: widths grow with the distance from zero (prices: a window
            is a share of the price) instead of from the first window (time).
    """

    field: str
    coord: Callable[[Any], int]
    value: Callable[[int], Any]
    first_span: int
    relative: bool = False


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ms(value: datetime) -> int:
    """Whole milliseconds since 1970 (rounded down; a naive datetime is UTC, as BSON dates are)."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return (aware - _EPOCH) // timedelta(milliseconds=1)


#: ``_id`` (an ObjectId) by the second it holds: windows of whole seconds, the first 1 s wide.
ID_AXIS = KeyAxis(
    "_id",
    coord=lambda v: int(v.generation_time.timestamp()),
    value=lambda s: ObjectId.from_datetime(datetime.fromtimestamp(s, UTC)),
    first_span=1,  # seconds
)
#: ``created_at`` by the millisecond: the first window 1 s wide.
CREATED_AT_AXIS = KeyAxis(
    "created_at",
    coord=_ms,
    value=lambda ms: datetime.fromtimestamp(ms / 1000, UTC),
    first_span=1000,  # milliseconds
)
#: Each window is this many times wider than the one before (relative axes: up to doubling the value).
WINDOW_GROWTH = 4


def _bounds(condition: Any, axis: KeyAxis) -> tuple[int | None, int | None]:
    """``(low, high)`` coordinates of a stage's condition on the key: low rounded down, high exclusive."""
    if not isinstance(condition, dict):
        return None, None
    lows = [axis.coord(condition[op]) for op in ("$gt", "$gte") if op in condition]
    highs = [axis.coord(condition[op]) + 1 for op in ("$lt", "$lte") if op in condition]
    return (max(lows) if lows else None), (min(highs) if highs else None)


def _width(axis: KeyAxis, edge: int, step: int, *, up: bool, last: int | None, seen: tuple[int, int] | None) -> int:
    """Width of the next window: fixed growth, or fitted to the rows the last window held.

    ``seen`` is what the reader sent back for the last window: ``(rows it
    held, rows still wanted)``, or ``None``. On a time axis a last window that
    held rows sets the next width from its density (25 % spare), at most
    :data:`WINDOW_GROWTH` times the last width, so an offset page reads about
    the rows it skips, not a whole over-grown window.
    """
    grown: int = axis.first_span * WINDOW_GROWTH**step
    if not axis.relative:
        if last is not None and seen is not None and seen[0] > 0:
            held, wanted = seen
            fitted: int = -(-wanted * last * 5 // (held * 4))
            return max(1, min(fitted, last * WINDOW_GROWTH))
        return grown if last is None else last * WINDOW_GROWTH
    share = abs(edge) >> max(0, 4 - step)  # 1/16, 1/4, then the whole distance from zero
    return max(grown, share if up else min(share, abs(edge) // 2), 1)


def key_windows(
    stage: dict[str, Any], axis: KeyAxis, direction: int, extent: tuple[int, int] | None
) -> Generator[dict[str, Any], tuple[int, int] | None, None]:
    """The filters to run, in order, for one range stage on ``axis.field``: ``stage`` cut into windows.

    Windows start at the stage's own bound on the key (a cursor) or, without
    one, at the end of ``extent`` (where the data lies: valid prices, or the
    oldest/newest product recorded in ``catalog_meta``); they widen
    :data:`WINDOW_GROWTH` times per step. They partition the stage and come in
    scan order, so their rows, each sorted by ``(key, _id)``, concatenate into
    the stage's order. The windows before the first and after the last are
    open-ended, so nothing outside ``extent`` (a product written behind the
    API, a stale extent) is ever left out: ``extent`` only decides speed.
    A reader may ``send`` back ``(rows the window held, rows still wanted)``
    to fit the next width (:func:`_width`); plain iteration works too.

    Args:
        stage: a keyset stage (``core.keyset.keyset_stages``) whose
            condition on the key is absent or a range.
        direction: ``1`` ascending, ``-1`` descending (the scan direction).
        extent: ``(lowest, highest + 1)`` coordinates the data spans; ``None``:
            unknown, the stage runs whole.
    """
    low, high = _bounds(stage.get(axis.field), axis)
    if extent is None and (low if direction == 1 else high) is None:
        yield stage
        return
    lo_end, hi_end = extent if extent is not None else (low if low is not None else 0, high if high is not None else 0)

    def piece(lower: int | None, upper: int | None) -> dict[str, Any]:
        bounds: dict[str, Any] = {}
        if lower is not None:
            bounds["$gte"] = axis.value(lower)
        if upper is not None:
            bounds["$lt"] = axis.value(upper)
        merged = merge_filters(stage, {axis.field: bounds}) if bounds else dict(stage)
        # The key's range goes first: when another range or a regex shares the filter, the embedded
        # server serves it from the first clause that leads an index (``window_by_id`` for ``_id``).
        return {axis.field: merged.pop(axis.field), **merged} if axis.field in merged else merged

    step, last, seen = 0, None, None
    if direction == 1:
        edge = low if low is not None else lo_end
        start_open = low is None  # first window also takes everything below the extent
        while True:
            width = _width(axis, edge, step, up=True, last=last, seen=seen)
            upper = edge + width
            if upper >= (high if high is not None else hi_end):
                yield piece(None if start_open else edge, None)
                return
            seen = yield piece(None if start_open else edge, upper)
            edge, step, start_open, last = upper, step + 1, False, width
    edge = high if high is not None else hi_end
    end_open = high is None  # first window also takes everything above the extent
    while True:
        width = _width(axis, edge, step, up=False, last=last, seen=seen)
        lower = edge - width
        if lower <= (low if low is not None else lo_end):
            yield piece(None, None if end_open else edge)
            return
        seen = yield piece(lower, None if end_open else edge)
        edge, step, end_open, last = lower, step + 1, False, width


class WindowReader:
    """Reads keyset stages window by window, carrying an offset across windows (and stages).

    Args:
        axis: the sort key's axis.
        direction: ``1`` ascending, ``-1`` descending (the scan direction).
        extent: ``(lowest, highest + 1)`` coordinates the data spans, or ``None`` (stages run whole).
        skip: rows to skip before the page (offset mode); each window's rows count against it.
    """

    def __init__(self, axis: KeyAxis, direction: int, extent: tuple[int, int] | None, *, skip: int = 0) -> None:
        self.axis = axis
        self.direction = direction
        self.extent = extent
        self.skip_left = skip

    async def read(
        self, stage: dict[str, Any], limit: int, find: Callable[[dict[str, Any], int], Awaitable[list[Row]]]
    ) -> list[Row]:
        """Up to ``limit`` rows of ``stage`` after the offset left, in scan order.

        ``find(filter, n)`` must return the first ``n`` rows matching
        ``filter`` in the stage's sort order. A stage pinning the key to one
        value (a cursor's ties) is one call; a range stage is cut into
        :func:`key_windows`, each window's fill sent back to fit the next.
        """
        field = self.axis.field
        ranged = field not in stage or isinstance(stage[field], dict)
        pieces = key_windows(stage, self.axis, self.direction, self.extent) if ranged else _only(stage)
        rows: list[Row] = []
        piece = next(pieces)
        while True:
            want = self.skip_left + limit - len(rows)
            found = await find(piece, want)
            rows.extend(found[self.skip_left :])
            self.skip_left = max(0, self.skip_left - len(found))
            if len(rows) >= limit:
                return rows
            try:
                piece = pieces.send((len(found), self.skip_left + limit - len(rows))) if ranged else next(pieces)
            except StopIteration:
                return rows


def _only(stage: dict[str, Any]) -> Generator[dict[str, Any], tuple[int, int] | None, None]:
    """``stage`` alone, shaped as :func:`key_windows` (a stage on one key value needs no windows)."""
    yield stage
