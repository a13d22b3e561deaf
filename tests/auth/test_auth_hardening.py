"""Hardening II, through the public API: sign-in budgets and the per-account throttle,
password change, sessions that end for good, case-insensitive usernames, no-store on personal data,
an admin ordering for an unknown user.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI

from backend_app.main import create_app
from config import Settings
from tests.support.auth_helpers import bearer, forge, login, register, register_and_login
from tests.support.helpers import TEST_PASSWORD, assert_problem, create_product
from tests.support.lifespan import lifespan

NEW_PASSWORD = "a brand new passphrase"


def client_for(app: FastAPI, peer: str = "127.0.0.1") -> httpx.AsyncClient:
    """A client whose TCP peer address (as the app sees it) is ``peer``."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(peer, 50000)), base_url="http://testserver")


def wrong(username: str) -> dict[str, str]:
    return {"username": username, "password": "wrong-guess-123"}


# --- Item 1: every /auth/* budget counts the client address; per-account throttle -------------------


@pytest.mark.settings(rate_limit_enabled=True, rate_limit_auth="8/minute", signin_throttle_enabled=False)
async def test_sign_in_budget_counts_the_address_whatever_token_is_sent(app: FastAPI, make_user: Any) -> None:
    await make_user("admin", role="admin")
    tokens = [await make_user("mallory1"), await make_user("mallory2")]
    async with client_for(app, "203.0.113.5") as http:
        statuses = [
            (await http.post("/auth/login", json=wrong("admin"), headers=tokens[n % 2])).status_code for n in range(12)
        ]
    assert statuses == [401] * 8 + [429] * 4


@pytest.mark.settings(rate_limit_enabled=True, rate_limit_auth="3/minute")
async def test_registering_with_tokens_counts_the_address_too(app: FastAPI, make_user: Any) -> None:
    tokens = [await make_user("mallory1"), await make_user("mallory2")]
    async with client_for(app, "203.0.113.6") as http:
        statuses = []
        for n in range(5):
            body = {"username": f"sock_{n}", "email": f"sock{n}@example.com", "password": TEST_PASSWORD}
            statuses.append((await http.post("/auth/register", json=body, headers=tokens[n % 2])).status_code)
    assert statuses == [201, 201, 201, 429, 429]


# The window is wide enough for four bcrypt checks on a loaded machine (seconds each when
# the CPU is shared), so the throttle is still in force when the fourth attempt arrives.
@pytest.mark.settings(signin_failure_limit="3/8second")
async def test_failed_sign_ins_throttle_that_account_from_any_address_until_the_window_passes(
    app: FastAPI, make_user: Any
) -> None:
    await make_user("alice")
    await make_user("bob")
    peers = [client_for(app, f"198.51.100.{n}") for n in range(6)]
    try:
        # Three failures from three addresses, over both sign-in routes and any letter case.
        assert_problem(await peers[0].post("/auth/login", json=wrong("alice")), 401, "invalid_credentials")
        assert_problem(await peers[1].post("/auth/token", data=wrong("alice")), 401, "invalid_credentials")
        assert_problem(await peers[2].post("/auth/login", json=wrong("ALICE")), 401, "invalid_credentials")
        # Now even the right password, from a fourth address, is refused for a while.
        throttled = await peers[3].post("/auth/login", json={"username": "alice", "password": TEST_PASSWORD})
        assert_problem(throttled, 429, "signin_throttled")
        retry_after = int(throttled.headers["Retry-After"])
        assert 1 <= retry_after <= 8
        assert_problem(await peers[3].post("/auth/token", data=wrong("alice")), 429, "signin_throttled")
        # Other accounts are not affected, from the same address either.
        assert (
            await peers[3].post("/auth/login", json={"username": "bob", "password": TEST_PASSWORD})
        ).status_code == 200
        # Once the window has passed, the owner gets in.
        await asyncio.sleep(retry_after + 0.1)
        ok = await peers[4].post("/auth/login", json={"username": "alice", "password": TEST_PASSWORD})
        assert ok.status_code == 200, ok.text
    finally:
        for peer in peers:
            await peer.aclose()


@pytest.mark.settings(signin_failure_limit="3/minute")
async def test_unknown_usernames_get_the_same_answers_as_known_ones(client: httpx.AsyncClient, make_user: Any) -> None:
    await make_user("alice")

    async def attempts(username: str) -> list[tuple[int, str, str | None, str | None]]:
        seen = []
        for _ in range(4):
            response = await client.post("/auth/login", json=wrong(username))
            body = response.json()
            seen.append((response.status_code, body["code"], body["detail"], response.headers.get("WWW-Authenticate")))
        return seen

    known, unknown = await attempts("alice"), await attempts("nobody_here")
    assert known == unknown
    assert [status for status, *_ in known] == [401, 401, 401, 429]
    # An unknown email is throttled the same way.
    emails = [(await client.post("/auth/token", data=wrong("ghost@example.com"))).status_code for _ in range(4)]
    assert emails == [401, 401, 401, 429]


