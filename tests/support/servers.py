"""Environments of the API processes that end-to-end tests start (``ApiServer``)."""

from __future__ import annotations

from pathlib import Path


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
