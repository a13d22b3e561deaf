"""Shared field types: object ids, exact money, and UTC datetimes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Any

from bson import Decimal128, ObjectId
from pydantic import Field, PlainSerializer

#: A MongoDB ObjectId in its 24-hex-digit text form; anything else → 422.
ObjectIdStr = Annotated[
    str,
    Field(pattern=r"^[0-9a-fA-F]{24}$", examples=["65f1c0ffee0000000000beef"], description="24-hex ObjectId."),
]

CENT = Decimal("0.01")

#: Money as an exact decimal with at most 2 places, shown as a JSON number
#: (``59.97``, never ``59.970000000000006``).
Money = Annotated[
    Decimal,
    PlainSerializer(lambda v: float(v), return_type=float, when_used="json"),
]


def to_decimal128(value: Decimal) -> Decimal128:
    """Store ``value`` (quantized to cents) as BSON ``Decimal128``."""
    return Decimal128(value.quantize(CENT, rounding=ROUND_HALF_EVEN))


def from_bson_money(value: Any) -> Decimal:
    """Read a stored money value (``Decimal128``, int or float) as a ``Decimal`` in cents."""
    if isinstance(value, Decimal128):
        value = value.to_decimal()
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_EVEN)


def oid(value: str) -> ObjectId:
    """Parse a validated 24-hex string into an ``ObjectId``."""
    return ObjectId(value)


def as_utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime: a naive one is read as UTC (what the driver returns unless
    the client is ``tz_aware``), an aware one converted."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
