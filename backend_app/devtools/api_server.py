"""Run the API in a uvicorn child process, for end-to-end tests and benchmarks.

The server is a real process on a TCP port, configured only through
environment variables, exactly as in production.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx

from backend_app.devtools.embedded_db import free_port
from backend_app.devtools.process import ManagedProcess

REPO = Path(__file__).resolve().parents[2]
#: Variables of the caller's environment that must not leak into the server's settings
#: (a developer's exported MONGODB_URI must not point a test server at their database).
_SETTINGS_PREFIXES = (
    "MONGODB_",
    "DATABASE_URL",
    "JWT_",
    "APP_ENV",
    "ADMIN_",
    "RATE_LIMIT_",
    "CACHE_",
    "WEBHOOK_",
    "EVENTS_",
    # Read by backend_app.orders.faults from the environment: only a test that asks for a crash gets one.
    "ORDER_FAULT_STEP",
)


class ApiServer(ManagedProcess):
    """``uvicorn --factory backend_app.main:create_app`` on ``127.0.0.1:port``, ready when ``/health`` is 200.

    Args:
        env: the server's settings as environment variables (``MONGODB_URI``,
            ``MONGODB_DB``, ``JWT_SECRET``, ...), added to this process's
            environment minus its own storefront settings; ``APP_ENV``
            defaults to ``test``.
        port: TCP port; a free one when ``None``.
        workers: uvicorn worker processes.
        log_path: file receiving the server's output; discarded when ``None``.
    """

    name = "uvicorn"

    def __init__(
        self, *, env: dict[str, str], port: int | None = None, workers: int = 1, log_path: str | None = None
    ) -> None:
        super().__init__(log_path=log_path, cwd=REPO)
        self.env = env
        self.port = port or free_port()
        self.workers = workers

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        """``python -m uvicorn --factory backend_app.main:create_app`` on the chosen port and worker count."""
        return [
            sys.executable, "-m", "uvicorn", "--factory", "backend_app.main:create_app",
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--workers", str(self.workers),
            "--no-access-log",
            "--log-level", "warning",
        ]  # fmt: skip

    def environment(self) -> dict[str, str]:
        """This process's environment without storefront settings, then ``APP_ENV=test`` and :attr:`env`."""
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(_SETTINGS_PREFIXES)}
        return {**inherited, "APP_ENV": "test", **self.env}

    def ready(self) -> bool:
        """Whether ``GET /health`` answers 200."""
        try:
            return httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False
