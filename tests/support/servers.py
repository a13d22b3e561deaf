"""Environments of the API processes that end-to-end tests start (``ApiServer``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from backend_app.core.db import MongoDatabase
from backend_app.main import INDEX_INSTALLERS


def api_env(uri: str, db_name: str, secret: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    """Settings of a test API process on ``db_name`` at ``uri``: rate limits off, logs in ``tmp_path``,
    a 1 s server selection timeout (an outage answers quickly), plus ``extra``."""
    return {
        "MONGODB_URI": uri,
        "MONGODB_DB": db_name,
        "JWT_SECRET": secret,
        "RATE_LIMIT_ENABLED": "false",
        "LOG_DIR": str(tmp_path),
        "MONGODB_SERVER_SELECTION_TIMEOUT_MS": "1000",
        **extra,
    }


@asynccontextmanager
async def prepared_database(uri: str, db_name: str) -> AsyncIterator[MongoDatabase]:
    """``db_name`` at ``uri`` with every index installed, as an API process's start-up leaves it (client closed after)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    try:
        db = client[db_name]
        for install in INDEX_INSTALLERS:
            await install(db)
        yield db
    finally:
        await client.close()
