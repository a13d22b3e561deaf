"""The app's lifespan run in a test, with start-up and shutdown bounds a loaded CI machine can meet."""

from __future__ import annotations

from asgi_lifespan import LifespanManager
from fastapi import FastAPI

#: Seconds the lifespan may take to start or stop. asgi-lifespan's default of 5 s is shorter than the
#: index installers take on the embedded server when the suite's workers share two cores.
LIFESPAN_TIMEOUT_S = 30.0


def lifespan(
    app: FastAPI, *, startup_timeout: float = LIFESPAN_TIMEOUT_S, shutdown_timeout: float = LIFESPAN_TIMEOUT_S
) -> LifespanManager:
    """``LifespanManager(app)`` with :data:`LIFESPAN_TIMEOUT_S` (or the given bounds) for start-up and shutdown."""
    return LifespanManager(app, startup_timeout=startup_timeout, shutdown_timeout=shutdown_timeout)
