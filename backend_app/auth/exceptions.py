"""Authentication errors (RFC 6750 §3 ``WWW-Authenticate`` challenges).

The generic 403 (:class:`backend_app.core.errors.ForbiddenError`) lives in ``core/errors.py``.
"""

from __future__ import annotations

from backend_app.core.errors import DomainError


class NotAuthenticatedError(DomainError):
    """No bearer token was sent: 401 with ``WWW-Authenticate: Bearer`` (RFC 6750 §3.1)."""

    status = 401
    code = "not_authenticated"
    title = "Not authenticated"

    def __init__(self, detail: str = "Authentication is required: send 'Authorization: Bearer <token>'.") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="storefront"'})


class InvalidTokenError(DomainError):
    """A token was sent but is bad: 401 with ``error="invalid_token"`` (RFC 6750 §3.1)."""

    status = 401
    code = "invalid_token"
    title = "Invalid token"

    def __init__(self, detail: str = "The access token is invalid, expired or revoked.") -> None:
        super().__init__(
            detail,
            headers={
                "WWW-Authenticate": f'Bearer realm="storefront", error="invalid_token", error_description="{detail}"'
            },
        )


class InvalidCredentialsError(DomainError):
    """Unknown user or wrong password (the same answer for both): 401."""

    status = 401
    code = "invalid_credentials"
    title = "Invalid credentials"

    def __init__(self) -> None:
        super().__init__("Incorrect username or password.", headers={"WWW-Authenticate": 'Bearer realm="storefront"'})


class WrongCurrentPasswordError(DomainError):
    """``POST /auth/password`` with a wrong ``current_password``: 401 (counted as a failed sign-in)."""

    status = 401
    code = "invalid_credentials"
    title = "Invalid credentials"

    def __init__(self) -> None:
        super().__init__(
            "The current password is incorrect.", headers={"WWW-Authenticate": 'Bearer realm="storefront"'}
        )


class SignInThrottledError(DomainError):
    """Too many failed sign-ins of one account within ``SIGNIN_FAILURE_LIMIT``: 429 with ``Retry-After``.

    The same answer whether the account exists or not.
    """

    status = 429
    code = "signin_throttled"
    title = "Too many failed sign-ins"

    def __init__(self, *, retry_after: int) -> None:
        super().__init__(
            "Too many failed sign-ins for this account; retry after the seconds given in Retry-After.",
            headers={"Retry-After": str(retry_after)},
        )


class PasswordChangeThrottledError(DomainError):
    """Too many wrong current passwords in one login session (``SIGNIN_FAILURE_LIMIT``): 429 with ``Retry-After``.

    Counted per session, not per account, so nobody else's failures can stop
    the owner from changing the password.
    """

    status = 429
    code = "password_change_throttled"
    title = "Too many wrong current passwords"

    def __init__(self, *, retry_after: int) -> None:
        super().__init__(
            "Too many wrong current passwords in this session; retry after the seconds given in Retry-After.",
            headers={"Retry-After": str(retry_after)},
        )


class PasswordChangedConcurrentlyError(DomainError):
    """The password changed between its check and the write (a concurrent change won): 409, nothing written."""

    status = 409
    code = "password_changed_concurrently"
    title = "Password changed concurrently"

    def __init__(self) -> None:
        super().__init__("The password was changed by another request while this one was checked; nothing changed.")
