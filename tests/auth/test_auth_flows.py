"""Accounts and tokens through the public API: register, login, OAuth2 token, refresh, logout, me (docs/contract.md §3)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from backend_app.core.security import _hash_sync, _verify_sync
from tests.support.auth_helpers import bearer, login, register, register_and_login
from tests.support.helpers import TEST_PASSWORD, assert_problem

pytestmark = pytest.mark.asyncio

FORBIDDEN_KEYS = {"password", "password_hash", "hash", "hashed_password"}


def assert_no_secret(value: object) -> None:
    """No password or hash, at any depth of a JSON value."""
    if isinstance(value, dict):
        assert not FORBIDDEN_KEYS & value.keys(), value
        for item in value.values():
            assert_no_secret(item)
    elif isinstance(value, list):
        for item in value:
            assert_no_secret(item)
    elif isinstance(value, str):
        assert not value.startswith("$2b$"), "a bcrypt hash leaked"


def assert_token_pair(response: httpx.Response, expires_in: int = 900) -> dict[str, object]:
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == expires_in
    assert body["access_token"] != body["refresh_token"]
    return body


async def test_register_returns_the_user_without_password(client: httpx.AsyncClient) -> None:
    response = await register(client, "carol", email="Carol@Example.COM", full_name="Carol C")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["username"] == "carol"
    assert body["email"] == "carol@example.com"  # stored lower-case
    assert body["role"] == "user"
    assert body["is_active"] is True
    assert body["full_name"] == "Carol C"
    assert "created_at" in body
    assert_no_secret(body)
    assert TEST_PASSWORD not in response.text


async def test_register_refuses_mass_assignment_of_role(client: httpx.AsyncClient) -> None:
    response = await register(client, "mallory", role="admin")
    body = assert_problem(response, 422, "validation_error")
    assert any(err["loc"][-1] == "role" for err in body["errors"])
    # ...and nothing was stored: the name is still free, and it is an ordinary user.
    created = await register(client, "mallory")
    assert created.status_code == 201
    assert created.json()["role"] == "user"


@pytest.mark.parametrize("extra", [{"is_active": False}, {"password_hash": "$2b$12$x"}, {"created_at": "2020-01-01"}])
async def test_register_refuses_other_unknown_fields(client: httpx.AsyncClient, extra: dict[str, object]) -> None:
    assert_problem(await register(client, "mallory", **extra), 422, "validation_error")


async def test_duplicate_username_or_email_is_409(client: httpx.AsyncClient) -> None:
    assert (await register(client, "dave")).status_code == 201
    same_name = await register(client, "dave", email="other@example.com")
    assert assert_problem(same_name, 409, "user_exists")["field"] == "username"
    same_email = await register(client, "dave2", email="DAVE@example.com")
    assert assert_problem(same_email, 409, "user_exists")["field"] == "email"


async def test_concurrent_registrations_of_one_name_create_one_user(client: httpx.AsyncClient) -> None:
    responses = await asyncio.gather(*(register(client, "erin", email=f"erin{i}@example.com") for i in range(4)))
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409]


@pytest.mark.parametrize(
    ("password", "status"),
    [
        ("x" * 75, 422),  # the example: 75 bytes
        ("x" * 73, 422),
        ("€" * 25, 422),  # 25 characters, 75 UTF-8 bytes
        ("short77", 422),  # 7 bytes
        ("x" * 72, 201),
        ("€" * 24, 201),  # 72 bytes
        ("12345678", 201),
    ],
)
async def test_password_is_8_to_72_utf8_bytes(client: httpx.AsyncClient, password: str, status: int) -> None:
    response = await register(client, "frank", password=password)
    if status == 422:
        body = assert_problem(response, 422, "validation_error")
        assert body["errors"][0]["loc"][-1] == "password"
        return
    assert response.status_code == 201, response.text
    assert_token_pair(await client.post("/auth/login", json={"username": "frank", "password": password}))


async def test_username_pattern_is_enforced(client: httpx.AsyncClient) -> None:
    for bad in ("ab", "has space", "-leading", "a" * 33, "x@y"):
        assert_problem(await register(client, bad, email="x@example.com"), 422)


async def test_login_by_username_or_email_and_me(client: httpx.AsyncClient) -> None:
    assert (await register(client, "grace")).status_code == 201
    by_name = assert_token_pair(await client.post("/auth/login", json={"username": "grace", "password": TEST_PASSWORD}))
    by_email = assert_token_pair(
        await client.post("/auth/login", json={"email": "GRACE@example.com", "password": TEST_PASSWORD})
    )
    for pair in (by_name, by_email):
        me = await client.get("/auth/me", headers=bearer(str(pair["access_token"])))
        assert me.status_code == 200, me.text
        assert me.json()["username"] == "grace"
        assert me.headers["cache-control"] == "no-store"
        assert_no_secret(me.json())


@pytest.mark.parametrize(
    "body",
    [
        {"password": TEST_PASSWORD},
        {"username": "grace", "email": "grace@example.com", "password": TEST_PASSWORD},
        {"username": "grace"},
        {"username": "grace", "password": TEST_PASSWORD, "role": "admin"},
        {"username": "grace", "password": "x" * 75},
    ],
)
async def test_login_body_is_validated(client: httpx.AsyncClient, body: dict[str, str]) -> None:
    assert_problem(await client.post("/auth/login", json=body), 422, "validation_error")


async def test_oauth2_password_form(client: httpx.AsyncClient) -> None:
    assert (await register(client, "heidi")).status_code == 201
    form = {"grant_type": "password", "username": "heidi", "password": TEST_PASSWORD}
    pair = assert_token_pair(await client.post("/auth/token", data=form))
    me = await client.get("/auth/me", headers=bearer(str(pair["access_token"])))
    assert me.json()["username"] == "heidi"
    by_email = await client.post("/auth/token", data={"username": "heidi@example.com", "password": TEST_PASSWORD})
    assert_token_pair(by_email)
    wrong = await client.post("/auth/token", data={"username": "heidi", "password": "wrong-password"})
    assert_problem(wrong, 401, "invalid_credentials")
    too_long = await client.post("/auth/token", data={"username": "heidi", "password": "x" * 75})
    assert_problem(too_long, 422)
    missing = await client.post("/auth/token", data={"username": "heidi"})
    assert_problem(missing, 422)


async def test_unknown_user_and_wrong_password_are_the_same_401(client: httpx.AsyncClient) -> None:
    assert (await register(client, "ivan")).status_code == 201
    wrong = await client.post("/auth/login", json={"username": "ivan", "password": "not-the-password"})
    unknown = await client.post("/auth/login", json={"username": "nobody_here", "password": "not-the-password"})
    unknown_email = await client.post("/auth/login", json={"email": "no@example.com", "password": "not-the-password"})
    bodies = [assert_problem(r, 401, "invalid_credentials") for r in (wrong, unknown, unknown_email)]
    assert all(r.headers["www-authenticate"].startswith("Bearer") for r in (wrong, unknown, unknown_email))
    for body in bodies:
        body.pop("instance", None)
    assert bodies[0] == bodies[1] == bodies[2]


async def test_unknown_user_costs_a_bcrypt_check_like_a_wrong_password(client: httpx.AsyncClient) -> None:
    """Timing: an unknown user is checked against a dummy hash, so it is not answered much faster."""
    assert (await register(client, "judy")).status_code == 201

    async def timed(body: dict[str, str]) -> float:
        start = time.perf_counter()
        response = await client.post("/auth/login", json=body)
        assert response.status_code == 401
        return time.perf_counter() - start

    wrong_body = {"username": "judy", "password": "not-the-password"}
    unknown_body = {"username": "nobody_at_all", "password": "not-the-password"}
    await timed(unknown_body)  # warms the dummy hash up
    # Interleaved, so a busy machine slows both kinds alike; the fastest of each is compared.
    samples = [(await timed(wrong_body), await timed(unknown_body)) for _ in range(4)]
    wrong = min(w for w, _ in samples)
    unknown = min(u for _, u in samples)
    # One bcrypt check (cost 12) takes ~0.25 s; a skipped check would make `unknown` ~100x
    # faster, a second check twice as slow; a factor of 3 either way is noise.
    assert unknown > wrong / 3, (unknown, wrong)
    assert wrong > unknown / 3, (unknown, wrong)


async def test_deactivated_user_cannot_log_in_and_tokens_stop_at_once(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    pair = await register_and_login(client, "karl")
    access = bearer(str(pair["access_token"]))
    assert (await client.get("/auth/me", headers=access)).status_code == 200
    patch = await client.patch("/users/karl", json={"is_active": False}, headers=admin_headers)
    assert patch.status_code == 200, patch.text
    assert_problem(await client.get("/auth/me", headers=access), 401, "invalid_token")
    refresh = await client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert_problem(refresh, 401, "invalid_token")
    relogin = await client.post("/auth/login", json={"username": "karl", "password": TEST_PASSWORD})
    assert_problem(relogin, 401, "invalid_credentials")
    # Re-activated: the same credentials work again.
    await client.patch("/users/karl", json={"is_active": True}, headers=admin_headers)
    await login(client, "karl")


async def test_refresh_rotates_and_reuse_revokes_the_whole_login(client: httpx.AsyncClient) -> None:
    first = await register_and_login(client, "liam")
    rotated = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    second = assert_token_pair(rotated)
    assert second["refresh_token"] != first["refresh_token"]
    assert (await client.get("/auth/me", headers=bearer(str(second["access_token"])))).status_code == 200
    third = assert_token_pair(await client.post("/auth/refresh", json={"refresh_token": second["refresh_token"]}))

    # Replaying the first (revoked) refresh token: 401, and every token of that login dies.
    replay = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert "already used" in assert_problem(replay, 401, "invalid_token")["detail"]
    assert 'error="invalid_token"' in replay.headers["www-authenticate"]
    for pair in (first, second, third):
        assert_problem(await client.get("/auth/me", headers=bearer(str(pair["access_token"]))), 401, "invalid_token")
    latest = await client.post("/auth/refresh", json={"refresh_token": third["refresh_token"]})
    assert_problem(latest, 401, "invalid_token")


async def test_reuse_revokes_only_that_login(client: httpx.AsyncClient) -> None:
    laptop = await register_and_login(client, "mia")
    phone = await login(client, "mia")
    assert_token_pair(await client.post("/auth/refresh", json={"refresh_token": laptop["refresh_token"]}))
    await client.post("/auth/refresh", json={"refresh_token": laptop["refresh_token"]})  # reuse
    assert (await client.get("/auth/me", headers=bearer(str(phone["access_token"])))).status_code == 200
    assert_token_pair(await client.post("/auth/refresh", json={"refresh_token": phone["refresh_token"]}))


async def test_concurrent_refresh_with_one_token_yields_at_most_one_pair(client: httpx.AsyncClient) -> None:
    pair = await register_and_login(client, "nina")
    responses = await asyncio.gather(
        *(client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]}) for _ in range(5))
    )
    assert sum(r.status_code == 200 for r in responses) <= 1
    assert all(r.status_code in (200, 401) for r in responses)


async def test_logout_revokes_refresh_and_access_tokens(client: httpx.AsyncClient) -> None:
    pair = await register_and_login(client, "oscar")
    other = await login(client, "oscar")
    response = await client.post("/auth/logout", json={"refresh_token": pair["refresh_token"]})
    assert response.status_code == 204
    assert response.content == b""
    assert_problem(await client.get("/auth/me", headers=bearer(str(pair["access_token"]))), 401, "invalid_token")
    after = await client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert_problem(after, 401, "invalid_token")
    again = await client.post("/auth/logout", json={"refresh_token": pair["refresh_token"]})
    assert again.status_code == 204  # idempotent
    # The other login of the same user is untouched.
    assert (await client.get("/auth/me", headers=bearer(str(other["access_token"])))).status_code == 200


async def test_logout_and_refresh_refuse_bad_tokens(client: httpx.AsyncClient) -> None:
    pair = await register_and_login(client, "pat")
    for token in ("not-a-jwt", pair["access_token"], str(pair["refresh_token"])[:-3] + "abc"):
        assert_problem(await client.post("/auth/logout", json={"refresh_token": token}), 401, "invalid_token")
        assert_problem(await client.post("/auth/refresh", json={"refresh_token": token}), 401, "invalid_token")
    assert_problem(await client.post("/auth/refresh", json={}), 422)


async def test_bcrypt_does_not_block_the_event_loop(client: httpx.AsyncClient) -> None:
    """While logins check passwords, the event loop keeps running: no stall as long as one bcrypt check.

    A ticker measures the longest gap between its 5 ms sleeps while three logins
    run; with bcrypt on the loop, that gap would be at least one whole check.
    The latency figures under load come from ``benchmarks/login_load.py``.
    """
    assert (await register(client, "quinn")).status_code == 201
    production_hash = _hash_sync(TEST_PASSWORD)  # registration hashes at the production cost, as quinn's was
    start = time.perf_counter()
    _verify_sync("not-the-password", production_hash)  # one check on this machine, now
    one_check = time.perf_counter() - start

    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    body = {"username": "quinn", "password": TEST_PASSWORD}
    responses = await asyncio.gather(*(client.post("/auth/login", json=body) for _ in range(3)))
    done.set()
    await ticking
    assert all(r.status_code == 200 for r in responses)
    assert len(gaps) > 10
    assert max(gaps) < one_check / 2, f"the loop stalled {max(gaps):.3f} s; one bcrypt check takes {one_check:.3f} s"
