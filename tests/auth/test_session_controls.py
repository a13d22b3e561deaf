"""A user's control over their own sessions: password changes nobody else can block, at most one of two
concurrent changes wins, and ending every other session on demand (docs/contract.md §3).
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI

from tests.support.auth_helpers import bearer, login, register_and_login
from tests.support.helpers import TEST_PASSWORD, assert_problem


def _peer(app: FastAPI, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def change(current: str, new: str) -> dict[str, str]:
    return {"current_password": current, "new_password": new}


@pytest.mark.settings(signin_failure_limit="10/15minutes")
async def test_failed_sign_ins_by_someone_else_do_not_block_a_password_change(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    erin = await register_and_login(client, "erin")
    async with _peer(app, "203.0.113.66") as attacker:
        attackers_session = await login(attacker, "erin")  # the attacker knows the password
        for _ in range(10):
            await attacker.post("/auth/login", json={"username": "erin", "password": "wrong-guess-123"})
        assert_problem(
            await attacker.post("/auth/login", json={"username": "erin", "password": TEST_PASSWORD}),
            429,
            "signin_throttled",
        )
    changed = await client.post(
        "/auth/password", json=change(TEST_PASSWORD, "erin's new passphrase"), headers=bearer(erin["access_token"])
    )
    assert changed.status_code == 204, changed.text
    # The change ended the attacker's session.
    assert (await client.get("/auth/me", headers=bearer(attackers_session["access_token"]))).status_code == 401


@pytest.mark.settings(signin_failure_limit="3/15minutes")
async def test_wrong_current_passwords_are_counted_per_session(client: httpx.AsyncClient) -> None:
    first = await register_and_login(client, "paula")
    second = await login(client, "paula")
    for _ in range(3):
        assert_problem(
            await client.post(
                "/auth/password", json=change("not my password", "x" * 12), headers=bearer(first["access_token"])
            ),
            401,
            "invalid_credentials",
        )
    # That session may not guess any more, even with the right password...
    throttled = await client.post(
        "/auth/password", json=change(TEST_PASSWORD, "a new passphrase"), headers=bearer(first["access_token"])
    )
    assert_problem(throttled, 429, "password_change_throttled")
    assert int(throttled.headers["Retry-After"]) >= 1
    # ...while the account's sign-ins and its other sessions are not affected.
    assert (await client.post("/auth/login", json={"username": "paula", "password": TEST_PASSWORD})).status_code == 200
    ok = await client.post(
        "/auth/password", json=change(TEST_PASSWORD, "a new passphrase"), headers=bearer(second["access_token"])
    )
    assert ok.status_code == 204, ok.text


async def test_of_two_concurrent_password_changes_one_wins_and_the_other_is_a_conflict(
    client: httpx.AsyncClient,
) -> None:
    tokens = await register_and_login(client, "quinn")
    headers = bearer(tokens["access_token"])
    new_passwords = ["first new passphrase", "second new passphrase"]
    responses = await asyncio.gather(
        *(client.post("/auth/password", json=change(TEST_PASSWORD, new), headers=headers) for new in new_passwords)
    )
    statuses = [response.status_code for response in responses]
    assert sorted(statuses) == [204, 409], [r.text for r in responses]
    loser = responses[statuses.index(409)]
    assert_problem(loser, 409, "password_changed_concurrently")
    winner = new_passwords[statuses.index(204)]
    # Only the winner's password works, the other one never does.
    works = {
        new: (await client.post("/auth/login", json={"username": "quinn", "password": new})).status_code
        for new in new_passwords
    }
    assert works == {new: 200 if new == winner else 401 for new in new_passwords}


async def test_a_user_can_end_every_other_session_of_theirs(client: httpx.AsyncClient) -> None:
    this_device = await register_and_login(client, "rita")
    others = [await login(client, "rita") for _ in range(2)]
    bystander = await register_and_login(client, "sam")
    ended = await client.post("/auth/sessions/revoke-others", headers=bearer(this_device["access_token"]))
    assert ended.status_code == 200, ended.text
    assert ended.json() == {"revoked": 2}
    assert ended.headers["Cache-Control"] == "no-store"
    for other in others:
        assert (await client.get("/auth/me", headers=bearer(other["access_token"]))).status_code == 401
        refreshed = await client.post("/auth/refresh", json={"refresh_token": other["refresh_token"]})
        assert_problem(refreshed, 401, "invalid_token")
    # The calling session, and other users' sessions, go on.
    assert (await client.get("/auth/me", headers=bearer(this_device["access_token"]))).status_code == 200
    assert (await client.post("/auth/refresh", json={"refresh_token": this_device["refresh_token"]})).status_code == 200
    assert (await client.get("/auth/me", headers=bearer(bystander["access_token"]))).status_code == 200
    # Nothing left to end.
    again = await client.post("/auth/sessions/revoke-others", headers=bearer(this_device["access_token"]))
    assert again.json() == {"revoked": 0}
    # Anonymous callers cannot.
    assert_problem(await client.post("/auth/sessions/revoke-others"), 401)
