"""Logs (docs/contract.md §8): JSON lines to stdout and a rotating file, one access line per request, no secrets."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from backend_app.core.logging import LOG_FILE_NAME, configure_logging
from backend_app.core.security import create_token
from config import Settings
from tests.support.helpers import TEST_PASSWORD


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` parsed as JSON (a non-JSON line fails the test)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def access_lines(records: list[dict[str, Any]], request_id: str) -> list[dict[str, Any]]:
    return [r for r in records if r.get("logger") == "storefront.access" and r.get("request_id") == request_id]


async def test_one_json_access_line_per_request_on_stdout_and_in_the_file(
    client: httpx.AsyncClient, alice: dict[str, str], settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    response = await client.get("/orders/alice?limit=5", headers={**alice, "X-Request-ID": "trace-access-1"})
    assert response.status_code == 200
    stdout = json_lines(capsys.readouterr().out)
    in_file = json_lines((Path(settings.log_dir) / LOG_FILE_NAME).read_text(encoding="utf-8"))
    for records in (stdout, in_file):
        (line,) = access_lines(records, "trace-access-1")
        assert line["method"] == "GET"
        assert line["path"] == "/orders/alice"  # never the query string
        assert line["status"] == 200
        assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
        assert line["user"] == "alice"
        assert line["level"] == "INFO"
        assert line["timestamp"].endswith("+00:00")


async def test_error_responses_are_logged_with_their_status(
    client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    await client.get("/orders/alice", headers={"X-Request-ID": "trace-401"})
    (line,) = access_lines(json_lines(capsys.readouterr().out), "trace-401")
    assert line["status"] == 401
    assert line["user"] is None


def test_the_log_file_rotates_by_size(tmp_path: Path) -> None:
    settings = Settings(app_env="test", log_dir=str(tmp_path), log_file_max_bytes=2048, log_file_backup_count=2)
    configure_logging(settings)
    log = logging.getLogger("storefront.test")
    for n in range(200):
        log.info("line %d %s", n, "x" * 50)
    files = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(LOG_FILE_NAME))
    assert files == [LOG_FILE_NAME, f"{LOG_FILE_NAME}.1", f"{LOG_FILE_NAME}.2"]
    assert all(p.stat().st_size <= 2048 + 512 for p in tmp_path.glob(f"{LOG_FILE_NAME}*"))


@pytest.mark.settings(log_level="DEBUG", rate_limit_enabled=True)
async def test_passwords_tokens_and_hashes_never_reach_the_log(
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Settings,
    make_user: Any,
    password_hash: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Drive every path that handles a secret at DEBUG level, then search stdout and the file for them."""
    headers = await make_user("carol", role="admin")
    access_token = headers["Authorization"].removeprefix("Bearer ")
    refresh_token, _ = create_token(settings, subject="carol", role="admin", token_type="refresh")
    secrets_ = [TEST_PASSWORD, access_token, refresh_token, password_hash]

    app_logger = logging.getLogger("backend_app.test")

    async def careless() -> dict[str, str]:
        # Code that logs what it should not: the formatter must still mask it.
        app_logger.info("login attempt %s", {"username": "carol", "password": TEST_PASSWORD})
        app_logger.debug("issued access_token=%s refresh_token=%s", access_token, refresh_token)
        app_logger.warning("user document", extra={"password_hash": password_hash, "user": "carol"})
        app_logger.info("stored hash %s for carol", password_hash)
        raise RuntimeError(f"boom with Bearer {access_token} and password={TEST_PASSWORD}")

    app.add_api_route("/careless", careless, methods=["GET"])
    served = {getattr(route, "path", None) for route in app.routes}

    credentials = {"username": "carol", "password": TEST_PASSWORD}
    await client.get("/products", headers=headers)
    await client.post("/products", json={"name": "X", "price": 1.0, "password": TEST_PASSWORD}, headers=headers)
    await client.get(f"/products?name={TEST_PASSWORD}&token={access_token}", headers=headers)
    await client.get("/careless", headers=headers)
    await client.get("/orders/carol", headers={"Authorization": f"Bearer {refresh_token}"})
    # The auth routes, once they are part of the app.
    if "/auth/register" in served:
        await client.post("/auth/register", json={**credentials, "username": "dave", "email": "dave@example.com"})
    if "/auth/login" in served:
        await client.post("/auth/login", json=credentials)
    if "/auth/token" in served:
        await client.post("/auth/token", data=credentials)
    if "/auth/refresh" in served:
        await client.post("/auth/refresh", json={"refresh_token": refresh_token})
    if "/auth/logout" in served:
        await client.post("/auth/logout", json={"refresh_token": refresh_token}, headers=headers)

    stdout = capsys.readouterr().out
    in_file = (Path(settings.log_dir) / LOG_FILE_NAME).read_text(encoding="utf-8")
    assert "/careless" in stdout and "login attempt" in in_file  # the requests were logged at all
    assert "[REDACTED]" in stdout
    for text in (stdout, in_file):
        json_lines(text)
        for secret in secrets_:
            assert secret not in text
        # Not even the signature part of a token, or a hash without its prefix.
        assert access_token.rsplit(".", 1)[1] not in text
        assert password_hash[7:] not in text
