"""Keyset paging in MongoDB terms: the filter and sort documents of a :class:`PageWindow`.

Repository-side: only repositories import this module (the one layer that
builds MongoDB filters; docs/development.md). The functions are pure except
:func:`read_window` / :func:`find_window`, which run the stages.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from bson import Decimal128
from pymongo.asynchronous.collection import AsyncCollection

from backend_app.core.pagination import PageWindow, Row


def _as_operators(condition: Any) -> dict[str, Any] | None:
    """``condition`` as an operator document (``5`` → ``{"$eq": 5}``), or ``None`` for a sub-document."""
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
      embedded server plans any ``$or`` as a collection scan).

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
    read: Callable[[dict[str, Any], int], Awaitable[list[Row]]],
) -> list[Row]:
    """Call ``read(filter, limit)`` for each of :func:`keyset_stages` until ``window.fetch`` rows are read.

    ``read`` must return rows matching ``filter`` in :func:`keyset_sort` order,
    skipping ``window.skip``. At most two calls (one for ``_id`` order).
    """
    rows: list[Row] = []
    for stage in keyset_stages(base, window):
        need = window.fetch - len(rows)
        rows.extend(await read(stage, need))
        if len(rows) >= window.fetch:
            break
    return rows


async def find_window(
    collection: AsyncCollection[Row],
    base: Mapping[str, Any],
    window: PageWindow,
    *,
    projection: Mapping[str, Any] | None = None,
    max_time_ms: int | None = None,
) -> list[Row]:
    """:func:`read_window` with ``find``: the rows of ``window`` over the list ``base`` in ``collection``.

    Rows have ``collection``'s document type, so with a ``projection`` the
    caller passes the collection typed as the projected shape.

    Raises whatever the driver raises (``ExecutionTimeout`` when
    ``max_time_ms`` is exceeded).
    """
    sort = list(keyset_sort(window).items())

    async def read(stage: dict[str, Any], limit: int) -> list[Row]:
        cursor = collection.find(stage, projection).sort(sort).skip(window.skip).limit(limit)
        if max_time_ms is not None:
            cursor = cursor.max_time_ms(max_time_ms)
        return await cursor.to_list(length=limit)

    return await read_window(base, window, read)
