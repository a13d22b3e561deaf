"""Unit tests, no database: exact money and object ids in ``core.types`` (docs/contract.md §1, §6)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from bson import Decimal128, ObjectId
from pydantic import BaseModel

from backend_app.core.types import Money, from_bson_money, oid, to_decimal128


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        (Decimal("19.99"), "19.99"),
        (Decimal("10"), "10.00"),
        (Decimal("0.125"), "0.12"),  # half-even: to the even cent
        (Decimal("0.135"), "0.14"),
    ],
)
def test_money_is_stored_as_decimal128_in_cents_rounded_half_even(value: Decimal, stored: str) -> None:
    assert to_decimal128(value) == Decimal128(stored)


@pytest.mark.parametrize(
    ("value", "read"),
    [
        (Decimal128("59.97"), Decimal("59.97")),
        (5, Decimal("5.00")),
        (0.1 + 0.2, Decimal("0.30")),  # a float written by an old document: no binary noise survives
        (19.99, Decimal("19.99")),
    ],
)
def test_stored_money_of_any_bson_type_reads_as_exact_cents(value: object, read: Decimal) -> None:
    assert from_bson_money(value) == read
    assert from_bson_money(value).as_tuple().exponent == -2


def test_money_round_trips_and_is_a_json_number() -> None:
    class Priced(BaseModel):
        total: Money

    total = from_bson_money(to_decimal128(Decimal("3") * Decimal("19.99") + Decimal("5.00")))
    assert Priced(total=total).model_dump_json() == '{"total":64.97}'


def test_oid_parses_the_24_hex_form() -> None:
    assert oid("65f1c0ffee0000000000beef") == ObjectId("65f1c0ffee0000000000beef")
