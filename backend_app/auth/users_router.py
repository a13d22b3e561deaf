"""HTTP routes of user management (``/users``), for admins only (docs/contract.md §3 "Who may do what").

They live in ``auth`` rather than ``users`` so that the dependency runs one way:
``auth`` (who is calling, and these admin routes) uses ``users`` (the user
records, their rules and queries); ``users`` never imports ``auth``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from backend_app.auth.dependencies import AdminUser
from backend_app.core.db import Database
from backend_app.core.errors import problem_responses
from backend_app.core.pages import Page
from backend_app.core.pagination import Pagination
from backend_app.users import service
from backend_app.users.schemas import Username, UserPublic, UserUpdate

router = APIRouter(prefix="/users", tags=["users"])


@router.get(
    "",
    response_model=Page[UserPublic],
    responses=problem_responses(400, 401, 403, 422, 500),
    summary="List users (admin)",
)
async def list_users(
    db: Database,
    page: Pagination,
    _admin: AdminUser,
    username: Annotated[
        str | None, Query(min_length=1, max_length=32, description="Usernames starting with this text.")
    ] = None,
    email: Annotated[
        str | None, Query(min_length=1, max_length=320, description="Emails starting with this text (any case).")
    ] = None,
) -> Page[UserPublic]:
    """Users in ascending ``_id`` order with the brief's ``page`` metadata; never a password hash."""
    data, meta = await service.list_users(db, username=username, email=email, page=page)
    return Page[UserPublic](data=data, page=meta)


@router.patch(
    "/{username}",
    response_model=UserPublic,
    responses=problem_responses(401, 403, 404, 409, 422, 500),
    summary="Change a user's role or active flag (admin)",
)
async def update_user(
    username: Annotated[Username, Path()], body: UserUpdate, db: Database, admin: AdminUser
) -> UserPublic:
    """Set ``role`` and/or ``is_active``; a deactivated user's tokens fail at once.

    Admins cannot demote or deactivate themselves (409 ``self_lockout``).
    """
    return await service.update_user(db, username=username, changes=body, actor=admin)
