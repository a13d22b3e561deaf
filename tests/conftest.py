"""Shared fixtures: one SecantusDB process per test session, a fresh database per test.

The app always reaches the database over TCP through a MongoDB URI (docs/contract.md §9);
nothing here mocks the driver.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from backend_app.devtools.embedded_db import EmbeddedMongo
from backend_app.devtools.redis_server import REDIS_SERVER, RedisServer
from backend_app.devtools.seed import seed_user
from backend_app.main import create_app
from config import Settings
from tests.support.helpers import TEST_PASSWORD
from tests.support.lifespan import lifespan


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[EmbeddedMongo]:
    """A SecantusDB server on a free port with throw-away storage, for the whole session."""
    with EmbeddedMongo(storage_path=":memory:") as server:
        yield server


@pytest.fixture
def db_name() -> str:
    """A database name unique to this test (clean data per test)."""
    return f"test_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where test apps write their JSON log file (kept out of the work tree)."""
    return tmp_path_factory.mktemp("logs")


@pytest.fixture
def settings(mongo_server: EmbeddedMongo, db_name: str, log_dir: Path, request: pytest.FixtureRequest) -> Settings:
    """Settings pointing the app at this test's database.

    Rate limiting is off so tests are not throttled; a test turns it (or any
    other setting) on with ``@pytest.mark.settings(rate_limit_enabled=True, ...)``.
    """
    values: dict[str, Any] = {
        "app_env": "test",
        "mongodb_uri": mongo_server.uri,
        "mongodb_db": db_name,
        "rate_limit_enabled": False,
        "log_dir": str(log_dir),
    }
    for marker in reversed(list(request.node.iter_markers("settings"))):
        values.update(marker.kwargs)
    return Settings(**values)


@pytest.fixture
async def app(settings: Settings, mongo_server: EmbeddedMongo, db_name: str) -> AsyncIterator[FastAPI]:
    """The app with its lifespan run (client opened, indexes ensured); the database is dropped after."""
    application = create_app(settings)
    async with lifespan(application):
        yield application
    cleanup: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_server.uri)
    await cleanup.drop_database(db_name)
    await cleanup.close()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client calling the app in-process (ASGI transport)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
async def mongo(app: FastAPI) -> Any:
    """The test's database handle, for setting up states no public call makes (e.g. a hard delete)."""
    return app.state.db


@pytest.fixture(scope="session")
def password_hash() -> str:
    """bcrypt hash of ``TEST_PASSWORD`` at cost 4, computed once, for the users tests seed.

    bcrypt checks a password at the cost stored in its hash, so signing in as a seeded user
    costs about 1 ms instead of the production cost's 250 ms of CPU; the production cost is
    still what registration and password changes hash with, and their tests sign in with it.
    """
    return bcrypt.hashpw(TEST_PASSWORD.encode("utf-8"), bcrypt.gensalt(4)).decode("ascii")


Headers = dict[str, str]


@pytest.fixture
def make_user(app: FastAPI, settings: Settings, password_hash: str) -> Any:
    """Factory: ``await make_user("alice", role="user")`` stores a user and returns bearer headers."""

    async def factory(username: str, *, role: str = "user") -> Headers:
        return await seed_user(app.state.db, settings, username=username, role=role, password_hash=password_hash)

    return factory


@pytest.fixture
async def admin_headers(make_user: Any) -> Headers:
    """Bearer headers of the admin ``root_admin``."""
    return await make_user("root_admin", role="admin")


@pytest.fixture
async def alice(make_user: Any) -> Headers:
    """Bearer headers of the shopper ``alice``."""
    return await make_user("alice")


@pytest.fixture
async def bob(make_user: Any) -> Headers:
    """Bearer headers of the shopper ``bob``."""
    return await make_user("bob")


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throw-away ``redis-server`` on a free loopback port, one per test module (skips without the binary)."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed and could not be installed with apt-get (see Makefile)")
    with RedisServer(workdir=tmp_path_factory.mktemp("redis")) as server:
        yield server.url


E2E_DIR = Path(__file__).parent / "e2e"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under ``tests/e2e/`` with ``e2e`` (they start real processes), so ``-m "not e2e"`` skips them."""
    for item in items:
        if E2E_DIR in item.path.parents:
            item.add_marker(pytest.mark.e2e)