@pytest.mark.settings(signin_failure_limit="3/minute")
async def test_a_throttled_sign_in_costs_no_password_check_for_known_or_unknown_users(
    client: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user("alice")
    for username in ("alice", "nobody_here"):
        for _ in range(3):
            await client.post("/auth/login", json=wrong(username))
    loop = asyncio.get_running_loop()
    timings = {}
    for username in ("alice", "nobody_here"):
        started = loop.time()
        assert_problem(await client.post("/auth/login", json=wrong(username)), 429, "signin_throttled")
        timings[username] = loop.time() - started
    # Both refusals skip bcrypt (~0.25 s at cost 12): neither is measurably slower than the other.
    assert max(timings.values()) < 0.2, timings


# --- Item 4: POST /auth/password ------------------------------------------------------------------


async def test_password_change_ends_every_other_session_and_keeps_the_callers(client: httpx.AsyncClient) -> None:
    this_device = await register_and_login(client, "paula")
    other_device = await login(client, "paula")
    changed = await client.post(
        "/auth/password",
        json={"current_password": TEST_PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(this_device["access_token"]),
    )
    assert changed.status_code == 204, changed.text
    assert changed.content == b""
    assert changed.headers["Cache-Control"] == "no-store"
    # The other session is over: its access and its refresh token.
    assert_problem(await client.get("/auth/me", headers=bearer(other_device["access_token"])), 401, "invalid_token")
    refused = await client.post("/auth/refresh", json={"refresh_token": other_device["refresh_token"]})
    assert_problem(refused, 401, "invalid_token")
    # The calling session stays, and can still refresh.
    assert (await client.get("/auth/me", headers=bearer(this_device["access_token"]))).status_code == 200
    rotated = await client.post("/auth/refresh", json={"refresh_token": this_device["refresh_token"]})
    assert rotated.status_code == 200, rotated.text
    # Only the new password signs in.
    assert_problem(await client.post("/auth/login", json={"username": "paula", "password": TEST_PASSWORD}), 401)
    await login(client, "paula", NEW_PASSWORD)


# Wrong current passwords are counted per session, not per account: tests/auth/test_session_controls.py.


async def test_password_change_validates_its_body_and_needs_a_token(client: httpx.AsyncClient) -> None:
    pair = await register_and_login(client, "rita")
    headers = bearer(pair["access_token"])
    for body in (
        {"current_password": TEST_PASSWORD, "new_password": "short"},
        {"current_password": TEST_PASSWORD, "new_password": "x" * 73},
        {"current_password": TEST_PASSWORD},
        {"current_password": TEST_PASSWORD, "new_password": NEW_PASSWORD, "username": "someone"},
    ):
        assert_problem(await client.post("/auth/password", json=body, headers=headers), 422)
    good = {"current_password": TEST_PASSWORD, "new_password": NEW_PASSWORD}
    assert_problem(await client.post("/auth/password", json=good), 401, "not_authenticated")


async def test_password_change_is_declared_in_openapi(client: httpx.AsyncClient) -> None:
    operation = (await client.get("/openapi.json")).json()["paths"]["/auth/password"]["post"]
    assert {"204", "401", "409", "422", "429"} <= operation["responses"].keys()
    assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/PasswordChange")
    assert operation["security"]


# --- Item 5: sessions that end for good -----------------------------------------------------------


async def test_deactivation_ends_sessions_and_reactivation_does_not_revive_them(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    pair = await register_and_login(client, "sam")
    await client.patch("/users/sam", json={"is_active": False}, headers=admin_headers)
    reactivated = await client.patch("/users/sam", json={"is_active": True}, headers=admin_headers)
    assert reactivated.json()["is_active"] is True
    assert_problem(await client.get("/auth/me", headers=bearer(pair["access_token"])), 401, "invalid_token")
    assert_problem(await client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]}), 401)
    await login(client, "sam")  # a new login works


async def test_a_role_change_ends_the_users_sessions(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    pair = await register_and_login(client, "tess")
    keep = await register_and_login(client, "uma")
    promoted = await client.patch("/users/tess", json={"role": "admin"}, headers=admin_headers)
    assert promoted.status_code == 200
    assert_problem(await client.get("/auth/me", headers=bearer(pair["access_token"])), 401, "invalid_token")
    assert_problem(await client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]}), 401)
    # Setting the role a user already has, or reactivating an active user, ends nothing; nor do other users' changes.
    again = await register_and_login(client, "vera")
    for body in ({"role": "user"}, {"is_active": True}):
        assert (await client.patch("/users/vera", json=body, headers=admin_headers)).status_code == 200
    assert (await client.get("/auth/me", headers=bearer(again["access_token"]))).status_code == 200
    assert (await client.get("/auth/me", headers=bearer(keep["access_token"]))).status_code == 200


