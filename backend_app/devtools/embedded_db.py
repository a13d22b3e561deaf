"""Start and stop the embedded SecantusDB server as a separate process.

Used by ``python -m backend_app dev`` (``make run``), the test suite and the
benchmarks, so that the app always reaches its database over TCP through a
MongoDB URI, exactly as it reaches MongoDB or Atlas in production.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Self

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from backend_app.devtools.process import ManagedProcess

#: Oplog bound: the embedded server's write rate decays as the oplog grows.
DEFAULT_OPLOG_MAX_ENTRIES = 20_000


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class EmbeddedMongo(ManagedProcess):
    """A SecantusDB child process (``python -m secantus``) listening on ``host:port``.

    Args:
        storage_path: WiredTiger directory (kept across restarts), or
            ``":memory:"`` for a throw-away store.
        port: TCP port; a free one when ``None``.
        log_path: file receiving the server's output; discarded when ``None``.
        oplog_max_entries: oplog bound passed to the server.
        sync_on_commit: start the server with ``--sync-on-commit``, so every
            commit fsyncs its log before it is acknowledged and an
            acknowledged write survives a crash of the server process.
            On by default, everywhere: ``make run``, ``python -m backend_app dev``,
            the tests and the benchmarks.

    Use as a context manager, or call :meth:`start` (waits for ``ping``) and :meth:`stop`.
    """

    name = "SecantusDB"

    def __init__(
        self,
        *,
        storage_path: str | os.PathLike[str] = ":memory:",
        host: str = "127.0.0.1",
        port: int | None = None,
        log_path: str | os.PathLike[str] | None = None,
        oplog_max_entries: int = DEFAULT_OPLOG_MAX_ENTRIES,
        sync_on_commit: bool = True,
    ) -> None:
        super().__init__(log_path=log_path)
        self.storage_path = str(storage_path)
        self.host = host
        self.port = port or free_port(host)
        self.oplog_max_entries = oplog_max_entries
        self.sync_on_commit = sync_on_commit

    @property
    def uri(self) -> str:
        """``mongodb://host:port/`` of the server."""
        return f"mongodb://{self.host}:{self.port}/"

    def command(self) -> list[str]:
        """``python -m secantus`` with host, port, storage path, oplog bound and (by default) ``--sync-on-commit``."""
        argv = [
            sys.executable, "-m", "secantus",
            "--host", self.host,
            "--port", str(self.port),
            "--storage-path", self.storage_path,
            "--log-level", "WARNING",
            "--oplog-max-entries", str(self.oplog_max_entries),
        ]  # fmt: skip
        if self.sync_on_commit:
            argv.append("--sync-on-commit")
        return argv

    def start(self, *, timeout_s: float = 30.0) -> Self:
        """Create the storage directory if needed, launch, and wait until ``ping`` answers."""
        if self.storage_path != ":memory:":
            Path(self.storage_path).mkdir(parents=True, exist_ok=True)
        return super().start(timeout_s=timeout_s)

    def ready(self) -> bool:
        """Whether the server answers ``ping``."""
        client: MongoClient = MongoClient(self.uri, serverSelectionTimeoutMS=300, connectTimeoutMS=300)
        try:
            client.admin.command("ping")
        except PyMongoError:
            return False
        finally:
            client.close()
        return True
