"""HTTP routes of the catalog: thin views over ``products.service`` (docs/contract.md §1, §4).

Reads are public; every write needs the admin role (docs/contract.md §3 table).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request, Response, status

from backend_app.auth.dependencies import AdminUser
from backend_app.core.config import AppSettings
from backend_app.core.db import Database
from backend_app.core.errors import problem_responses
from backend_app.core.http_cache import CONDITIONAL_GET_RESPONSES
from backend_app.core.pages import Page
from backend_app.core.pagination import Pagination
from backend_app.core.types import ObjectIdStr
from backend_app.products import bulk, responses, service
from backend_app.products.schemas import (
    MAX_BATCH,
    BatchReport,
    ProductCreate,
    ProductCreated,
    ProductListItem,
    ProductPublic,
    ProductSort,
    ProductUpdate,
    SizeStock,
)
from backend_app.products.stock import StockBasis

router = APIRouter(prefix="/products", tags=["products"])

ProductId = Annotated[ObjectIdStr, Path(description="The product's 24-hex id.")]
#: How an admin write's quantities are read (``products.stock.StockBasis``; docs/contract.md, products).
Basis = Annotated[
    StockBasis,
    Query(
        alias="stock_basis",
        description="`on_hand` (default): each `quantity` is the units on the shelf; a size below what pending "
        "orders hold → 409 `quantity_below_allocated`. `available`: each `quantity` is the units still to sell; "
        "on hand becomes it plus what pending orders hold.",
    ),
]
PriceBound = Annotated[Decimal | None, Query(ge=0, le=1_000_000, decimal_places=2)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ProductCreated,
    responses=problem_responses(401, 403, 409, 422, 500),
    summary="Create a product (admin)",
)
async def create_product(body: ProductCreate, db: Database, admin: AdminUser) -> ProductCreated:
    """Create a product (brief): ``{"name", "price", "sizes"}`` → ``201 {"id"}``. Admins only; ``sku`` taken → 409."""
    return ProductCreated(id=await service.create_product(db, product=body, actor=admin.username))


@router.post(
    "/batch",
    status_code=status.HTTP_207_MULTI_STATUS,
    response_model=BatchReport,
    responses=problem_responses(401, 403, 422, 500),
    summary="Create (or update by sku) up to 1,000 products (admin)",
)
async def create_products(
    db: Database,
    admin: AdminUser,
    items: Annotated[
        list[Any],
        Body(
            min_length=1,
            max_length=MAX_BATCH,
            description="1..1000 products, each in the body shape of `POST /products` (validated one by one).",
            examples=[
                [{"name": "Classic T-shirt", "price": 19.99, "sku": "TSH-1", "sizes": [{"size": "M", "quantity": 5}]}]
            ],
        ),
    ],
    upsert: Annotated[
        bool, Query(description="Update the live product that has the item's `sku` instead of refusing it.")
    ] = False,
    basis: Basis = StockBasis.ON_HAND,
) -> BatchReport:
    """Write many products at once: ``207`` with one result per item, in request order.

    Each item is validated on its own with the rules of ``POST /products``; a
    bad item is reported (``422`` with ``errors``), never fails the others. An
    item whose ``sku`` is taken is ``409`` (or, with ``upsert=true``, updates
    that product: ``200``). Created items are ``201``. Every result carries its
    ``index`` and the product ``id`` or the ``errors``. A body that is not a
    JSON array of 1..1000 elements → 422. An update that would leave a size
    below what pending orders hold is ``409`` (see ``stock_basis``).
    """
    return await bulk.create_products(db, items=items, actor=admin.username, upsert=upsert, basis=basis)


@router.get(
    "",
    response_model=Page[ProductListItem],
    responses={**problem_responses(400, 422, 500, 503), **CONDITIONAL_GET_RESPONSES},
    summary="List products",
)
async def list_products(
    request: Request,
    db: Database,
    settings: AppSettings,
    page: Pagination,
    name: Annotated[
        str | None,
        Query(
            description="Case-insensitive substring or regular expression (≤ 100 chars; "
            "nested quantifiers, quantified alternation and backreferences are refused).",
            max_length=100,
        ),
    ] = None,
    size: Annotated[
        str | None, Query(description="Only products having this size, e.g. `large`.", min_length=1, max_length=50)
    ] = None,
    category: Annotated[
        str | None, Query(description="Only products of this category.", min_length=1, max_length=100)
    ] = None,
    min_price: Annotated[PriceBound, Query(description="Only products priced at least this.")] = None,
    max_price: Annotated[PriceBound, Query(description="Only products priced at most this.")] = None,
    sort: Annotated[
        ProductSort, Query(description="Order: `_id` (default), `price`, `-price`, `created_at`, `-created_at`.")
    ] = "_id",
) -> Response:
    """List live products with the brief's ``page`` metadata and opaque cursors (docs/contract.md §1, §2, §4).

    Served from the catalog page cache when the catalog has not changed, with an
    ``ETag`` (``If-None-Match`` → 304). Malformed or foreign ``cursor`` → 400
    ``invalid_cursor``; ``cursor`` with ``offset`` → 422.
    """

    # One mapping feeds both the query and the cache key, so a filter cannot shape one and not the other.
    filters: dict[str, Any] = {
        "name": name,
        "size": size,
        "category": category,
        "min_price": min_price,
        "max_price": max_price,
        "sort": sort,
    }

    async def compute() -> Page[ProductListItem]:
        data, meta = await service.list_products(db, **filters, page=page, max_time_ms=settings.mongodb_max_time_ms)
        return Page[ProductListItem](data=data, page=meta)

    params = {**filters, "limit": page.limit, "offset": page.offset, "cursor": page.cursor}
    return await responses.list_response(request, db, compute, params=params)


@router.get(
    "/{product_id}",
    response_model=ProductPublic,
    responses={**problem_responses(404, 422, 500), **CONDITIONAL_GET_RESPONSES},
    summary="Get a product",
)
async def get_product(request: Request, product_id: ProductId, db: Database) -> Response:
    """The full product with ``sizes`` and derived ``stock`` (``ETag``); unknown or deleted → 404."""
    return responses.detail_response(request, await service.get_product(db, product_id=product_id))


@router.put(
    "/{product_id}",
    response_model=ProductPublic,
    responses=problem_responses(401, 403, 404, 409, 422, 500),
    summary="Replace a product (admin)",
)
async def replace_product(
    product_id: ProductId, body: ProductCreate, db: Database, admin: AdminUser, basis: Basis = StockBasis.ON_HAND
) -> ProductPublic:
    """Replace every field of a product (same body as ``POST``; omitted optional fields are cleared).

    Each size keeps the units pending orders hold; a size below them, or left
    out while it holds some → 409 ``quantity_below_allocated``.
    """
    return await service.replace_product(db, product_id=product_id, product=body, actor=admin.username, basis=basis)


@router.patch(
    "/{product_id}",
    response_model=ProductPublic,
    responses=problem_responses(401, 403, 404, 409, 422, 500),
    summary="Update a product (admin)",
)
async def update_product(
    product_id: ProductId, body: ProductUpdate, db: Database, admin: AdminUser, basis: Basis = StockBasis.ON_HAND
) -> ProductPublic:
    """Change only the fields given; ``sizes`` replaces the whole list (allocated units kept, as for ``PUT``)."""
    return await service.update_product(db, product_id=product_id, changes=body, actor=admin.username, basis=basis)


@router.delete(
    "/{product_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(401, 403, 404, 422, 500),
    summary="Delete a product (admin)",
)
async def delete_product(product_id: ProductId, db: Database, admin: AdminUser) -> Response:
    """Soft-delete: the product leaves listings and cannot be ordered; past orders still show its name."""
    await service.delete_product(db, product_id=product_id, actor=admin.username)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/{product_id}/quantity",
    response_model=ProductPublic,
    responses=problem_responses(401, 403, 404, 409, 422, 500),
    summary="Set one size's stock (admin)",
)
async def set_quantity(
    product_id: ProductId, body: SizeStock, db: Database, admin: AdminUser, basis: Basis = StockBasis.ON_HAND
) -> ProductPublic:
    """``{"size": "large", "quantity": 25}`` sets that size's units on hand; a size the product lacks → 404.

    Below what pending orders hold → 409 ``quantity_below_allocated``.
    """
    return await service.set_quantity(db, product_id=product_id, size=body, actor=admin.username, basis=basis)