async def test_a_session_of_another_subject_is_refused(
    client: httpx.AsyncClient, alice: dict[str, str], bob: dict[str, str], settings: Settings
) -> None:
    # A token naming bob but carrying alice's live session id (e.g. minted with a leaked key).
    crossed = forge(settings, {"sub": "bob"}, of=alice)
    assert_problem(await client.get("/auth/me", headers=bearer(crossed)), 401, "invalid_token")
    assert (await client.get("/auth/me", headers=alice)).status_code == 200


@pytest.mark.settings(session_max_age_days=2 / 86400)  # two seconds
async def test_a_refresh_chain_ends_at_the_session_max_age(client: httpx.AsyncClient) -> None:
    pair = await register_and_login(client, "walt")
    pair = (await client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})).json()
    assert "refresh_token" in pair
    await asyncio.sleep(2.2)
    assert_problem(await client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]}), 401)
    assert_problem(await client.get("/auth/me", headers=bearer(pair["access_token"])), 401, "invalid_token")
    await login(client, "walt")  # a new login starts a new chain


# --- Item 6: smaller items ------------------------------------------------------------------------


async def test_usernames_are_unique_regardless_of_case(client: httpx.AsyncClient) -> None:
    assert (await register(client, "admin")).status_code == 201
    for variant in ("Admin", "ADMIN", "aDmIn"):
        body = assert_problem(await register(client, variant, email=f"{variant}1@example.com"), 409, "user_exists")
        assert body["field"] == "username"
    assert (await register(client, "admin2")).status_code == 201


async def test_users_stored_before_the_case_folded_key_are_backfilled_at_start_up(
    settings: Settings, mongo: Any
) -> None:
    # A user written by an older version: no username_key.
    await mongo["users"].insert_one(
        {"username": "Legacy", "email": "legacy@example.com", "password_hash": "x", "role": "user", "is_active": True}
    )
    restarted = create_app(settings)
    async with lifespan(restarted), client_for(restarted) as http:
        assert_problem(await register(http, "legacy", email="other@example.com"), 409, "user_exists")
    doc = await mongo["users"].find_one({"username": "Legacy"})
    assert doc["username_key"] == "legacy"


async def test_personal_data_is_never_cached(
    client: httpx.AsyncClient, alice: dict[str, str], admin_headers: dict[str, str]
) -> None:
    personal = [
        ("/orders", alice),
        ("/orders/alice", alice),
        ("/orders/bob", alice),  # 403: still personal
        ("/users", admin_headers),
        ("/dashboard/summary", admin_headers),
        ("/audit", admin_headers),
        ("/auth/me", alice),
    ]
    for path, headers in personal:
        response = await client.get(path, headers=headers)
        assert response.headers.get("Cache-Control") == "no-store", (path, response.status_code)
    catalog = await client.get("/products", headers=alice)
    assert "no-store" not in catalog.headers.get("Cache-Control", "")


async def test_an_admin_ordering_for_an_unknown_user_gets_404(
    client: httpx.AsyncClient, admin_headers: dict[str, str], alice: dict[str, str]
) -> None:
    product = await create_product(client, admin_headers)
    items = [{"productId": product, "qty": 1}]
    body = assert_problem(
        await client.post("/orders", json={"userId": "ghost_user", "items": items}, headers=admin_headers),
        404,
        "user_not_found",
    )
    assert body["username"] == "ghost_user"
    placed = await client.post("/orders", json={"userId": "alice", "items": items}, headers=admin_headers)
    assert placed.status_code == 201, placed.text
    stock = (await client.get(f"/products/{product}")).json()["stock"]
    assert stock == 9  # the refused order took nothing


async def test_failed_sign_ins_are_counted_in_redis_across_processes(
    settings: Settings, redis_url: str, make_user: Any
) -> None:
    """Two app instances (as two workers or hosts) sharing RATE_LIMIT_STORAGE_URI share the account throttle."""
    await make_user("alice")
    shared = settings.model_copy(update={"rate_limit_storage_uri": redis_url, "signin_failure_limit": "3/minute"})
    first, second = create_app(shared), create_app(shared)
    async with (
        lifespan(first),
        lifespan(second),
        client_for(first, "192.0.2.1") as one,
        client_for(second, "192.0.2.2") as two,
    ):
        statuses = [(await http.post("/auth/login", json=wrong("alice"))).status_code for http in (one, two, one)]
        assert statuses == [401, 401, 401]
        assert_problem(await two.post("/auth/login", json=wrong("alice")), 429, "signin_throttled")
    assert redis.Redis.from_url(redis_url).keys("*signin-failures*"), "the counts are not in Redis"
