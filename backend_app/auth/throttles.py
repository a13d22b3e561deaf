"""The auth domain's rules for the shared rate-limit mechanisms: who is throttled, and on which paths.

``main.create_app`` hands these to ``core.ratelimit`` and puts the throttles on
``app.state``; ``core`` itself knows no auth path or rule.
"""

from __future__ import annotations

from fastapi import FastAPI

from backend_app.core.throttle import FailureThrottle
from config import Settings

#: Paths under the stricter ``RATE_LIMIT_AUTH`` budget, one budget shared by the four (credential
#: guessing and sign-up spam: alternating between them gains nothing).
RATE_LIMITED_PATHS = frozenset({"/auth/login", "/auth/token", "/auth/register", "/auth/password"})
#: Every path under this prefix is counted per client address, whatever token is sent: a sign-in
#: budget counted per token could be multiplied by alternating tokens.
PER_ADDRESS_PREFIX = "/auth/"


class SignInThrottle(FailureThrottle):
    """Failed sign-ins per account (``SIGNIN_FAILURE_LIMIT``, a moving window).

    The key is the account's username case-folded (an unknown email: the
    email), so ``ALICE`` and ``alice`` share one count. On even with
    ``RATE_LIMIT_ENABLED=false``; off with ``SIGNIN_THROTTLE_ENABLED=false``.
    """

    def __init__(self, settings: Settings) -> None:
        super().__init__(
            settings,
            limit=settings.signin_failure_limit,
            scope="signin-failures",
            enabled=settings.signin_throttle_enabled,
        )


def install_throttles(app: FastAPI, settings: Settings) -> None:
    """Put the sign-in throttle and the password-change throttle on ``app.state``.

    ``app.state.signin_throttle``: failed sign-ins per account.
    ``app.state.password_change_throttle``: wrong current passwords of ``POST /auth/password``,
    per login session (the same limit as sign-ins).
    """
    app.state.signin_throttle = SignInThrottle(settings)
    app.state.password_change_throttle = FailureThrottle(
        settings,
        limit=settings.signin_failure_limit,
        scope="password-change-failures",
        enabled=settings.signin_throttle_enabled,
    )
