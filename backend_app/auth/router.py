"""HTTP routes of authentication: register, login, OAuth2 token, refresh, logout, me, password (docs/contract.md §3).

Every response here carries ``Cache-Control: no-store`` (RFC 6749 §5.1), set
by ``core.middleware.SecurityHeadersMiddleware``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from backend_app.auth import service
from backend_app.auth.dependencies import CurrentCaller, CurrentUser, Throttle
from backend_app.auth.schemas import LoginRequest, PasswordChange, RefreshRequest, SessionsRevoked, TokenPair
from backend_app.core.config import AppSettings
from backend_app.core.db import Database
from backend_app.core.errors import UnprocessableError, problem_responses
from backend_app.core.throttle import FailureThrottle
from backend_app.users import service as users_service
from backend_app.users.schemas import UserCreate, UserPublic, check_password_bytes

router = APIRouter(prefix="/auth", tags=["auth"])


def get_password_change_throttle(request: Request) -> FailureThrottle:
    """The app's count of wrong current passwords per login session (``auth.throttles.install_throttles``)."""
    throttle: FailureThrottle = request.app.state.password_change_throttle
    return throttle


PasswordChangeThrottle = Annotated[FailureThrottle, Depends(get_password_change_throttle)]


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserPublic,
    responses=problem_responses(409, 422, 500),
    summary="Register a shopper account",
)
async def register(body: UserCreate, db: Database) -> UserPublic:
    """Create a ``user``-role account. Unknown fields (``role``...) → 422; taken username or email → 409."""
    return await users_service.create_user(db, user=body)


@router.post(
    "/login",
    response_model=TokenPair,
    responses=problem_responses(401, 422, 429, 500),
    summary="Log in with JSON credentials",
)
async def login(body: LoginRequest, db: Database, settings: AppSettings, throttle: Throttle) -> TokenPair:
    """``{"username" | "email", "password"}`` → a token pair. Unknown user and wrong password: the same 401.

    Too many failed sign-ins of one account (``SIGNIN_FAILURE_LIMIT``): 429
    ``signin_throttled`` with ``Retry-After``, from any address.
    """
    return await service.login(db, settings, throttle, username=body.username, email=body.email, password=body.password)


@router.post(
    "/token",
    response_model=TokenPair,
    responses=problem_responses(401, 422, 429, 500),
    summary="OAuth2 password grant (Swagger UI's Authorize)",
)
async def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], db: Database, settings: AppSettings, throttle: Throttle
) -> TokenPair:
    """RFC 6749 §4.3 form (``username``, ``password``) → the same token pair as ``/auth/login``.

    ``username`` may also be the account's email. This is the ``tokenUrl`` of
    the OpenAPI security scheme.
    """
    try:
        check_password_bytes(form.password, min_bytes=1)
    except ValueError as exc:
        raise UnprocessableError(str(exc), field=("body", "password")) from None
    if "@" in form.username:  # usernames cannot contain "@"
        return await service.login(db, settings, throttle, email=form.username, password=form.password)
    return await service.login(db, settings, throttle, username=form.username, password=form.password)


@router.post(
    "/refresh",
    response_model=TokenPair,
    responses=problem_responses(401, 422, 500),
    summary="Rotate a refresh token",
)
async def refresh(body: RefreshRequest, db: Database, settings: AppSettings) -> TokenPair:
    """Exchange a refresh token for a new pair; it is revoked. Replaying a used one → 401 and logs the session out."""
    return await service.refresh(db, settings, refresh_token=body.refresh_token)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(401, 422, 500),
    summary="Log out (revoke a session)",
)
async def logout(body: RefreshRequest, db: Database, settings: AppSettings) -> None:
    """Revoke the login the refresh token belongs to: its refresh and access tokens stop working at once."""
    await service.logout(db, settings, refresh_token=body.refresh_token)


@router.get(
    "/me",
    response_model=UserPublic,
    responses=problem_responses(401, 500),
    summary="The current user",
)
async def read_current_user(user: CurrentUser) -> UserPublic:
    """The caller named by the bearer token, as stored now."""
    return user


@router.post(
    "/password",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(401, 409, 422, 429, 500),
    summary="Change my password (ends my other sessions)",
)
async def change_password(
    body: PasswordChange, db: Database, caller: CurrentCaller, throttle: PasswordChangeThrottle
) -> None:
    """``{"current_password", "new_password"}`` → 204. Every *other* session of the user ends at once.

    The session of the token that made this call stays signed in. A wrong
    ``current_password`` → 401 ``invalid_credentials``, counted for this login
    session (past ``SIGNIN_FAILURE_LIMIT``: 429 ``password_change_throttled``);
    failed sign-ins of the account do not count. Changed concurrently by
    another request (which won) → 409 ``password_changed_concurrently``.
    """
    await service.change_password(
        db, throttle, caller=caller, current_password=body.current_password, new_password=body.new_password
    )


@router.post(
    "/sessions/revoke-others",
    response_model=SessionsRevoked,
    responses=problem_responses(401, 500),
    summary="Sign out my other sessions",
)
async def revoke_other_sessions(db: Database, caller: CurrentCaller) -> SessionsRevoked:
    """End every session of the caller except this one (their refresh and access tokens stop working).

    For a user who suspects a stolen token or a device left signed in; the
    password is not changed. Answers how many sessions were ended.
    """
    return SessionsRevoked(revoked=await service.revoke_other_sessions(db, caller=caller))
