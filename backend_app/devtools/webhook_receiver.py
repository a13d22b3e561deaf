"""A webhook receiver on loopback for tests, benchmarks and `webhook-listen`: records every request, answers as told.

Runs uvicorn in a thread of its own (its own event loop), so both in-process
apps and API server processes can deliver to it. ``behaviour(request_number,
headers)`` decides each answer: ``(status, headers, body, delay_s)``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from backend_app.devtools.embedded_db import free_port

Answer = tuple[int, dict[str, str], bytes, float]
Behaviour = Callable[[int, dict[str, str]], Answer]


def always(
    status: int = 200, *, headers: dict[str, str] | None = None, body: bytes = b"ok", delay_s: float = 0.0
) -> Behaviour:
    """A behaviour answering ``status`` every time."""
    return lambda _n, _h: (status, headers or {}, body, delay_s)


@dataclass
class Received:
    """One request the receiver got, and what it answered."""

    at: float
    finished: float
    wall: float
    path: str
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class Receiver:
    """``with Receiver() as r: ... r.url ... r.requests``."""

    behaviour: Behaviour = field(default_factory=always)
    #: When set, decides each answer from the request's headers and body instead of ``behaviour``.
    on_request: Callable[[dict[str, str], bytes], Answer] | None = None
    port: int = field(default_factory=free_port)
    requests: list[Received] = field(default_factory=list)
    in_flight: dict[str, int] = field(default_factory=dict)
    max_in_flight_same_id: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>/hook``."""
        return f"http://127.0.0.1:{self.port}/hook"

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        started, wall = time.monotonic(), time.time()
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        message_id = headers.get("webhook-id", "")
        with self._lock:
            number = len(self.requests) + sum(self.in_flight.values())
            self.in_flight[message_id] = self.in_flight.get(message_id, 0) + 1
            self.max_in_flight_same_id = max(self.max_in_flight_same_id, self.in_flight[message_id])
        if self.on_request is not None:
            status, extra, body, delay = self.on_request(headers, b"".join(chunks))
        else:
            status, extra, body, delay = self.behaviour(number, headers)
        try:
            if delay:
                await asyncio.sleep(delay)
            await send({"type": "http.response.start", "status": status,
                        "headers": [(k.encode(), v.encode()) for k, v in extra.items()]})  # fmt: skip
            await send({"type": "http.response.body", "body": body})
        finally:
            with self._lock:
                self.in_flight[message_id] -= 1
                self.requests.append(
                    Received(started, time.monotonic(), wall, scope["path"], headers, b"".join(chunks), status)
                )

    def __enter__(self) -> Receiver:
        config = uvicorn.Config(
            self._app, interface="asgi3", host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the webhook receiver did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def accepted(self) -> list[Received]:
        """Requests answered with a 2xx."""
        with self._lock:
            return [r for r in self.requests if 200 <= r.status < 300]

    def snapshot(self) -> list[Received]:
        """Every request so far."""
        with self._lock:
            return list(self.requests)
