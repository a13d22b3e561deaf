"""Run the API in a uvicorn child process on a free loopback port (end-to-end tests, benchmarks).

The server talks to the database named by ``mongodb_uri``/``db_name`` over
TCP, exactly as in production; callers reach it at :attr:`LiveServer.base_url`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from backend_app.devtools.embedded_db import free_port

REPO = Path(__file__).resolve().parents[2]
#: Variables of the caller's environment that must not leak into the server's settings.
_SETTINGS_PREFIXES = ("MONGODB_", "DATABASE_URL", "JWT_", "APP_ENV", "ADMIN_")


class LiveServer:
    """``uvicorn backend_app.main:app`` as a child process.

    Args:
        mongodb_uri: the database server (e.g. ``EmbeddedMongo.uri``).
        db_name: the database (``MONGODB_DB``).
        env: further settings (environment variables) for the server.
        port: TCP port on 127.0.0.1; a free one when ``None``.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.

    Raises:
        RuntimeError: from :meth:`start`, when the server exits or ``/health``
            does not answer 200 within the timeout.
    """

    def __init__(
        self, *, mongodb_uri: str, db_name: str, env: dict[str, str] | None = None, port: int | None = None
    ) -> None:
        self.port = port or free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(_SETTINGS_PREFIXES)},
            "APP_ENV": "test",
            "MONGODB_URI": mongodb_uri,
            "MONGODB_DB": db_name,
            **(env or {}),
        }
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout_s: float = 30.0) -> LiveServer:
        """Launch uvicorn (no access log) and wait until ``GET /health`` answers 200."""
        cmd = [
            sys.executable, "-m", "uvicorn", "backend_app.main:app",
            "--host", "127.0.0.1", "--port", str(self.port), "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        self._process = subprocess.Popen(cmd, cwd=REPO, env=self.env)  # noqa: S603 - fixed argv, no shell
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"uvicorn exited with code {self._process.returncode}")
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the API did not become healthy on {self.base_url} within {timeout_s:.0f}s")

    def stop(self, *, timeout_s: float = 15.0) -> None:
        """Stop uvicorn: SIGTERM (graceful shutdown, lifespan closes the client), SIGKILL after ``timeout_s``."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
