"""HTTP routes of the catalog: thin views over ``products.service`` (spec §1, §4)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status

from backend_app.auth.dependencies import AdminUser
from backend_app.core.config import AppSettings
from backend_app.core.db import Database
from backend_app.core.errors import problem_responses
from backend_app.core.http_cache import CONDITIONAL_GET_RESPONSES
from backend_app.core.pagination import Page, Pagination
from backend_app.core.types import ObjectIdStr
from backend_app.products import cache, service
from backend_app.products.schemas import ProductCreate, ProductCreated, ProductListItem, ProductPublic

router = APIRouter(prefix="/products", tags=["products"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ProductCreated,
    responses=problem_responses(401, 403, 422, 500),
    summary="Create a product (admin)",
)
async def create_product(body: ProductCreate, db: Database, _admin: AdminUser) -> ProductCreated:
    """Create a product (brief): ``{"name", "price", "sizes"}`` → ``201 {"id"}``. Admins only."""
    return ProductCreated(id=await service.create_product(db, product=body))


@router.get(
    "",
    response_model=Page[ProductListItem],
    responses={**problem_responses(422, 500, 503), **CONDITIONAL_GET_RESPONSES},
    summary="List products",
)
async def list_products(
    request: Request,
    db: Database,
    settings: AppSettings,
    page: Pagination,
    name: Annotated[
        str | None,
        Query(description="Case-insensitive substring or regular expression (≤ 100 chars).", max_length=100),
    ] = None,
    size: Annotated[
        str | None, Query(description="Only products having this size, e.g. `large`.", min_length=1, max_length=50)
    ] = None,
) -> Response:
    """List live products in ascending ``_id`` order with the brief's ``page`` metadata (``ETag``, cached)."""

    async def compute() -> Page[ProductListItem]:
        data, meta = await service.list_products(
            db, name=name, size=size, page=page, max_time_ms=settings.mongodb_max_time_ms
        )
        return Page[ProductListItem](data=data, page=meta)

    return await cache.list_response(request, db, compute)


@router.get(
    "/{product_id}",
    response_model=ProductPublic,
    responses={**problem_responses(404, 422, 500), **CONDITIONAL_GET_RESPONSES},
    summary="Get a product",
)
async def get_product(request: Request, product_id: Annotated[ObjectIdStr, Path()], db: Database) -> Response:
    """The full product with ``sizes`` and derived ``stock`` (``ETag``); unknown or deleted → 404."""
    return cache.detail_response(request, await service.get_product(db, product_id=product_id))
