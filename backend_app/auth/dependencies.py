"""Who is calling: bearer-token dependencies and their ``Annotated`` aliases.

- ``CurrentUser``: the active user named by a valid access token's ``sub``
  (401 otherwise).
- ``AdminUser``: a ``CurrentUser`` with the ``admin`` role (403 otherwise).

The user is re-read from the database on every request, so a deactivated
user's tokens, or a demoted admin's, stop working at once (spec §3).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Response
from fastapi.security import OAuth2PasswordBearer

from backend_app.auth import service
from backend_app.auth.exceptions import ForbiddenError, NotAuthenticatedError
from backend_app.core.config import AppSettings
from backend_app.core.db import Database
from backend_app.users.schemas import UserPublic

#: The OpenAPI security scheme; ``tokenUrl`` makes Swagger UI's Authorize button work.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)


async def get_optional_user(
    request: Request,
    db: Database,
    settings: AppSettings,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> UserPublic | None:
    """The caller when a bearer token is sent, ``None`` when no token is sent.

    Raises:
        InvalidTokenError: the token is malformed, forged, expired, not an
            access token, from a revoked session (logout, refresh-token reuse),
            or its user is unknown or deactivated (401).
    """
    if not token:
        return None
    user = await service.user_from_access_token(db, settings, token=token)
    request.state.user = user.username  # for access logs and per-user rate limits
    return user


async def get_current_user(user: Annotated[UserPublic | None, Depends(get_optional_user)]) -> UserPublic:
    """The authenticated caller.

    Raises:
        NotAuthenticatedError: no bearer token (401).
        InvalidTokenError: a bad token (401).
    """
    if user is None:
        raise NotAuthenticatedError()
    return user


async def require_admin(user: Annotated[UserPublic, Depends(get_current_user)]) -> UserPublic:
    """The authenticated caller, who must be an admin.

    Raises:
        ForbiddenError: the caller is not an admin (403).
    """
    if not user.is_admin:
        raise ForbiddenError("This operation requires the admin role.")
    return user


def ensure_self_or_admin(user: UserPublic, user_id: str) -> None:
    """Allow a user to act on their own ``user_id``; admins on any (spec §3 table).

    Raises:
        ForbiddenError: a non-admin named another user (403).
    """
    if user.username != user_id and not user.is_admin:
        raise ForbiddenError("You may only access your own orders.")


def no_store(response: Response) -> None:
    """Mark a successful response as not cacheable: tokens and account data (RFC 6749 §5.1, RFC 9111 §5.2.2.5)."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"


CurrentUser = Annotated[UserPublic, Depends(get_current_user)]
AdminUser = Annotated[UserPublic, Depends(require_admin)]
