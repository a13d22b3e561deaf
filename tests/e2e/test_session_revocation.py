"""Revocation across processes with the session cache on (docs/security.md (Auth hardening), "Session cache").

Two real uvicorn processes share one on-disk SecantusDB. Each kind of
revocation is made through process A (or behind the API) while process B has
the token's session in its cache; B must refuse the token within the bound
(``SESSION_CACHE_MAX_STALENESS_SECONDS``, at most 1 s; docs/contract.md §3).
Each test prints the measured latency (run with ``-s`` to see it).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from backend_app.devtools.api_server import ApiServer
from backend_app.devtools.embedded_db import EmbeddedMongo
from backend_app.main import INDEX_INSTALLERS
from backend_app.users import repository as users_repository
from tests.support.helpers import TEST_PASSWORD

#: The contract's revocation bound, in seconds (docs/contract.md §3).
BOUND_S = 1.0
DB_NAME = "revocation"


class Shop:
    """Two API processes (``a``, ``b``) on one database, with an admin ``boss`` able to sign in."""

    def __init__(self, db: EmbeddedMongo, a: ApiServer, b: ApiServer) -> None:
        self.db, self.a, self.b = db, a, b
        self.admin = bearer(login(a, "boss")["access_token"])

    def user(self, username: str, *, role: str = "user") -> None:
        """Store a user whose password is ``TEST_PASSWORD`` (through the driver, as a seed)."""
        asyncio.run(_insert_user(self.db.uri, username, role, self.password_hash))

    password_hash: str = ""


async def _insert_user(uri: str, username: str, role: str, password_hash: str) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    try:
        db = client[DB_NAME]
        for install in INDEX_INSTALLERS:
            await install(db)
        await users_repository.insert_user(
            db,
            username=username,
            email=f"{username}@example.com",
            password_hash=password_hash,
            full_name=None,
            role=role,
        )
    finally:
        await client.close()


async def _edit(uri: str, collection: str, query: dict[str, Any], update: dict[str, Any]) -> int:
    """An edit made behind the API (another client), as an operator's script would."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    try:
        return (await client[DB_NAME][collection].update_many(query, update)).modified_count
    finally:
        await client.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(server: ApiServer, username: str) -> dict[str, Any]:
    response = httpx.post(f"{server.base_url}/auth/login", json={"username": username, "password": TEST_PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()


def warm(server: ApiServer, headers: dict[str, str], path: str = "/auth/me") -> None:
    """Use the token on ``server`` until its session is surely cached there (and it works)."""
    for _ in range(5):
        response = httpx.get(f"{server.base_url}{path}", headers=headers)
        assert response.status_code == 200, response.text
        time.sleep(0.05)


def refused_after(
    server: ApiServer,
    headers: dict[str, str],
    revoke: Callable[[], Any],
    path: str = "/auth/me",
    *,
    wait_s: float = 5.0,
) -> tuple[float, int]:
    """Run ``revoke()``, then poll ``path`` with ``headers`` on ``server`` until it is not ``200``.

    Returns (seconds from the end of ``revoke()`` to the first refusal, that status).
    """
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=5) as client:
        assert client.get(path).status_code == 200
        revoke()
        done = time.monotonic()
        while time.monotonic() - done < wait_s:
            response = client.get(path)
            if response.status_code != 200:
                return time.monotonic() - done, response.status_code
            time.sleep(0.01)
    pytest.fail(f"{path} still answered 200 {wait_s} s after the revocation")


def _servers(db: EmbeddedMongo, tmp_path: Path, secret: str) -> tuple[ApiServer, ApiServer]:
    env = {
        "MONGODB_URI": db.uri,
        "MONGODB_DB": DB_NAME,
        "JWT_SECRET": secret,
        "RATE_LIMIT_ENABLED": "false",
        "SIGNIN_THROTTLE_ENABLED": "false",
        "LOG_DIR": str(tmp_path),
        "MONGODB_SERVER_SELECTION_TIMEOUT_MS": "1000",
        "SESSION_CACHE_ENABLED": "true",
    }
    return ApiServer(env=env), ApiServer(env=env)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, password_hash: str) -> Iterator[Shop]:
    tmp_path = tmp_path_factory.mktemp("revocation")
    db = EmbeddedMongo(storage_path=tmp_path / "db").start()
    try:
        Shop.password_hash = password_hash
        asyncio.run(_insert_user(db.uri, "boss", "admin", password_hash))
        a, b = _servers(db, tmp_path, secrets.token_urlsafe(48))
        with a, b:
            yield Shop(db, a, b)
    finally:
        db.stop()


