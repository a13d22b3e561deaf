"""Request and response models of the catalog."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from backend_app.core.errors import ValidationIssue
from backend_app.core.types import Money

ONE_SIZE = "one-size"

Price = Annotated[Money, Field(gt=0, le=1_000_000, decimal_places=2, examples=[100.0])]
SizeName = Annotated[str, Field(min_length=1, max_length=50, examples=["large"])]
ProductName = Annotated[str, Field(min_length=1, max_length=200, examples=["Classic T-shirt"])]
Description = Annotated[str, Field(max_length=2000)]
Category = Annotated[str, Field(min_length=1, max_length=100, examples=["tops"])]
Rating = Annotated[float, Field(ge=0, le=5)]
Quantity = Annotated[int, Field(ge=0, le=1_000_000_000, description="Units in stock (≥ 0).")]
#: Stock-keeping unit: the caller's own product code, unique among products when given (imports match on it).
Sku = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$",
        examples=["TSH-CLA-RED-001"],
        description="Optional product code (1..64 chars: letters, digits, `.`, `_`, `/`, `-`), unique when given.",
    ),
]

#: ``sort`` values of ``GET /products``; ``-`` means descending, ``_id`` breaks ties.
ProductSort = Literal["_id", "price", "-price", "created_at", "-created_at"]


class SizeStock(BaseModel):
    """One size of a product and its stock: ``{"size": "large", "quantity": 25}``."""

    model_config = ConfigDict(extra="forbid")

    size: SizeName
    quantity: Quantity


class SizePublic(BaseModel):
    """One size as ``GET /products/{id}`` shows it: on hand, allocated to pending orders, available to sell."""

    size: str
    quantity: int = Field(description="Units on hand.")
    allocated: int = Field(description="Units held by pending orders (0 ≤ allocated ≤ quantity).")
    available: int = Field(description="Units an order can take: quantity − allocated.")


def _unique_sizes(sizes: list[SizeStock]) -> list[SizeStock]:
    seen: set[str] = set()
    for entry in sizes:
        if entry.size in seen:
            raise ValueError(f"size {entry.size!r} is listed twice; sizes must be unique per product")
        seen.add(entry.size)
    return sizes


class ProductCreate(BaseModel):
    """Body of ``POST /products`` and of ``PUT /products/{id}`` (a full replacement).

    The brief's shape is ``{"name", "price", "sizes": [{"size", "quantity"}]}``;
    ``description``, ``category``, ``rating``, ``sku`` and ``stock`` are optional
    (``sku``: docs/architecture.md (Catalog at scale)). ``stock`` without ``sizes``
    stores one size ``"one-size"``.
    On ``PUT``, an omitted optional field is cleared. Unknown fields → 422.
    """

    model_config = ConfigDict(extra="forbid")

    name: ProductName
    price: Price
    sizes: list[SizeStock] = Field(default_factory=list, max_length=100)
    description: Description | None = None
    category: Category | None = None
    rating: Rating | None = None
    sku: Sku | None = None
    stock: Quantity | None = Field(default=None, description="Stock of a product without sizes (stored as 'one-size').")

    @model_validator(mode="after")
    def _sizes_or_stock(self) -> ProductCreate:
        _unique_sizes(self.sizes)
        if self.stock is not None:
            if self.sizes:
                raise ValueError("give either 'sizes' or 'stock', not both")
            self.sizes = [SizeStock(size=ONE_SIZE, quantity=self.stock)]
            self.stock = None
        return self


class ProductUpdate(BaseModel):
    """Body of ``PATCH /products/{id}``: only the fields given change.

    ``name``, ``price`` and ``sizes`` cannot be ``null``; ``description``,
    ``category`` and ``rating`` can (``null`` clears them). ``sizes``, when
    given, replaces the whole list. Unknown fields → 422.
    """

    model_config = ConfigDict(extra="forbid")

    name: ProductName | None = None
    price: Price | None = None
    sizes: list[SizeStock] | None = Field(default=None, max_length=100)
    description: Description | None = None
    category: Category | None = None
    rating: Rating | None = None
    sku: Sku | None = None

    @field_validator("name", "price", "sizes")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may be omitted but not null")
        return value

    @field_validator("sizes")
    @classmethod
    def _sizes_unique(cls, value: list[SizeStock]) -> list[SizeStock]:
        return _unique_sizes(value)

    def changes(self) -> dict[str, Any]:
        """The fields the client sent, with their (validated) values."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class ProductCreated(BaseModel):
    """Response of ``POST /products``: ``{"id": "<24-hex>"}`` (brief)."""

    id: str = Field(examples=["65f1c0ffee0000000000beef"])


class ProductListItem(BaseModel):
    """One record of ``GET /products``: ``id``, ``name``, ``price`` (no ``sizes``; brief)."""

    id: str
    name: str
    price: Money
    category: str | None = None


class ProductPublic(BaseModel):
    """The full product of ``GET /products/{id}``, with ``sizes`` and derived ``stock``."""

    id: str
    name: str
    price: Money
    description: str | None = None
    category: str | None = None
    rating: float | None = None
    sku: str | None = None
    sizes: list[SizePublic]
    stock: int = Field(description="Units available to order: the sum of the sizes' `available`.")
    created_at: datetime
    updated_at: datetime


#: Most products one ``POST /products/batch`` takes (docs/architecture.md (Catalog at scale)).
MAX_BATCH = 1000


class BatchItemResult(BaseModel):
    """The outcome of one product of a bulk write (``POST /products/batch`` and the importer).

    ``status`` is an HTTP status per item, as in a ``207 Multi-Status`` body:
    ``201`` created (``id``), ``200`` updated by ``sku`` (``--upsert``; ``id``),
    ``409`` refused because its ``sku`` is taken (``errors``), ``422`` refused
    because it is invalid (``errors``, the same rules as ``POST /products``).
    """

    index: int = Field(description="0-based position of the product in the request (or row - 1 for the importer).")
    status: int = Field(examples=[201])
    id: str | None = Field(default=None, description="The product's id (created or updated).")
    errors: list[ValidationIssue] | None = Field(default=None, description="Why the product was refused.")


class BatchReport(BaseModel):
    """Body of ``POST /products/batch`` (``207``): one result per product, in request order, and the counts."""

    results: list[BatchItemResult]
    created: int
    updated: int
    refused: int
