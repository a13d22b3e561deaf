"""Errors of the webhooks domain (mapped to problem+json in ``core.errors``)."""

from __future__ import annotations

from backend_app.core.errors import ConflictError, NotFoundError, UnprocessableError


class EndpointNotFoundError(NotFoundError):
    """No webhook endpoint has this id: 404."""

    code = "webhook_endpoint_not_found"
    title = "Webhook endpoint not found"

    def __init__(self, endpoint_id: str) -> None:
        super().__init__(f"Webhook endpoint {endpoint_id} does not exist.", endpointId=endpoint_id)


class DeliveryNotFoundError(NotFoundError):
    """No webhook delivery has this id: 404."""

    code = "webhook_delivery_not_found"
    title = "Webhook delivery not found"

    def __init__(self, delivery_id: str) -> None:
        super().__init__(f"Webhook delivery {delivery_id} does not exist.", deliveryId=delivery_id)


class UnsafeWebhookUrlError(UnprocessableError):
    """A webhook URL refused by the URL guard (``webhooks.urlguard``): 422 naming the reason."""

    code = "unsafe_webhook_url"
    title = "Webhook URL not allowed"

    def __init__(self, reason: str) -> None:
        super().__init__(f"This webhook URL is not allowed: {reason}.", field=("body", "url"))


class EndpointDisabledError(ConflictError):
    """A delivery was asked of a disabled endpoint (enable it with ``PATCH`` first): 409."""

    code = "webhook_endpoint_disabled"
    title = "Webhook endpoint disabled"

    def __init__(self, endpoint_id: str) -> None:
        super().__init__(f"Webhook endpoint {endpoint_id} is disabled; enable it first.", endpointId=endpoint_id)


class DeliveryInFlightError(ConflictError):
    """The delivery is being sent right now: 409 with ``Retry-After``."""

    code = "webhook_delivery_in_flight"
    title = "Delivery in flight"

    def __init__(self, delivery_id: str) -> None:
        super().__init__(
            f"Delivery {delivery_id} is being sent right now; retry later.",
            headers={"Retry-After": "15"},
            deliveryId=delivery_id,
        )


class ReplayTooLargeError(UnprocessableError):
    """A replay range holding more events than one request may queue: 422."""

    code = "replay_too_large"
    title = "Replay range too large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"The range holds more than {limit} events; replay a shorter range.", field=("body", "since"))
