"""Errors raised by the user service (mapped to problem+json in ``core.errors``)."""

from __future__ import annotations

from typing import Literal

from backend_app.core.errors import ConflictError, NotFoundError


class UserAlreadyExistsError(ConflictError):
    """The username or the email is already registered: 409, naming the field."""

    code = "user_exists"
    title = "User already exists"

    def __init__(self, field: Literal["username", "email"]) -> None:
        detail = "This username is taken." if field == "username" else "This email is already registered."
        super().__init__(detail, field=field)


class UserNotFoundError(NotFoundError):
    """No user has this username: 404."""

    code = "user_not_found"
    title = "User not found"

    def __init__(self, username: str) -> None:
        super().__init__(f"User {username!r} does not exist.", username=username)


class SelfLockoutError(ConflictError):
    """An admin tried to demote or deactivate their own account: 409.

    Refused so that the acting admin always remains, and with them a way back
    in (the service never ends up with no active admin through this API).
    """

    code = "self_lockout"
    title = "Cannot lock yourself out"

    def __init__(self) -> None:
        super().__init__("Admins cannot remove their own admin role or deactivate their own account.")


class AccountExistsError(ConflictError):
    """``create-admin`` named an existing account that is not an active admin: refused (exit status 1).

    Anyone may have registered the name first; promoting it would hand admin
    rights to whoever knows its password. ``--promote-existing`` overrides.
    """

    code = "account_exists"
    title = "Account exists"

    def __init__(self, username: str) -> None:
        super().__init__(
            f"User {username!r} already exists and is not an active admin; it was not promoted (anyone could have "
            "registered that name). To make it an admin anyway, run again with --promote-existing: that also "
            "sets its password from ADMIN_PASSWORD (or the prompt) and ends every session of it.",
            username=username,
        )
