"""HTTP routes of orders: thin views over ``orders.service`` (spec §1, §5)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from backend_app.auth.dependencies import CurrentUser, ensure_self_or_admin
from backend_app.core.db import Database
from backend_app.core.errors import problem_responses
from backend_app.core.pagination import Page, Pagination
from backend_app.orders import service
from backend_app.orders.schemas import OrderCreate, OrderCreated, OrderPublic, UserId

router = APIRouter(prefix="/orders", tags=["orders"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=OrderCreated,
    responses=problem_responses(401, 403, 404, 409, 422, 500),
    summary="Place an order",
)
async def create_order(body: OrderCreate, db: Database, user: CurrentUser) -> OrderCreated:
    """Place an order (brief): stock for every line is taken atomically, or none is.

    ``userId`` defaults to the token's subject; another user's id → 403 unless
    the caller is an admin (spec §3). 404 names an unknown product; 409
    ``insufficient_stock`` lists each short line.
    """
    user_id = body.userId or user.username
    ensure_self_or_admin(user, user_id)
    return OrderCreated(id=await service.place_order(db, user_id=user_id, items=body.items))


@router.get(
    "/{user_id}",
    response_model=Page[OrderPublic],
    responses=problem_responses(401, 403, 422, 500),
    summary="List a user's orders",
)
async def list_user_orders(
    user_id: Annotated[UserId, Path()], db: Database, page: Pagination, user: CurrentUser
) -> Page[OrderPublic]:
    """A user's orders in ascending ``_id`` order, each line with ``productDetails`` joined by ``$lookup``.

    Users see their own orders only (other → 403); admins see anyone's.
    """
    ensure_self_or_admin(user, user_id)
    data, meta = await service.list_user_orders(db, user_id=user_id, page=page)
    return Page[OrderPublic](data=data, page=meta)