def _assert_within_bound(kind: str, latency: float, status: int, expected: tuple[int, ...] = (401,)) -> None:
    print(f"\nrevocation {kind}: refused on the other process after {latency * 1000:.0f} ms ({status})")
    assert status in expected, (kind, status)
    assert latency < BOUND_S, f"{kind}: refused only after {latency:.3f} s"


def test_logout_on_one_process_is_refused_on_the_other(shop: Shop) -> None:
    shop.user("lou")
    pair = login(shop.a, "lou")
    warm(shop.b, bearer(pair["access_token"]))
    latency, status = refused_after(
        shop.b,
        bearer(pair["access_token"]),
        lambda: httpx.post(f"{shop.a.base_url}/auth/logout", json={"refresh_token": pair["refresh_token"]}),
    )
    _assert_within_bound("logout", latency, status)


def test_password_change_on_one_process_ends_other_sessions_on_the_other(shop: Shop) -> None:
    shop.user("pat")
    calling, other = login(shop.a, "pat"), login(shop.a, "pat")
    warm(shop.b, bearer(other["access_token"]))
    warm(shop.b, bearer(calling["access_token"]))

    def change() -> None:
        response = httpx.post(
            f"{shop.a.base_url}/auth/password",
            json={"current_password": TEST_PASSWORD, "new_password": "another-passw0rd"},
            headers=bearer(calling["access_token"]),
        )
        assert response.status_code == 204, response.text

    latency, status = refused_after(shop.b, bearer(other["access_token"]), change)
    _assert_within_bound("password change", latency, status)
    # the session that changed the password goes on working on both processes
    for server in (shop.a, shop.b):
        assert httpx.get(f"{server.base_url}/auth/me", headers=bearer(calling["access_token"])).status_code == 200


def _patch_user(shop: Shop, username: str, body: dict[str, Any]) -> Callable[[], None]:
    def patch() -> None:
        response = httpx.patch(f"{shop.a.base_url}/users/{username}", json=body, headers=shop.admin)
        assert response.status_code == 200, response.text

    return patch


def test_deactivation_then_reactivation_never_brings_the_token_back(shop: Shop) -> None:
    shop.user("dee")
    token = bearer(login(shop.a, "dee")["access_token"])
    warm(shop.b, token)
    latency, status = refused_after(shop.b, token, _patch_user(shop, "dee", {"is_active": False}))
    _assert_within_bound("deactivation", latency, status)
    _patch_user(shop, "dee", {"is_active": True})()
    reactivated = time.monotonic()
    while time.monotonic() - reactivated < 1.5:  # the old login stays ended on the other process
        assert httpx.get(f"{shop.b.base_url}/auth/me", headers=token).status_code == 401
        time.sleep(0.05)
    assert (
        httpx.get(f"{shop.b.base_url}/auth/me", headers=bearer(login(shop.b, "dee")["access_token"])).status_code == 200
    )


def test_reactivation_after_a_deactivation_behind_the_api_keeps_old_tokens_out(shop: Shop) -> None:
    """A deactivation written behind the API (``is_active`` only, as an older version or a script
    would: the session epoch is not bumped) is refused on both processes within the bound; an
    admin's reactivation through A then ends the old login, so it never works again on B."""
    shop.user("ray")
    token = bearer(login(shop.a, "ray")["access_token"])
    warm(shop.b, token)

    def deactivate_behind_the_api() -> None:
        assert asyncio.run(_edit(shop.db.uri, "users", {"username": "ray"}, {"$set": {"is_active": False}})) == 1

    latency, status = refused_after(shop.b, token, deactivate_behind_the_api)
    _assert_within_bound("deactivation behind the API", latency, status)
    _patch_user(shop, "ray", {"is_active": True})()
    reactivated = time.monotonic()
    while time.monotonic() - reactivated < 1.5:
        for server in (shop.a, shop.b):
            assert httpx.get(f"{server.base_url}/auth/me", headers=token).status_code == 401
        time.sleep(0.05)
    fresh = bearer(login(shop.a, "ray")["access_token"])
    assert httpx.get(f"{shop.b.base_url}/auth/me", headers=fresh).status_code == 200


