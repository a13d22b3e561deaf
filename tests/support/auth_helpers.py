"""Helpers for the auth tests: register and log in through the public API, forge tokens."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import jwt

from config import Settings
from tests.support.helpers import TEST_PASSWORD


async def register(
    client: httpx.AsyncClient, username: str, *, email: str | None = None, password: str = TEST_PASSWORD, **extra: Any
) -> httpx.Response:
    """``POST /auth/register`` with a valid body (plus ``extra`` keys)."""
    body: dict[str, Any] = {"username": username, "email": email or f"{username}@example.com", "password": password}
    body.update(extra)
    return await client.post("/auth/register", json=body)


async def login(client: httpx.AsyncClient, username: str, password: str = TEST_PASSWORD) -> dict[str, Any]:
    """``POST /auth/login`` that must succeed; returns the token pair."""
    response = await client.post("/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return response.json()


async def register_and_login(client: httpx.AsyncClient, username: str) -> dict[str, Any]:
    """Register ``username`` and log in; returns the token pair."""
    response = await register(client, username)
    assert response.status_code == 201, response.text
    return await login(client, username)


def bearer(token: str) -> dict[str, str]:
    """``Authorization: Bearer <token>`` headers."""
    return {"Authorization": f"Bearer {token}"}


def session_id(headers: dict[str, str]) -> str:
    """The ``sid`` (login session) of the bearer token in ``headers``, read without verification."""
    token = headers["Authorization"].removeprefix("Bearer ")
    return str(jwt.decode(token, options={"verify_signature": False})["sid"])


def forge(
    settings: Settings,
    claims: dict[str, Any],
    *,
    of: dict[str, str] | None = None,
    key: str | None = None,
    algorithm: str = "HS256",
) -> str:
    """Sign arbitrary ``claims`` over the defaults of an access token of ``alice``, for attack tests.

    ``of``: bearer headers of a live login whose ``sid`` the token reuses, so that
    the attack under test is the token's only defect; without it the ``sid`` is
    random and names no login.
    """
    now = int(time.time())
    payload: dict[str, Any] = {
        "sub": "alice",
        "role": "user",
        "type": "access",
        "jti": uuid.uuid4().hex,
        "sid": session_id(of) if of is not None else uuid.uuid4().hex,
        "iat": now,
        "exp": now + 600,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
    }
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, key or settings.signing_key, algorithm=algorithm)
