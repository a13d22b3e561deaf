"""Admin user management: ``GET /users`` (filters, offset pages) and ``PATCH /users/{username}`` (docs/contract.md §3)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.auth_helpers import bearer, login, register_and_login
from tests.support.helpers import TEST_PASSWORD, assert_problem

pytestmark = pytest.mark.asyncio


async def test_list_users_pages_in_id_order_without_hashes(
    client: httpx.AsyncClient, admin_headers: dict[str, str], make_user: Any
) -> None:
    for name in ("user_a", "user_b", "user_c", "user_d"):
        await make_user(name)
    first = await client.get("/users", params={"limit": 2}, headers=admin_headers)
    assert first.status_code == 200, first.text
    assert first.headers["cache-control"] == "no-store"
    body = first.json()
    assert [u["username"] for u in body["data"]] == ["root_admin", "user_a"]
    assert {"next": "2", "limit": 2, "previous": None}.items() <= body["page"].items()
    for user in body["data"]:
        assert set(user) == {"username", "email", "full_name", "role", "is_active", "created_at"}
    last = (await client.get("/users", params={"limit": 2, "offset": 4}, headers=admin_headers)).json()
    assert [u["username"] for u in last["data"]] == ["user_d"]
    assert {"next": None, "limit": 1, "previous": 2}.items() <= last["page"].items()
    assert "$2b$" not in first.text + str(last)


async def test_list_users_walks_by_cursor_both_ways(
    client: httpx.AsyncClient, admin_headers: dict[str, str], make_user: Any
) -> None:
    """docs/contract.md §2 on GET /users: each user exactly once forward, the same pages backward; cursors bound to filters."""
    for i in range(7):
        await make_user(f"walker_{i}")
    params: dict[str, Any] = {"limit": 3, "username": "walker_"}
    pages: list[dict[str, Any]] = [(await client.get("/users", params=params, headers=admin_headers)).json()]
    while pages[-1]["page"]["next_cursor"]:
        cursor = pages[-1]["page"]["next_cursor"]
        response = await client.get("/users", params={**params, "cursor": cursor}, headers=admin_headers)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        assert pages[-1]["page"]["next"] is None and pages[-1]["page"]["previous"] is None
    seen = [u["username"] for page in pages for u in page["data"]]
    assert seen == [f"walker_{i}" for i in range(7)]
    back = await client.get(
        "/users", params={**params, "cursor": pages[-1]["page"]["prev_cursor"]}, headers=admin_headers
    )
    assert [u["username"] for u in back.json()["data"]] == [u["username"] for u in pages[-2]["data"]]
    foreign = await client.get(
        "/users", params={"limit": 3, "cursor": pages[0]["page"]["next_cursor"]}, headers=admin_headers
    )
    assert_problem(foreign, 400, "invalid_cursor")


async def test_list_users_filters(client: httpx.AsyncClient, admin_headers: dict[str, str], make_user: Any) -> None:
    for name in ("anna", "annabel", "ben", "an.x"):
        await make_user(name)

    async def names(**params: str) -> list[str]:
        response = await client.get("/users", params=params, headers=admin_headers)
        assert response.status_code == 200, response.text
        return [u["username"] for u in response.json()["data"]]

    assert await names(username="anna") == ["anna", "annabel"]
    assert await names(username="annab") == ["annabel"]
    assert await names(username="an.") == ["an.x"]  # literal, not a regex
    assert await names(username=".*") == []
    assert await names(email="BEN@") == ["ben"]  # emails compare lower-case
    assert await names(username="anna", email="annabel@") == ["annabel"]
    assert_problem(await client.get("/users", params={"limit": 0}, headers=admin_headers), 422)


async def test_patch_role_and_active(client: httpx.AsyncClient, admin_headers: dict[str, str], make_user: Any) -> None:
    carl = await make_user("carl")
    assert_problem(await client.get("/users", headers=carl), 403, "forbidden")

    promoted = await client.patch("/users/carl", json={"role": "admin"}, headers=admin_headers)
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["role"] == "admin"
    assert "password_hash" not in promoted.json()
    # A role change ends the user's sessions; a new login has the new role.
    assert_problem(await client.get("/users", headers=carl), 401, "invalid_token")
    carl = bearer((await login(client, "carl", TEST_PASSWORD))["access_token"])
    assert (await client.get("/users", headers=carl)).status_code == 200

    demoted = await client.patch("/users/carl", json={"role": "user"}, headers=admin_headers)
    assert demoted.json()["role"] == "user"
    assert_problem(await client.get("/users", headers=carl), 401, "invalid_token")
    carl = bearer((await login(client, "carl", TEST_PASSWORD))["access_token"])
    assert_problem(await client.get("/users", headers=carl), 403, "forbidden")

    off = await client.patch("/users/carl", json={"is_active": False}, headers=admin_headers)
    assert off.json()["is_active"] is False
    assert_problem(await client.get("/auth/me", headers=carl), 401, "invalid_token")


async def test_patch_refuses_unknown_fields_and_users(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    await register_and_login(client, "dora")
    for body in ({"username": "x"}, {"email": "x@example.com"}, {"password": "p" * 10}, {"role": "owner"}):
        assert_problem(await client.patch("/users/dora", json=body, headers=admin_headers), 422)
    assert_problem(await client.patch("/users/nobody", json={"role": "admin"}, headers=admin_headers), 404)
    assert_problem(await client.patch("/users/a b", json={"role": "admin"}, headers=admin_headers), 422)


async def test_admin_cannot_lock_themselves_out(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    for body in ({"role": "user"}, {"is_active": False}):
        assert_problem(await client.patch("/users/root_admin", json=body, headers=admin_headers), 409, "self_lockout")
    assert (await client.get("/users", headers=admin_headers)).status_code == 200
    unchanged = await client.patch(
        "/users/root_admin", json={"role": "admin", "is_active": True}, headers=admin_headers
    )
    assert unchanged.status_code == 200


async def test_registered_user_is_managed_by_admin(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    await register_and_login(client, "eve")
    await client.patch("/users/eve", json={"role": "admin"}, headers=admin_headers)
    pair = await login(client, "eve")  # the role change ended the earlier session
    listed = await client.get("/users", params={"username": "eve"}, headers=bearer(pair["access_token"]))
    assert listed.status_code == 200
    assert listed.json()["data"][0]["role"] == "admin"
