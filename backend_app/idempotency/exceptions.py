"""Errors of idempotent requests (mapped to problem+json in ``core.errors``)."""

from __future__ import annotations

from backend_app.core.errors import ConflictError, UnprocessableError


class IdempotencyKeyReusedError(UnprocessableError):
    """The key was already used by this user with a different request body: 422."""

    code = "idempotency_key_reused"
    title = "Idempotency key reused"

    def __init__(self) -> None:
        super().__init__(
            "This Idempotency-Key was already used with a different request; use a new key.",
            field=("header", "Idempotency-Key"),
        )


class IdempotencyInFlightError(ConflictError):
    """A request with the same key is still being processed: 409; retry later."""

    code = "idempotency_in_flight"
    title = "Request in progress"

    def __init__(self) -> None:
        super().__init__(
            "A request with this Idempotency-Key is still in progress; retry after it completes.",
            headers={"Retry-After": "1"},
        )
