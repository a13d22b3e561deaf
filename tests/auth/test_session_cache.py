"""The session cache in one process: served from memory, bounded, never staler than its bound.

Cross-process revocation is tested end to end in tests/e2e/test_session_revocation.py.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from backend_app.auth.session_cache import SessionCache
from backend_app.core.security import TokenClaims, TokenError
from backend_app.devtools.embedded_db import EmbeddedMongo
from tests.support.auth_helpers import session_id

Headers = dict[str, str]


async def _caught_up(app: FastAPI) -> SessionCache:
    """The app's session cache once its change feed has confirmed (at most a few hundred ms after start)."""
    cache: SessionCache = app.state.session_cache
    deadline = time.monotonic() + 5
    while cache.feed is None or not cache.feed.caught_up():
        assert time.monotonic() < deadline, "the change feed never caught up"
        await asyncio.sleep(0.02)
    return cache


# The widest bound the contract allows: this test is about serving from memory, not the bound.
@pytest.mark.settings(session_cache_max_staleness_seconds=1.0)
async def test_repeated_requests_are_served_from_memory(
    app: FastAPI, client: httpx.AsyncClient, alice: Headers
) -> None:
    cache = await _caught_up(app)
    assert (await client.get("/auth/me", headers=alice)).status_code == 200
    hits, misses = cache.hits, cache.misses
    for _ in range(10):
        await _caught_up(app)
        response = await client.get("/auth/me", headers=alice)
        assert response.status_code == 200 and response.json()["username"] == "alice"
    # Every request is answered from memory while the feed is confirmed; on a loaded machine the
    # confirmation can age past the bound between the check above and the request, and that one
    # request reads the database (a miss) instead. A cache that did not serve would have no hits.
    assert cache.hits + cache.misses == hits + misses + 10
    assert cache.hits >= hits + 8, (cache.hits - hits, cache.misses - misses)


@pytest.mark.settings(session_cache_max_entries=3)
async def test_memory_is_bounded_by_the_session_count(app: FastAPI, client: httpx.AsyncClient, make_user: Any) -> None:
    cache = await _caught_up(app)
    users = [await make_user(f"shopper{i}") for i in range(6)]
    for headers in users:
        await _caught_up(app)
        assert (await client.get("/auth/me", headers=headers)).status_code == 200
    assert len(cache) == 3
    misses = cache.misses
    for headers in users[3:]:  # the three most recently used are kept
        await _caught_up(app)
        assert (await client.get("/auth/me", headers=headers)).status_code == 200
    assert cache.misses == misses
    assert (await client.get("/auth/me", headers=users[0])).status_code == 200  # evicted: read again
    assert cache.misses == misses + 1 and len(cache) == 3


@pytest.mark.settings(session_cache_enabled=False)
async def test_cache_off_reads_the_database_every_time(app: FastAPI, client: httpx.AsyncClient, alice: Headers) -> None:
    assert app.state.session_cache is None
    assert (await client.get("/auth/me", headers=alice)).status_code == 200


async def test_a_revocation_by_another_client_is_refused_within_the_bound(
    app: FastAPI, client: httpx.AsyncClient, alice: Headers, mongo_server: EmbeddedMongo, db_name: str
) -> None:
    """A write this process did not make (another client: another API process, a script) reaches the
    cache through the change stream only."""
    await _caught_up(app)
    assert (await client.get("/auth/me", headers=alice)).status_code == 200
    other: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_server.uri, tz_aware=True)
    try:
        await other[db_name]["sessions"].update_one(
            {"_id": session_id(alice)}, {"$set": {"revoked_at": datetime.now(UTC)}}
        )
    finally:
        await other.close()
    done = time.monotonic()
    while (await client.get("/auth/me", headers=alice)).status_code == 200:
        assert time.monotonic() - done < 1.0, "revoked token still served after 1 s"
        await asyncio.sleep(0.01)
    assert (await client.get("/auth/me", headers=alice)).status_code == 401


async def test_a_lost_stream_stops_the_cache_from_serving(
    app: FastAPI, client: httpx.AsyncClient, alice: Headers
) -> None:
    cache = await _caught_up(app)
    assert (await client.get("/auth/me", headers=alice)).status_code == 200
    assert cache.feed is not None
    await cache.feed.stop()  # no more confirmations: as if the stream hung or the database failed over
    hits = cache.hits
    for _ in range(3):
        assert (await client.get("/auth/me", headers=alice)).status_code == 200
    assert cache.hits == hits  # every request read the database


async def test_a_fill_that_overlaps_an_invalidation_is_not_kept() -> None:
    """A database read that began before a change and returns after its invalidation is the old state."""
    cache = SessionCache(max_entries=10, ttl_s=60, max_staleness_s=0.8)
    cache._caught_up = lambda: True  # type: ignore[method-assign] # a feed that is always current

    user, session = {"_id": 1, "username": "u", "is_active": True, "password_hash": "x"}, {"_id": "s", "epoch": 0}

    async def load_racing_a_revocation() -> tuple[dict[str, Any], dict[str, Any]]:
        cache.changed("sessions", "s")  # the revocation's event arrives while the read is in flight
        return user, session

    async def load() -> tuple[dict[str, Any], dict[str, Any]]:
        return user, session

    await cache.documents(sid="s", username="u", load=load_racing_a_revocation)
    assert len(cache) == 0
    await cache.documents(sid="s", username="u", load=load)
    assert len(cache) == 1

    async def no_read() -> tuple[dict[str, Any], dict[str, Any]]:
        raise AssertionError("served from memory, no read expected")

    stored_user, _ = await cache.documents(sid="s", username="u", load=no_read)
    assert stored_user["username"] == "u" and "password_hash" not in stored_user  # no hash kept in memory
    await cache.documents(sid="s", username="other", load=load)  # a token of another subject is never served
    cache.changed("users", 1)  # any change of the user drops its sessions
    assert len(cache) == 0


async def test_verified_claims_are_reused_until_exp_only() -> None:
    """A token string's claims are verified once, then reused while ``exp`` is ahead; never for a failure."""
    cache = SessionCache(max_entries=2, ttl_s=60, max_staleness_s=0.8)
    now = int(time.time())
    calls: list[str] = []

    def verify_as(token: str, exp: int):
        def verify() -> TokenClaims:
            calls.append(token)
            return TokenClaims(sub="u", role="user", type="access", jti=token, sid="s", iat=now - 10, exp=exp)

        return verify

    def refuse() -> TokenClaims:
        calls.append("forged")
        raise TokenError("bad signature")

    assert cache.verified("live", verify_as("live", now + 60)).jti == "live"
    assert cache.verified("live", verify_as("live", now + 60)).jti == "live"
    assert calls == ["live"]
    cache.verified("expired", verify_as("expired", now - 1))
    cache.verified("expired", verify_as("expired", now - 1))
    assert calls.count("expired") == 2  # past its exp: verified (and so refused) again every time
    for _ in range(2):
        with pytest.raises(TokenError):
            cache.verified("forged", refuse)
    assert calls.count("forged") == 2
