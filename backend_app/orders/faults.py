"""Test-only fault injection on the order write paths: kill the process at each step to test recovery.

With ``APP_ENV=test`` and the environment variable ``ORDER_FAULT_STEP=<step>``,
the API process exits abruptly (``os._exit(70)``: no clean-up, no response, as a
power cut or ``kill -9`` would) when placing an order reaches ``<step>``.
``ORDER_FAULT_STEP`` is read here, from the process environment only (not from
``.env``), and is no field of :class:`config.Settings`: production
configuration has no knob that crashes the process. In any other environment
:func:`configure` disarms it without reading the variable.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

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
#: Environment variable naming the step to exit at (test processes only).
FAULT_STEP_VARIABLE = "ORDER_FAULT_STEP"

_armed: str | None = None


def configure(app_env: str, environ: Mapping[str, str] | None = None) -> None:
    """Arm the step named by ``ORDER_FAULT_STEP`` in ``environ`` when ``app_env`` is ``test``; disarm otherwise.

    Args:
        app_env: the process's ``APP_ENV`` (``settings.app_env``); anything but
            ``test`` disarms the hook, whatever the environment says.
        environ: where to read ``ORDER_FAULT_STEP``; defaults to ``os.environ``.
            Unset or empty: disarmed.

    Raises:
        ValueError: the step is not one of :data:`STEPS`.
    """
    global _armed
    step = None
    if app_env == "test":
        step = (os.environ if environ is None else environ).get(FAULT_STEP_VARIABLE, "").strip() or None
    if step is not None and step not in STEPS:
        raise ValueError(f"{FAULT_STEP_VARIABLE} must be one of {', '.join(STEPS)}; got {step!r}")
    _armed = step


def reach(step: str) -> None:
    """Mark that the write path reached ``step``; exit the process at once if it is the armed one."""
    if step == _armed:
        logger.critical("fault injection: exiting at order step %s", step)
        os._exit(FAULT_EXIT_STATUS)
