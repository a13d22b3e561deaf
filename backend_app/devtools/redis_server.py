"""A throw-away ``redis-server`` child process (no persistence), for tests and benchmarks."""

from __future__ import annotations

import os
import shutil

import redis

from backend_app.devtools.embedded_db import free_port
from backend_app.devtools.process import ManagedProcess

#: The ``redis-server`` binary (Debian package; ``make test`` installs it when it can), or ``None``.
REDIS_SERVER = shutil.which("redis-server")


class RedisServer(ManagedProcess):
    """``redis-server`` on ``127.0.0.1:port`` with RDB and AOF off, ready when it answers ``PING``.

    Args:
        workdir: the server's working directory (``--dir``).
        port: TCP port; a free one when ``None``.

    Raises:
        RuntimeError: from :meth:`start`, when ``redis-server`` is not installed,
            exits, or does not answer within the timeout.
    """

    name = "redis-server"

    def __init__(self, *, workdir: str | os.PathLike[str], port: int | None = None) -> None:
        super().__init__()
        self.workdir = str(workdir)
        self.port = port or free_port()

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        """``redis-server`` bound to loopback, persistence off."""
        if REDIS_SERVER is None:
            raise RuntimeError("redis-server is not installed")
        return [
            REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", self.workdir,
        ]  # fmt: skip

    def ready(self) -> bool:
        """Whether the server answers ``PING``."""
        client = redis.Redis.from_url(self.url, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()
