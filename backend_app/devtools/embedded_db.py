"""Start and stop the embedded SecantusDB server as a separate process (spec §9).

Used by ``python -m backend_app dev`` (``make run``), the test suite and the
benchmarks, so that the app always reaches its database over TCP through a
MongoDB URI, exactly as it reaches MongoDB or Atlas in production.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from pymongo import MongoClient
from pymongo.errors import PyMongoError

#: Oplog bound: the embedded server's write rate decays as the oplog grows (spec §9).
DEFAULT_OPLOG_MAX_ENTRIES = 20_000


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class EmbeddedMongo:
    """A SecantusDB child process listening on ``host:port``.

    Args:
        storage_path: WiredTiger directory (kept across restarts), or
            ``":memory:"`` for a throw-away store.
        port: TCP port; a free one when ``None``.
        log_path: file receiving the server's output; discarded when ``None``.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.

    Raises:
        RuntimeError: from :meth:`start`, when the server exits or does not
            answer ``ping`` within the timeout.
    """

    def __init__(
        self,
        *,
        storage_path: str | os.PathLike[str] = ":memory:",
        host: str = "127.0.0.1",
        port: int | None = None,
        log_path: str | os.PathLike[str] | None = None,
        oplog_max_entries: int = DEFAULT_OPLOG_MAX_ENTRIES,
    ) -> None:
        self.storage_path = str(storage_path)
        self.host = host
        self.port = port or free_port(host)
        self.log_path = log_path
        self.oplog_max_entries = oplog_max_entries
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file = None

    @property
    def uri(self) -> str:
        """``mongodb://host:port/`` of the running server."""
        return f"mongodb://{self.host}:{self.port}/"

    def start(self, *, timeout_s: float = 30.0) -> EmbeddedMongo:
        """Launch ``python -m secantus`` and wait until it answers ``ping``."""
        if self.storage_path != ":memory:":
            Path(self.storage_path).mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        cmd = [
            sys.executable,
            "-m",
            "secantus",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--storage-path",
            self.storage_path,
            "--log-level",
            "WARNING",
            "--oplog-max-entries",
            str(self.oplog_max_entries),
        ]
        self._process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            cmd, stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"SecantusDB exited with code {self._process.returncode}; see {self.log_path}")
            if self._answers_ping():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"SecantusDB did not answer on {self.uri} within {timeout_s:.0f}s")

    def _answers_ping(self) -> bool:
        client: MongoClient = MongoClient(self.uri, serverSelectionTimeoutMS=300, connectTimeoutMS=300)
        try:
            client.admin.command("ping")
        except PyMongoError:
            return False
        finally:
            client.close()
        return True

    def stop(self, *, timeout_s: float = 15.0) -> None:
        """Stop the server: SIGTERM (a clean WiredTiger shutdown), SIGKILL after ``timeout_s``."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log_file not in (None, subprocess.DEVNULL):
            self._log_file.close()  # type: ignore[union-attr]
        self._log_file = None

    def __enter__(self) -> EmbeddedMongo:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
