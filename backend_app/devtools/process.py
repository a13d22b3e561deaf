"""A child process that is ready once a probe succeeds, stopped with SIGTERM then SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from types import TracebackType
from typing import IO, Self


class ManagedProcess:
    """Base of :class:`~backend_app.devtools.embedded_db.EmbeddedMongo` and
    :class:`~backend_app.devtools.api_server.ApiServer`.

    Subclasses implement :meth:`command` (the argv) and :meth:`ready` (a quick
    readiness probe). The child runs in its own session, so a Ctrl-C in the
    terminal reaches only the parent, which then stops the child cleanly.

    Args:
        log_path: file receiving the child's stdout and stderr; discarded when ``None``.
        cwd: the child's working directory; this process's when ``None``.
    """

    name = "process"

    def __init__(
        self, *, log_path: str | os.PathLike[str] | None = None, cwd: str | os.PathLike[str] | None = None
    ) -> None:
        self.log_path = log_path
        self.cwd = cwd
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def command(self) -> list[str]:
        """The child's argv."""
        raise NotImplementedError

    def environment(self) -> dict[str, str] | None:
        """The child's environment; ``None`` inherits this process's."""
        return None

    def ready(self) -> bool:
        """Whether the child answers yet; must return quickly."""
        raise NotImplementedError

    def start(self, *, timeout_s: float = 30.0) -> Self:
        """Launch the child and poll :meth:`ready` every 0.1 s.

        Raises:
            RuntimeError: the child exited, or was not ready within ``timeout_s`` seconds.
        """
        self._log = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115 - closed in stop()
        output = self._log if self._log is not None else subprocess.DEVNULL
        self._process = subprocess.Popen(  # noqa: S603 - argv from the subclass, no shell
            self.command(),
            cwd=self.cwd,
            env=self.environment(),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                self.stop()
                raise RuntimeError(f"{self.name} exited with code {code}; see {self.log_path or 'its output'}")
            if self.ready():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} was not ready within {timeout_s:.0f}s")

    def stop(self, *, timeout_s: float = 15.0) -> None:
        """SIGTERM the child's process group (a clean shutdown), SIGKILL after ``timeout_s``."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs (also its process group id), else ``None``."""
        return self._process.pid if self._process is not None else None

    def kill(self) -> int | None:
        """SIGKILL the child's process group at once, as a crash would (no clean-up); returns its exit status."""
        process, self._process = self._process, None
        code = None
        if process is not None:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            code = process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def wait(self, *, timeout_s: float) -> int | None:
        """Wait up to ``timeout_s`` for the child to exit by itself; its exit status, or ``None`` if still running."""
        if self._process is None:
            return None
        try:
            return self._process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
