"""Run the API in a uvicorn child process, for end-to-end tests and benchmarks.

The server is a real process on a TCP port, configured only through
environment variables, exactly as in production.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import TracebackType

import httpx

from backend_app.devtools.embedded_db import free_port


class ApiServer:
    """``uvicorn backend_app.main:app`` on ``127.0.0.1:port`` with the given environment.

    Args:
        env: variables added to this process's environment (``MONGODB_URI``,
            ``MONGODB_DB``, ``JWT_SECRET``, ...).
        port: TCP port; a free one when ``None``.
        workers: uvicorn worker processes.
        log_path: file receiving the server's output; discarded when ``None``.

    Raises:
        RuntimeError: from :meth:`start`, when ``/health`` does not answer 200
            within the timeout.
    """

    def __init__(
        self,
        *,
        env: dict[str, str],
        port: int | None = None,
        workers: int = 1,
        log_path: str | None = None,
    ) -> None:
        self.env = env
        self.port = port or free_port()
        self.workers = workers
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._log = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout_s: float = 30.0) -> ApiServer:
        """Launch uvicorn and wait until ``GET /health`` answers 200."""
        env = {**os.environ, "APP_ENV": "test", **self.env}
        self._log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "backend_app.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        self._process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"uvicorn exited with code {self._process.returncode}")
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the API did not become healthy on {self.base_url} within {timeout_s:.0f}s")

    def stop(self, *, timeout_s: float = 10.0) -> None:
        """SIGTERM the server (graceful shutdown), SIGKILL after ``timeout_s``."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if self._log not in (None, subprocess.DEVNULL):
            self._log.close()  # type: ignore[union-attr]
        self._log = None

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
