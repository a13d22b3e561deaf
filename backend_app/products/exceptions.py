"""Errors raised by the catalog service (mapped to problem+json in ``core.errors``)."""

from __future__ import annotations

from backend_app.core.errors import ConflictError, NotFoundError, ServiceUnavailableError, UnprocessableError


class ProductNotFoundError(NotFoundError):
    """No live product has this id (never existed, or soft-deleted): 404."""

    code = "product_not_found"
    title = "Product not found"

    def __init__(self, product_id: str) -> None:
        super().__init__(f"Product {product_id} does not exist.", productId=product_id)


class InvalidNamePatternError(UnprocessableError):
    """The ``name`` filter is not an acceptable regular expression: 422."""

    code = "invalid_pattern"
    title = "Invalid name pattern"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, field=("query", "name"))


class SizeNotFoundError(NotFoundError):
    """``PUT /products/{id}/quantity`` names a size the product does not have: 404."""

    code = "size_not_found"
    title = "Size not found"

    def __init__(self, product_id: str, size: str) -> None:
        super().__init__(f"Product {product_id} has no size {size!r}.", productId=product_id, size=size)


class QueryTimeoutError(ServiceUnavailableError):
    """A list query exceeded the server time limit (``MONGODB_MAX_TIME_MS``): 503."""

    code = "query_timeout"
    title = "Query took too long"


class SkuTakenError(ConflictError):
    """Another product (live or soft-deleted) already has this ``sku``: 409."""

    code = "sku_taken"
    title = "SKU already in use"

    def __init__(self, sku: str | None) -> None:
        super().__init__(f"Another product already has the sku {sku!r}.", sku=sku)


class QuantityBelowAllocatedError(ConflictError):
    """An admin stock write would leave a size with fewer units on hand than pending orders hold: 409.

    ``sizes`` lists each such size as ``{"size", "quantity", "allocated"}``
    (``quantity`` is ``null`` for a size the write leaves out). Cancel the
    pending orders first, or send the numbers as what is available
    (``stock_basis=available``): each size's on hand becomes the number sent
    plus its ``allocated`` units.
    """

    code = "quantity_below_allocated"
    title = "Quantity below allocated stock"

    def __init__(self, product_id: str | None, sizes: list[dict[str, object]]) -> None:
        parts = [
            f"{s['size']}: {'removed' if s['quantity'] is None else s['quantity']} on hand, {s['allocated']} allocated"
            for s in sizes
        ]
        subject = f"Product {product_id}" if product_id else "The product"
        super().__init__(
            f"{subject} would hold less than its pending orders: "
            + "; ".join(parts)
            + ". Cancel those orders first, or send stock_basis=available.",
            productId=product_id,
            sizes=sizes,
        )
