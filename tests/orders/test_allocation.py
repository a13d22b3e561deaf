"""Unit tests, no database: how an order's lines are merged and which sizes they take from (docs/contract.md §5).

``merge_lines`` and ``allocate`` are the pure core of order placement in
``backend_app.orders.allocation``; the HTTP tests (``test_place_order.py``,
``test_order_invariants.py``) show the same rules end to end against a database.
"""

from __future__ import annotations

from typing import Any

import pytest
from bson import ObjectId

from backend_app.orders.allocation import Line, allocate, merge_lines
from backend_app.orders.exceptions import InsufficientStockError, UnknownSizeError
from backend_app.orders.schemas import OrderItemCreate

A = ObjectId("65f1c0ffee0000000000000a")
B = ObjectId("65f1c0ffee0000000000000b")


def item(product_id: ObjectId | str, qty: int, size: str | None = None) -> OrderItemCreate:
    """A validated request line, as the router hands it to the service."""
    return OrderItemCreate(productId=str(product_id), qty=qty, size=size)


def product(**sizes: int) -> dict[str, Any]:
    """A product document holding ``sizes`` (in the given order) as the repository reads it."""
    return {"sizes": [{"size": size, "quantity": quantity} for size, quantity in sizes.items()]}


# --- merge_lines ------------------------------------------------------------------------------------


def test_merge_lines_sums_duplicate_product_and_size_pairs_in_first_seen_order() -> None:
    lines = merge_lines([item(B, 1), item(A, 2, "m"), item(B, 3), item(A, 1, "m"), item(A, 4)])
    assert lines == [
        Line(product_id=B, size=None, qty=4),
        Line(product_id=A, size="m", qty=3),
        Line(product_id=A, size=None, qty=4),
    ]


def test_merge_lines_keeps_different_sizes_of_one_product_apart() -> None:
    lines = merge_lines([item(A, 1, "s"), item(A, 1, "m"), item(A, 1, "s")])
    assert [(line.size, line.qty) for line in lines] == [("s", 2), ("m", 1)]


def test_merge_lines_treats_an_id_in_upper_case_as_the_same_product() -> None:
    lines = merge_lines([item(str(A), 1), item(str(A).upper(), 2)])
    assert lines == [Line(product_id=A, size=None, qty=3)]


def test_merge_lines_of_a_single_line_is_that_line() -> None:
    assert merge_lines([item(A, 7, "xl")]) == [Line(product_id=A, size="xl", qty=7)]


# --- allocate ---------------------------------------------------------------------------------------


def test_a_line_naming_a_size_takes_only_from_it() -> None:
    assert allocate([Line(A, "m", 2)], {A: product(s=5, m=3)}) == [{"m": 2}]


def test_a_line_without_a_size_takes_a_single_size_products_only_size() -> None:
    assert allocate([Line(A, None, 4)], {A: product(**{"one-size": 4})}) == [{"one-size": 4}]


def test_a_line_without_a_size_takes_across_sizes_in_listed_order() -> None:
    assert allocate([Line(A, None, 5)], {A: product(s=2, m=0, l=4)}) == [{"s": 2, "l": 3}]


def test_sized_lines_are_served_first_whatever_their_position() -> None:
    """The unsized line comes first in the order but takes only what the sized line leaves."""
    taken = allocate([Line(A, None, 3), Line(A, "s", 2)], {A: product(s=2, m=3)})
    assert taken == [{"m": 3}, {"s": 2}]


def test_lines_of_different_products_take_from_their_own_stock() -> None:
    taken = allocate([Line(A, None, 1), Line(B, "m", 1)], {A: product(m=1), B: product(m=1)})
    assert taken == [{"m": 1}, {"m": 1}]


def test_exactly_the_stock_is_allowed_and_one_more_is_short() -> None:
    assert allocate([Line(A, None, 5)], {A: product(s=2, m=3)}) == [{"s": 2, "m": 3}]
    with pytest.raises(InsufficientStockError):
        allocate([Line(A, None, 6)], {A: product(s=2, m=3)})


def test_every_short_line_is_listed_with_what_is_available() -> None:
    products = {A: product(s=1, m=2), B: product(m=5)}
    with pytest.raises(InsufficientStockError) as caught:
        allocate([Line(A, "s", 2), Line(B, "m", 5), Line(A, None, 3)], products)
    # The sized line of A is short (nothing taken), so the unsized one sees all of A: 3 units, enough.
    assert caught.value.extra["lines"] == [{"productId": str(A), "size": "s", "requested": 2, "available": 1}]

    with pytest.raises(InsufficientStockError) as caught:
        allocate([Line(A, "m", 2), Line(A, None, 2), Line(B, None, 9)], products)
    assert caught.value.extra["lines"] == [
        {"productId": str(A), "size": None, "requested": 2, "available": 1},
        {"productId": str(B), "size": None, "requested": 9, "available": 5},
    ]


def test_an_unknown_size_is_refused_before_any_stock_check() -> None:
    with pytest.raises(UnknownSizeError) as caught:
        allocate([Line(A, None, 99), Line(A, "xxl", 1)], {A: product(s=1)})
    assert caught.value.extra["productId"] == str(A)


def test_a_product_without_sizes_has_no_stock() -> None:
    with pytest.raises(InsufficientStockError) as caught:
        allocate([Line(A, None, 1)], {A: {"sizes": []}})
    assert caught.value.extra["lines"][0]["available"] == 0


def test_allocate_does_not_change_the_product_documents() -> None:
    products = {A: product(s=2, m=3)}
    allocate([Line(A, None, 4)], products)
    assert products == {A: product(s=2, m=3)}
