"""Who is calling: bearer-token dependencies and their ``Annotated`` aliases.

- ``CurrentUser``: the active user named by a valid access token's ``sub``
  (401 otherwise).
- ``AdminUser``: a ``CurrentUser`` with the ``admin`` role (403 otherwise).
- ``CurrentCaller``: the ``CurrentUser`` with the login session of its token.
- ``OwnedUserId``: a ``{user_id}`` path parameter the caller may act on: their
  own username, or any username for an admin (403 otherwise).
- ``Throttle``: the app's per-account failed sign-in throttle.

Routes declare these; none checks ownership by hand (an unchecked route would
be an IDOR).

The user and session are as stored now: read from the database, or from the
process's session cache, which is current within
``SESSION_CACHE_MAX_STALENESS_SECONDS`` (``auth.session_cache``), so a
deactivated user's tokens, or a demoted admin's, stop working within that
bound on every process (at most 1 s).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import OAuth2PasswordBearer

from backend_app.auth import service
from backend_app.auth.exceptions import NotAuthenticatedError
from backend_app.auth.throttles import SignInThrottle
from backend_app.core.config import AppSettings
from backend_app.core.db import Database
from backend_app.core.errors import ForbiddenError
from backend_app.users.schemas import Username, UserPublic

#: The OpenAPI security scheme; ``tokenUrl`` makes Swagger UI's Authorize button work.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)


async def get_optional_caller(
    request: Request,
    db: Database,
    settings: AppSettings,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> service.Caller | None:
    """The caller (user and login session) when a bearer token is sent, ``None`` when no token is sent.

    Raises:
        InvalidTokenError: the token is malformed, forged, expired, not an
            access token, from a session that is not valid (logout,
            refresh-token reuse, a password, role or activation change, older
            than ``SESSION_MAX_AGE_DAYS``, another subject's), or its user is
            unknown or deactivated (401).
    """
    if not token:
        return None
    caller = await service.caller_from_access_token(
        db, settings, token=token, cache=getattr(request.app.state, "session_cache", None)
    )
    request.state.user = caller.user.username  # for access logs
    return caller


async def get_current_caller(
    caller: Annotated[service.Caller | None, Depends(get_optional_caller)],
) -> service.Caller:
    """The authenticated caller and its session.

    Raises:
        NotAuthenticatedError: no bearer token (401).
        InvalidTokenError: a bad token (401).
    """
    if caller is None:
        raise NotAuthenticatedError()
    return caller


async def get_current_user(caller: Annotated[service.Caller, Depends(get_current_caller)]) -> UserPublic:
    """The authenticated caller.

    Raises:
        NotAuthenticatedError: no bearer token (401).
        InvalidTokenError: a bad token (401).
    """
    return caller.user


async def get_signin_throttle(request: Request) -> SignInThrottle:
    """The app's per-account throttle of failed sign-ins (``auth.throttles.SignInThrottle``)."""
    throttle: SignInThrottle = request.app.state.signin_throttle
    return throttle


async def require_admin(user: Annotated[UserPublic, Depends(get_current_user)]) -> UserPublic:
    """The authenticated caller, who must be an admin.

    Raises:
        ForbiddenError: the caller is not an admin (403).
    """
    if not user.is_admin:
        raise ForbiddenError("This operation requires the admin role.")
    return user


def ensure_self_or_admin(user: UserPublic, user_id: str) -> None:
    """Allow a user to act on their own ``user_id``; admins on any.

    Called by the ownership dependencies below (:func:`get_owned_user_id`,
    ``orders.router``'s placement and list filters), never by a route itself.

    Raises:
        ForbiddenError: a non-admin named another user (403).
    """
    if user.username != user_id and not user.is_admin:
        raise ForbiddenError("You may only access your own orders.")


async def get_owned_user_id(
    user_id: Annotated[Username, Path(description="The username owning the orders.")],
    user: Annotated[UserPublic, Depends(get_current_user)],
) -> str:
    """The ``{user_id}`` path parameter, once the caller may act on it.

    Returns:
        the username from the path (the caller's own, or anyone's for an admin).

    Raises:
        NotAuthenticatedError, InvalidTokenError: no or a bad bearer token (401).
        ForbiddenError: a non-admin named another user (403).
    """
    ensure_self_or_admin(user, user_id)
    return user_id


CurrentUser = Annotated[UserPublic, Depends(get_current_user)]
CurrentCaller = Annotated[service.Caller, Depends(get_current_caller)]
Throttle = Annotated[SignInThrottle, Depends(get_signin_throttle)]
AdminUser = Annotated[UserPublic, Depends(require_admin)]
OwnedUserId = Annotated[str, Depends(get_owned_user_id)]
