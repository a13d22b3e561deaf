"""Contract fuzzing: every operation of the published OpenAPI document keeps its promises (docs/contract.md §8).

Schemathesis (v4) reads the app's OpenAPI document and, for every operation
in it (new routes are picked up automatically, one test id per operation),
sends schema-valid and schema-invalid requests as an admin to the app
in-process (ASGI; schemathesis runs the app's lifespan in its own event-loop
thread), checking that the app never answers 5xx and that each response's
status code, media type and body are the ones the document declares.

The admin logs in through ``POST /auth/token`` when the app has that route;
otherwise a token is signed for the fixture admin directly. Hypothesis runs
deterministically (``derandomize``) so CI is reproducible; raise
``CONTRACT_MAX_EXAMPLES`` locally for a deeper search.

(``schemathesis.pytest.from_fixture`` is not used: on pytest 9.2 it fails
with ``'Function' object has no attribute '_nodeid'``. So the schema is
built at import, and the login is a module fixture whose header is passed to
every call: a ``@schema.auth()`` provider would be asked for a token while
tests are collected, before the app and its database exist.)
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from pymongo import AsyncMongoClient
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi as schemathesis_asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from backend_app.devtools.embedded_db import EmbeddedMongo
from backend_app.main import app as published_app
from backend_app.main import create_app
from backend_app.users import repository as users_repository
from config import Settings
from tests.support.helpers import TEST_PASSWORD

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MAX_EXAMPLES = int(os.environ.get("CONTRACT_MAX_EXAMPLES", "30"))
ADMIN = "contract_admin"
TOKEN_URL = "/auth/token"


async def _insert_admin(uri: str, db_name: str, password_hash: str) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    try:
        await users_repository.insert_user(
            client[db_name],
            username=ADMIN,
            email=f"{ADMIN}@example.com",
            password_hash=password_hash,
            full_name="Contract Admin",
            role="admin",
        )
    finally:
        await client.close()


async def _drop(uri: str, db_name: str) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    try:
        await client.drop_database(db_name)
    finally:
        await client.close()


@pytest.fixture(scope="module")
def contract_app(mongo_server: EmbeddedMongo, password_hash: str, log_dir: Path) -> Iterator[FastAPI]:
    """The app under test, its lifespan running in schemathesis' event-loop thread, with a fixture admin."""
    db_name = f"contract_{uuid.uuid4().hex[:12]}"
    asyncio.run(_insert_admin(mongo_server.uri, db_name, password_hash))
    settings = Settings(
        app_env="test", mongodb_uri=mongo_server.uri, mongodb_db=db_name, rate_limit_enabled=False, log_dir=str(log_dir)
    )
    app = create_app(settings)
    try:
        with schemathesis_asgi.get_client(app):  # starts the lifespan once, for every case
            pass
        yield app
    finally:
        schemathesis_asgi.shutdown_lifespans()  # closes the app's database client in its own loop
        asyncio.run(_drop(mongo_server.uri, db_name))


@pytest.fixture(scope="module")
def admin_authorization(contract_app: FastAPI) -> dict[str, str]:
    """The auth hook: the fixture admin logs in through ``POST /auth/token`` (OAuth2 password form)."""
    with schemathesis_asgi.get_client(contract_app) as http:
        response = http.post(TOKEN_URL, data={"username": ADMIN, "password": TEST_PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


#: The published document, as the app serves it at /openapi.json (routes do not depend on settings).
schema = schemathesis.openapi.from_dict(published_app.openapi())


@schema.parametrize()
@hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_honours_its_published_contract(
    case: Any, contract_app: FastAPI, admin_authorization: dict[str, str]
) -> None:
    case.call_and_validate(app=contract_app, headers=admin_authorization, checks=CHECKS)
