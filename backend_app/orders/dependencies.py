"""Ownership dependencies of the order routes: who may act on whose orders (a user on their own, an admin on anyone's).

Each order route declares one of these (or ``auth.dependencies.OwnedUserId``
for ``{user_id}`` in the path); no route checks ownership by hand.

- ``OrderPlacement``: the ``POST /orders`` body with the owner it may be placed for.
- ``OrdersOwnerFilter``: the ``user_id`` filter of ``GET /orders`` a caller may ask for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query

from backend_app.auth.dependencies import CurrentUser, ensure_self_or_admin
from backend_app.core.db import Database
from backend_app.orders.schemas import OrderCreate
from backend_app.users import service as users_service
from backend_app.users.schemas import Username as UserId
from backend_app.users.schemas import UserPublic


@dataclass(frozen=True, slots=True)
class Placement:
    """An order body the caller may place: ``owner`` is ``body.userId`` or the caller's username."""

    body: OrderCreate
    owner: str
    caller: UserPublic


async def get_order_placement(body: OrderCreate, db: Database, user: CurrentUser) -> Placement:
    """Authorize ``POST /orders``: ``userId`` defaults to the caller; another user's id needs the admin role.

    Raises:
        NotAuthenticatedError, InvalidTokenError: no or a bad bearer token (401).
        ForbiddenError: a non-admin named another user (403).
        UserNotFoundError: an admin named a user that does not exist (404 ``user_not_found``).
    """
    owner = body.userId or user.username
    ensure_self_or_admin(user, owner)
    if owner != user.username:  # an admin ordering for someone: that someone must exist
        await users_service.ensure_user_exists(db, username=owner)
    return Placement(body=body, owner=owner, caller=user)


async def get_orders_owner_filter(
    user: CurrentUser,
    user_id: Annotated[UserId | None, Query(description="Only this user's orders (admins; users: themselves).")] = None,
) -> str | None:
    """The owner filter of ``GET /orders``: an admin's as given (``None``: everyone's), a user's always their own.

    Raises:
        ForbiddenError: a non-admin asked for another user's orders (403).
    """
    if user.is_admin:
        return user_id
    owner = user_id or user.username
    ensure_self_or_admin(user, owner)
    return owner


OrderPlacement = Annotated[Placement, Depends(get_order_placement)]
OrdersOwnerFilter = Annotated[str | None, Depends(get_orders_owner_filter)]
