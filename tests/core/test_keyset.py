"""Keyset filter building (``core.keyset``) as pure functions: no database, no HTTP.

Each case builds a :class:`PageWindow` the way a request does (``PageParams.window``
with a cursor the codec signed) and checks the filter and sort documents a
repository would run. That each shape is served by an index is checked against the
embedded server in ``test_indexes.py``; here only the documents themselves.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from bson import Decimal128, ObjectId

from backend_app.core.cursors import CursorCodec, CursorPosition, SortOrder, filter_fingerprint
from backend_app.core.keyset import keyset_sort, keyset_stages, merge_filters, read_window
from backend_app.core.pagination import PageParams, PageWindow

CODEC = CursorCodec("unit-test-signing-key")
LAST_ID = ObjectId("65f000000000000000000001")


def window(*, sort: str = "_id", key=None, before: bool = False, cursor: bool = True, offset: int = 0) -> PageWindow:
    """A window over the list ``unit`` (no filters) with a signed cursor at (``key``, ``LAST_ID``), or none."""
    order = SortOrder.parse(sort)
    token = None
    if cursor:
        position = CursorPosition(key=key, id=LAST_ID, before=before)
        token = CODEC.encode(fingerprint=filter_fingerprint("unit", {}), sort=order, position=position)
    params = PageParams(limit=5, offset=offset, cursor=token, codec=CODEC)
    return params.window(scope="unit", filters={}, sort=order)


# --------------------------------------------------------------------------- merge_filters


def test_merge_disjoint_fields_is_a_flat_union():
    assert merge_filters({"status": "pending"}, {"_id": {"$gt": LAST_ID}}) == {
        "status": "pending",
        "_id": {"$gt": LAST_ID},
    }


def test_merge_same_field_bounds_into_one_range():
    assert merge_filters({"price": {"$gte": 10}}, {"price": {"$lt": 20}}) == {"price": {"$gte": 10, "$lt": 20}}


@pytest.mark.parametrize(
    ("base", "extra", "expected"),
    [
        ({"$gt": 10}, {"$gt": 12}, {"$gt": 12}),  # tighter lower bound wins
        ({"$gt": 12}, {"$gt": 10}, {"$gt": 12}),
        ({"$lt": 20}, {"$lt": 15}, {"$lt": 15}),  # tighter upper bound wins
        ({"$lt": 15}, {"$lt": 20}, {"$lt": 15}),
        ({"$gte": Decimal128("9.99")}, {"$gte": Decimal("12.50")}, {"$gte": Decimal("12.50")}),  # Decimal128 vs Decimal
    ],
)
def test_merge_keeps_the_tighter_of_two_same_operator_bounds(base, extra, expected):
    assert merge_filters({"price": base}, {"price": extra}) == {"price": expected}


def test_merge_compares_naive_cursor_dates_as_utc():
    aware = datetime(2026, 1, 1, 12, tzinfo=UTC)
    naive_later = datetime(2026, 1, 1, 13)  # how a cursor decodes a BSON date
    merged = merge_filters({"created_at": {"$gt": aware}}, {"created_at": {"$gt": naive_later}})
    assert merged == {"created_at": {"$gt": naive_later}}


def test_merge_equality_with_a_range_on_the_same_field():
    assert merge_filters({"status": "pending"}, {"status": {"$ne": "expired"}}) == {
        "status": {"$eq": "pending", "$ne": "expired"}
    }


@pytest.mark.parametrize(
    ("base", "extra"),
    [
        ({"status": "pending"}, {"status": "cancelled"}),  # two equalities: needs $and
        ({"name": {"$regex": "^a"}}, {"name": {"$regex": "b$"}}),  # same non-bound operator
        ({"tags": {"size": 2}}, {"tags": {"$gt": 1}}),  # a sub-document is not an operator document
        ({"price": {"$gt": "a"}}, {"price": {"$gt": 3}}),  # incomparable bounds
    ],
)
def test_merge_falls_back_to_and_when_one_document_cannot_say_it(base, extra):
    assert merge_filters(base, extra) == {"$and": [base, extra]}


def test_merge_does_not_mutate_its_arguments():
    base, extra = {"price": {"$gte": 10}}, {"price": {"$gt": 12}}
    merge_filters(base, extra)
    assert base == {"price": {"$gte": 10}} and extra == {"price": {"$gt": 12}}


# --------------------------------------------------------------------------- keyset_stages / keyset_sort


def test_offset_mode_runs_the_base_filter_with_its_skip():
    w = window(cursor=False, offset=20)
    assert keyset_stages({"status": "pending"}, w) == [{"status": "pending"}]
    assert w.skip == 20 and w.fetch == 6
    assert keyset_sort(w) == {"_id": 1}


def test_id_order_forward_and_backward_is_one_range_on_id():
    forward, backward = window(), window(before=True)
    assert keyset_stages({"user_id": "alice"}, forward) == [{"user_id": "alice", "_id": {"$gt": LAST_ID}}]
    assert keyset_sort(forward) == {"_id": 1}
    assert keyset_stages({"user_id": "alice"}, backward) == [{"user_id": "alice", "_id": {"$lt": LAST_ID}}]
    assert keyset_sort(backward) == {"_id": -1}
    assert forward.skip == 0 and backward.skip == 0  # a cursor page never skips


def test_sort_key_gives_two_disjoint_plain_ranges_not_an_or():
    w = window(sort="price", key=Decimal128("19.99"))
    stages = keyset_stages({"category": "shoes"}, w)
    assert stages == [
        {"category": "shoes", "price": Decimal128("19.99"), "_id": {"$gt": LAST_ID}},
        {"category": "shoes", "price": {"$gt": Decimal128("19.99")}},
    ]
    assert all("$or" not in stage for stage in stages)
    assert keyset_sort(w) == {"price": 1, "_id": 1}


def test_descending_sort_backward_scans_ascending():
    w = window(sort="-price", key=10, before=True)
    assert w.scan_direction == 1
    assert keyset_stages({}, w) == [{"price": 10, "_id": {"$gt": LAST_ID}}, {"price": {"$gt": 10}}]
    assert keyset_sort(w) == {"price": 1, "_id": 1}


def test_descending_sort_forward_uses_less_than():
    w = window(sort="-price", key=10)
    assert keyset_stages({}, w) == [{"price": 10, "_id": {"$lt": LAST_ID}}, {"price": {"$lt": 10}}]
    assert keyset_sort(w) == {"price": -1, "_id": -1}


def test_boundary_equality_replaces_a_range_on_the_sort_key_and_tightens_the_second_stage():
    w = window(sort="price", key=15)
    stages = keyset_stages({"price": {"$gte": 10, "$lte": 50}}, w)
    assert stages == [
        {"price": 15, "_id": {"$gt": LAST_ID}},
        {"price": {"$gte": 10, "$lte": 50, "$gt": 15}},
    ]


# --------------------------------------------------------------------------- read_window


async def test_read_window_stops_once_a_page_and_one_more_are_read():
    w = window(sort="price", key=15)
    calls: list[tuple[dict, int]] = []

    async def read(stage, limit):
        calls.append((stage, limit))
        return [{"_id": ObjectId(), "price": 15}] * min(limit, 6)

    rows = await read_window({}, w, read)
    assert len(rows) == w.fetch == 6
    assert len(calls) == 1  # the first stage filled the page: the second is never run


async def test_read_window_asks_the_second_stage_only_for_the_rest():
    w = window(sort="price", key=15)
    limits: list[int] = []

    async def read(stage, limit):
        limits.append(limit)
        return (
            [{"_id": ObjectId(), "price": 15}] * 2 if len(limits) == 1 else [{"_id": ObjectId(), "price": 16}] * limit
        )

    rows = await read_window({}, w, read)
    assert limits == [6, 4] and len(rows) == 6
