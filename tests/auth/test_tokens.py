"""Bearer-token attacks and RFC 6750 challenges: every bad token is a 401 with ``error="invalid_token"`` (docs/contract.md §3)."""

from __future__ import annotations

import base64
import json
import time

import httpx
import jwt
import pytest

from backend_app.core.security import create_token
from config import Settings
from tests.support.auth_helpers import bearer, forge
from tests.support.helpers import assert_problem

pytestmark = pytest.mark.asyncio


def assert_invalid_token(response: httpx.Response) -> None:
    assert_problem(response, 401, "invalid_token")
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="invalid_token"' in challenge


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_a_valid_token_is_accepted(client: httpx.AsyncClient, alice: dict[str, str], settings: Settings) -> None:
    """The control for every attack below: the same claims, correctly signed, work."""
    assert (await client.get("/auth/me", headers=alice)).status_code == 200
    assert (await client.get("/auth/me", headers=bearer(forge(settings, {}, of=alice)))).status_code == 200


async def test_a_token_of_an_unrecorded_login_is_refused(
    client: httpx.AsyncClient, alice: dict[str, str], settings: Settings
) -> None:
    """Correctly signed, but its ``sid`` names no login (never issued, or expired and deleted): 401."""
    assert_invalid_token(await client.get("/auth/me", headers=bearer(forge(settings, {}))))


async def test_no_token_is_401_without_error_code(client: httpx.AsyncClient) -> None:
    response = await client.get("/auth/me")
    assert_problem(response, 401, "not_authenticated")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "error=" not in response.headers["www-authenticate"]  # RFC 6750 §3.1: no error without a token


@pytest.mark.parametrize("scheme", ["Basic", "Token", ""])
async def test_other_authorization_schemes_count_as_no_token(client: httpx.AsyncClient, scheme: str) -> None:
    response = await client.get("/auth/me", headers={"Authorization": f"{scheme} abc".strip()})
    assert_problem(response, 401, "not_authenticated")


async def test_tampered_payload(client: httpx.AsyncClient, alice: dict[str, str], settings: Settings) -> None:
    header, payload, signature = alice["Authorization"].removeprefix("Bearer ").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "root_admin"
    claims["role"] = "admin"
    tampered = f"{header}.{b64(claims)}.{signature}"
    assert_invalid_token(await client.get("/auth/me", headers=bearer(tampered)))


async def test_tampered_signature(client: httpx.AsyncClient, alice: dict[str, str]) -> None:
    token = alice["Authorization"].removeprefix("Bearer ")
    flipped = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert_invalid_token(await client.get("/auth/me", headers=bearer(flipped)))


async def test_token_signed_with_another_key(
    client: httpx.AsyncClient, alice: dict[str, str], settings: Settings
) -> None:
    token = forge(settings, {}, of=alice, key="another-secret-of-sufficient-length-0123456789")
    assert_invalid_token(await client.get("/auth/me", headers=bearer(token)))


async def test_expired_token(client: httpx.AsyncClient, alice: dict[str, str], settings: Settings) -> None:
    now = int(time.time())
    token = forge(settings, {"iat": now - 3600, "exp": now - 60}, of=alice)
    assert_invalid_token(await client.get("/auth/me", headers=bearer(token)))


async def test_alg_none(client: httpx.AsyncClient, alice: dict[str, str], settings: Settings) -> None:
    now = int(time.time())
    claims = {
        "sub": "alice",
        "role": "admin",
        "type": "access",
        "jti": "x",
        "sid": "y",
        "iat": now,
        "exp": now + 600,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
    }
    for alg in ("none", "None", "NONE"):
        token = f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(claims)}."
        assert_invalid_token(await client.get("/auth/me", headers=bearer(token)))
    assert_invalid_token(await client.get("/auth/me", headers=bearer(jwt.encode(claims, None, algorithm="none"))))


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_other_hmac_algorithm_is_refused(
    client: httpx.AsyncClient, alice: dict[str, str], settings: Settings
) -> None:
    token = forge(settings, {}, of=alice, algorithm="HS512")
    assert_invalid_token(await client.get("/auth/me", headers=bearer(token)))


async def test_refresh_token_is_not_an_access_token(
    client: httpx.AsyncClient, alice: dict[str, str], settings: Settings
) -> None:
    refresh, _ = create_token(settings, subject="alice", role="user", token_type="refresh")
    assert_invalid_token(await client.get("/auth/me", headers=bearer(refresh)))
    assert_invalid_token(await client.get("/auth/me", headers=bearer(forge(settings, {"type": "refresh"}, of=alice))))


async def test_access_token_is_not_a_refresh_token(
    client: httpx.AsyncClient, alice: dict[str, str], settings: Settings
) -> None:
    access = alice["Authorization"].removeprefix("Bearer ")
    response = await client.post("/auth/refresh", json={"refresh_token": access})
    assert_invalid_token(response)


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "another-api"},
        {"iss": "someone-else"},
        {"aud": None},
        {"iss": None},
        {"exp": None},
        {"type": None},
        {"jti": None},
        {"sub": None},
        {"type": "id"},
    ],
    ids=["wrong-aud", "wrong-iss", "no-aud", "no-iss", "no-exp", "no-type", "no-jti", "no-sub", "odd-type"],
)
async def test_wrong_or_missing_claims(
    client: httpx.AsyncClient, alice: dict[str, str], settings: Settings, claims: dict[str, object]
) -> None:
    assert_invalid_token(await client.get("/auth/me", headers=bearer(forge(settings, claims, of=alice))))


async def test_token_of_unknown_user(client: httpx.AsyncClient, alice: dict[str, str], settings: Settings) -> None:
    assert_invalid_token(await client.get("/auth/me", headers=bearer(forge(settings, {"sub": "ghost"}, of=alice))))


async def test_role_claim_is_not_trusted(client: httpx.AsyncClient, alice: dict[str, str], settings: Settings) -> None:
    """A token that says ``admin`` for a user who is not one still gets 403: the role is read from the database."""
    token = forge(settings, {"sub": "alice", "role": "admin"}, of=alice)
    response = await client.get("/users", headers=bearer(token))
    assert_problem(response, 403, "forbidden")


@pytest.mark.parametrize("value", ["Bearer", "Bearer ", "Bearer a.b", "Bearer a.b.c.d", "Bearer ünïcode"])
async def test_malformed_bearer_values(client: httpx.AsyncClient, value: str) -> None:
    response = await client.get("/auth/me", headers={"Authorization": value.encode()})
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
