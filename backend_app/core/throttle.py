"""Failed checks counted per key, one check per key at a time (``limits`` moving windows).

A shared mechanism: the domains decide what a key is and what counts as a
failure (failed sign-ins per account and wrong current passwords per login
session in ``auth.throttles``; failed ``GET /metrics`` authorisations per
client address in ``core.metrics``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from anyio import CancelScope
from anyio.to_thread import run_sync
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from config import Settings

logger = logging.getLogger(__name__)

#: Socket timeouts of the Redis client, in seconds: a dead Redis must not stall requests.
REDIS_TIMEOUT_S = 0.5
#: Longest a :class:`FailureThrottle` turn is held (or waited for), in seconds: far above one bcrypt check.
TURN_SECONDS = 10
#: How often a waiting attempt polls for its key's turn, in seconds.
TURN_POLL_SECONDS = 0.02
#: A turn: one entry per key in a moving window of ``TURN_SECONDS``, released by clearing it.
TURN_ITEM: RateLimitItem = parse(f"1/{TURN_SECONDS}seconds")


class Attempt:
    """One admitted-or-refused turn of :meth:`FailureThrottle.attempt` for one key.

    ``retry_after`` is ``None`` when the check may go ahead, else the seconds
    until the key may try again (≥ 1). Call :meth:`failed` once the check has
    failed; a success records nothing.
    """

    __slots__ = ("_ids", "_throttle", "retry_after")

    def __init__(self, throttle: FailureThrottle, ids: tuple[str, ...], retry_after: int | None) -> None:
        self._throttle = throttle
        self._ids = ids
        self.retry_after = retry_after

    async def failed(self) -> None:
        """Count one failure of this key (inside its turn, so the next turn sees it)."""
        await self._throttle._run(self._throttle._call, "hit", self._throttle.item, *self._ids)


class FailureThrottle:
    """Counts failed checks per key (``limits`` moving window) and admits one check per key at a time.

    Used for failed sign-ins per account, wrong current passwords per session
    and failed ``/metrics`` authorisations per address. Keys are hashed
    (SHA-256 prefix), so no raw identifier is stored and a huge form value
    cannot bloat the storage. The storage is ``RATE_LIMIT_STORAGE_URI`` (Redis
    when configured, so every worker and host shares the counts); if it cannot
    be reached the counts fall back to this process's memory (logged), as
    slowapi's own limits do.

    Why one check at a time: reading the count, checking a password (bcrypt,
    ~0.25 s) and only then recording the failure lets N concurrent guesses all
    read the same count and all be checked. :meth:`attempt` first takes the
    key's *turn* (an entry of a ``1 per TURN_SECONDS`` moving window, acquired
    atomically by the storage: a lock in memory, a Lua script in Redis), reads
    the count inside it and releases it after the failure is recorded, so N
    concurrent guesses cost at most the limit, across processes too. A turn
    whose holder died expires after :data:`TURN_SECONDS`.

    Args:
        settings: ``RATE_LIMIT_STORAGE_URI``.
        limit: failures allowed per key, ``limits`` syntax (``10/15minutes``).
        scope: namespace of the keys (``signin-failures``, ...).
        enabled: ``False``: every attempt is admitted and nothing is counted.
    """

    def __init__(self, settings: Settings, *, limit: str, scope: str, enabled: bool = True) -> None:
        self.enabled = enabled
        self.scope = scope
        self.item: RateLimitItem = parse(limit)
        uri = settings.rate_limit_storage_uri
        self.is_shared = not uri.startswith("memory://")
        options: dict[str, Any] = (
            {"socket_timeout": REDIS_TIMEOUT_S, "socket_connect_timeout": REDIS_TIMEOUT_S} if self.is_shared else {}
        )
        self._strategy = MovingWindowRateLimiter(storage_from_string(uri, **options))
        self._fallback = MovingWindowRateLimiter(MemoryStorage())

    def _identifiers(self, key: str) -> tuple[str, str, str]:
        digest = hashlib.sha256(key.strip().casefold().encode("utf-8")).hexdigest()[:32]
        return "storefront", self.scope, digest

    def _call(self, method: str, *args: Any) -> Any:
        try:
            return getattr(self._strategy, method)(*args)
        except Exception:  # storage unreachable: count in this process rather than fail the check
            logger.warning("rate-limit storage unreachable; counting %s in memory", self.scope, exc_info=True)
            return getattr(self._fallback, method)(*args)

    async def _run(self, func: Callable[..., Any], *args: Any) -> Any:
        # Redis calls are blocking: off the event loop. Memory calls are quick: inline.
        return await run_sync(func, *args) if self.is_shared else func(*args)

    def _retry_after_sync(self, ids: tuple[str, ...]) -> int | None:
        if self._call("test", self.item, *ids):
            return None
        stats = self._call("get_window_stats", self.item, *ids)
        return max(math.ceil(float(stats.reset_time) - time.time()), 1)

    @asynccontextmanager
    async def attempt(self, key: str) -> AsyncIterator[Attempt]:
        """Take ``key``'s turn, then yield whether it may be checked now (:class:`Attempt`).

        Waits (polling every :data:`TURN_POLL_SECONDS`) while another check of
        the same key runs; after :data:`TURN_SECONDS` of waiting the attempt is
        refused with ``retry_after=1`` rather than queued longer.
        """
        ids = self._identifiers(key)
        if not self.enabled:
            yield Attempt(self, ids, None)
            return
        turn = (*ids[:2], "turn", ids[2])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TURN_SECONDS
        while not await self._run(self._call, "hit", TURN_ITEM, *turn):
            if loop.time() >= deadline:
                yield Attempt(self, ids, 1)
                return
            await asyncio.sleep(TURN_POLL_SECONDS)
        try:
            yield Attempt(self, ids, await self._run(self._retry_after_sync, ids))
        finally:
            with CancelScope(shield=True):  # a client hanging up must not leave the turn taken
                await self._run(self._call, "clear", TURN_ITEM, *turn)
