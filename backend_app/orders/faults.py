"""Test-only fault injection on the order write paths: kill the process at each step to test recovery.

With ``APP_ENV=test`` and ``ORDER_FAULT_STEP=<step>``, the API process exits
abruptly (``os._exit(70)``: no clean-up, no response, as a power cut or
``kill -9`` would) when placing an order reaches ``<step>``. In any other
environment :func:`configure` disarms it, so production can never be made to
crash by a setting.
"""

from __future__ import annotations

import logging
import os

from config import Settings

logger = logging.getLogger(__name__)

#: Steps of placing an order (``POST /orders``; ``orders.placement``), in order.
PLACING_STEPS: tuple[str, ...] = (
    "key_claimed",  # the Idempotency-Key record is inserted (in flight)
    "products_read",  # inside the transaction: products and owners' holds read
    "stock_allocated",  # inside the transaction: every product's stock allocated
    "order_inserted",  # inside the transaction: the owner's holds raised, the order document inserted
    "key_completed",  # inside the transaction: the Idempotency-Key record completed
    "committed",  # after the commit was acknowledged, before the 201 is sent
)
#: Steps of an order leaving ``pending`` (cancel, complete, expiry; ``orders.service._leave_pending``).
TRANSITION_STEPS: tuple[str, ...] = (
    "transition_read",  # inside the transaction: the order re-read
    "transition_settled",  # inside the transaction: status set, stock settled, holds lowered
    "transition_committed",  # after the commit was acknowledged
)
STEPS: tuple[str, ...] = PLACING_STEPS + TRANSITION_STEPS
#: Exit status of a process killed by an injected fault.
FAULT_EXIT_STATUS = 70

_armed: str | None = None


def configure(settings: Settings) -> None:
    """Arm ``settings.order_fault_step`` when ``APP_ENV=test``; disarm otherwise.

    Raises:
        ValueError: the step is not one of :data:`STEPS`.
    """
    global _armed
    step = settings.order_fault_step if settings.app_env == "test" else None
    if step is not None and step not in STEPS:
        raise ValueError(f"ORDER_FAULT_STEP must be one of {', '.join(STEPS)}; got {step!r}")
    _armed = step


def reach(step: str) -> None:
    """Mark that the write path reached ``step``; exit the process at once if it is the armed one."""
    if step == _armed:
        logger.critical("fault injection: exiting at order step %s", step)
        os._exit(FAULT_EXIT_STATUS)
