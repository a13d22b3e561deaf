"""HTTP routes of orders: thin views over ``orders.service`` (docs/contract.md §1, §3, §5).

Every route needs a user; users act on their own orders, admins on anyone's. Each route
declares who it serves as a dependency (``OwnedUserId``, ``OrderPlacement``,
``OrdersOwnerFilter``), so no route checks ownership by hand.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request, Response, status

from backend_app.auth.dependencies import CurrentUser, OwnedUserId
from backend_app.core.config import AppSettings
from backend_app.core.db import Database
from backend_app.core.errors import problem_responses
from backend_app.core.http_cache import JSON_MEDIA_TYPE, render_json
from backend_app.core.pages import Page
from backend_app.core.pagination import Pagination
from backend_app.core.types import ObjectIdStr
from backend_app.orders import service
from backend_app.orders.batch_checks import Limits
from backend_app.orders.dependencies import OrderPlacement, OrdersOwnerFilter
from backend_app.orders.schemas import OrderCreated, OrderPublic, OrderStatus, OrderUpdate

router = APIRouter(prefix="/orders", tags=["orders"])

#: Response header set when ``POST /orders`` replays an earlier response for the same Idempotency-Key.
REPLAY_HEADER = "Idempotent-Replayed"

OrderId = Annotated[ObjectIdStr, Path(description="The order's 24-hex id.")]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=OrderCreated,
    responses=problem_responses(401, 403, 404, 409, 422, 500, 503),
    summary="Place an order",
)
async def create_order(
    placement: OrderPlacement,
    db: Database,
    settings: AppSettings,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            description="Makes retries safe: the same key and body within 24 h return the first response.",
        ),
    ] = None,
) -> OrderCreated:
    """Place an order (brief): stock for every line is taken atomically, or none is.

    ``userId`` defaults to the token's subject; another user's id → 403 unless
    the caller is an admin (docs/contract.md §3); an admin naming a user that does not
    exist → 404 ``user_not_found``. 404 names an unknown product; 409
    ``insufficient_stock`` lists each short line; 422 ``too_many_units_per_line``
    when one product's lines, merged, pass ``ORDER_MAX_UNITS_PER_LINE``; 409
    ``too_many_pending_orders`` / ``too_many_pending_units`` when the owner
    would pass ``ORDER_MAX_PENDING`` pending orders or ``ORDER_MAX_PENDING_UNITS``
    units in them. The order records who placed it. With ``Idempotency-Key``:
    a replay returns the first order's id (header ``Idempotent-Replayed: true``),
    another body with the key → 422, a duplicate while the first runs → 409.
    """
    order_id, replayed = await service.place_order_idempotently(
        db,
        caller=placement.caller.username,
        user_id=placement.owner,
        items=placement.body.items,
        idempotency_key=idempotency_key,
        limits=Limits.from_settings(settings),
    )
    if replayed:
        response.headers[REPLAY_HEADER] = "true"
    return OrderCreated(id=order_id)


@router.get(
    "",
    response_model=Page[OrderPublic],
    responses=problem_responses(400, 401, 403, 422, 500),
    summary="List orders (admin: all; user: own)",
)
async def list_orders(
    db: Database,
    page: Pagination,
    user_id: OrdersOwnerFilter,
    status_filter: Annotated[
        OrderStatus | None, Query(alias="status", description="Only orders in this status.")
    ] = None,
) -> Page[OrderPublic]:
    """Orders in ascending ``_id`` order: an admin sees everyone's, a user their own (another ``user_id`` → 403)."""
    data, meta = await service.list_orders(db, user_id=user_id, status=status_filter, page=page)
    return Page[OrderPublic](data=data, page=meta)


@router.get(
    "/{user_id}",
    response_model=Page[OrderPublic],
    responses=problem_responses(400, 401, 403, 422, 500),
    summary="List a user's orders",
)
async def list_user_orders(request: Request, db: Database, page: Pagination, user_id: OwnedUserId) -> Response:
    """A user's orders in ascending ``_id`` order, each line with ``productDetails`` joined by ``$lookup``.

    Users see their own orders only (other → 403); admins see anyone's. The page
    is built from validated models, so it is dumped once (``render_json``)
    instead of being validated again on FastAPI's response path.
    """
    data, meta = await service.list_orders(db, user_id=user_id, page=page)
    return Response(content=render_json(request, Page[OrderPublic](data=data, page=meta)), media_type=JSON_MEDIA_TYPE)


@router.get(
    "/{user_id}/{order_id}",
    response_model=OrderPublic,
    responses=problem_responses(401, 403, 404, 422, 500),
    summary="Get one order",
)
async def get_order(user_id: OwnedUserId, order_id: OrderId, db: Database) -> OrderPublic:
    """One order with its lines, status and timestamps; not this user's or unknown → 404."""
    return await service.get_order(db, user_id=user_id, order_id=order_id)


@router.patch(
    "/{user_id}/{order_id}",
    response_model=OrderPublic,
    responses=problem_responses(401, 403, 404, 409, 422, 500),
    summary="Change an order's status",
)
async def change_status(
    user_id: OwnedUserId, order_id: OrderId, body: OrderUpdate, db: Database, user: CurrentUser
) -> OrderPublic:
    """``{"status": "cancelled"}`` (owner or admin) or ``"completed"`` (admin), from ``pending`` only (else 409).

    ``expired`` cannot be asked for (422): only the expiry sweep sets it.

    Cancelling puts the stock back in the same transaction.
    """
    return await service.change_status(
        db, user_id=user_id, order_id=order_id, status=body.status, as_admin=user.is_admin, actor=user.username
    )