def test_demoted_admin_never_acts_as_admin_on_the_other_process(shop: Shop) -> None:
    shop.user("vice", role="admin")
    token = bearer(login(shop.a, "vice")["access_token"])
    warm(shop.b, token, "/users")
    latency, status = refused_after(shop.b, token, _patch_user(shop, "vice", {"role": "user"}), "/users")
    _assert_within_bound("role change", latency, status, (401, 403))
    for _ in range(20):  # and never again
        assert httpx.get(f"{shop.b.base_url}/users", headers=token).status_code in (401, 403)


def test_refresh_token_reuse_on_one_process_ends_the_login_on_the_other(shop: Shop) -> None:
    shop.user("reo")
    first = login(shop.a, "reo")
    rotated = httpx.post(f"{shop.a.base_url}/auth/refresh", json={"refresh_token": first["refresh_token"]}).json()
    token = bearer(rotated["access_token"])
    warm(shop.b, token)

    def reuse() -> None:
        response = httpx.post(f"{shop.a.base_url}/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert response.status_code == 401

    latency, status = refused_after(shop.b, token, reuse)
    _assert_within_bound("refresh-token reuse", latency, status)


def test_session_past_its_age_is_refused_on_every_process(shop: Shop) -> None:
    """A login whose start is moved past SESSION_MAX_AGE_DAYS behind the API (another client) ends."""
    shop.user("old")
    pair = login(shop.a, "old")
    token = bearer(pair["access_token"])
    warm(shop.a, token)
    warm(shop.b, token)
    long_ago = datetime.now(UTC) - timedelta(days=31)

    def age() -> None:
        assert asyncio.run(_edit(shop.db.uri, "sessions", {"username": "old"}, {"$set": {"created_at": long_ago}})) == 1

    latency, status = refused_after(shop.b, token, age)
    _assert_within_bound("session age", latency, status)
    assert httpx.get(f"{shop.a.base_url}/auth/me", headers=token).status_code == 401


def test_a_change_stream_that_dies_leaves_no_revoked_token_working(tmp_path: Path, password_hash: str) -> None:
    """The database is killed and restarted under two API processes that cache a session.

    A revocation written behind the API the moment the database is back (before
    the processes' streams can have reopened), and one made through the API once
    they have, are both refused by the other process within the bound.
    """
    db = EmbeddedMongo(storage_path=tmp_path / "db").start()
    port = db.port
    try:
        asyncio.run(_insert_user(db.uri, "crash", "user", password_hash))
        a, b = _servers(db, tmp_path, secrets.token_urlsafe(48))
        with a, b:
            first, second = login(a, "crash"), login(a, "crash")
            for pair in (first, second):
                warm(b, bearer(pair["access_token"]))
            db.kill()
            time.sleep(1.5)  # both streams fail
            db = EmbeddedMongo(storage_path=tmp_path / "db", port=port).start()
            sid = _sid(first["access_token"])
            now = datetime.now(UTC)
            assert asyncio.run(_edit(db.uri, "sessions", {"_id": sid}, {"$set": {"revoked_at": now}})) == 1
            done = time.monotonic()
            statuses: list[int] = []
            while time.monotonic() - done < 3:
                status = httpx.get(f"{b.base_url}/auth/me", headers=bearer(first["access_token"])).status_code
                statuses.append(status)
                if status == 200:
                    assert time.monotonic() - done < BOUND_S, "revoked token served after the bound"
                time.sleep(0.02)
            assert statuses[-1] == 401, statuses[-5:]
            print(f"\nafter restart: statuses of the token revoked behind the API: {sorted(set(statuses))}")
            # the stream is back: the other session is cached again, and a logout through A ends it on B
            warm(b, bearer(second["access_token"]))
            latency, status = refused_after(
                b,
                bearer(second["access_token"]),
                lambda: httpx.post(f"{a.base_url}/auth/logout", json={"refresh_token": second["refresh_token"]}),
            )
            _assert_within_bound("logout after a database restart", latency, status)
    finally:
        db.stop()


def _sid(access_token: str) -> str:
    import jwt

    return jwt.decode(access_token, options={"verify_signature": False})["sid"]
