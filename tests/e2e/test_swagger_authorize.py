"""Swagger UI end to end: headless Chromium logs in with Authorize, then "Try it out" on ``GET /auth/me`` → 200.

A real uvicorn server (a subprocess on a free port, talking to the test
SecantusDB) serves the app; Playwright drives Debian's ``chromium`` through
``executable_path`` (no browser download). Every request the page makes must
go to that server: the docs work with no internet access (docs/contract.md §8).

Skipped, with the reason, when Playwright or Chromium is not installed
(``make test`` installs both where it can: see the Makefile).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from backend_app.devtools.api_server import ApiServer
from backend_app.devtools.embedded_db import EmbeddedMongo
from tests.support.helpers import TEST_PASSWORD

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio]
USERNAME = "swagger_user"


def _chromium_path() -> str | None:
    """``CHROMIUM_PATH``, else the first Chromium on ``PATH`` (Debian's package installs ``/usr/bin/chromium``)."""
    configured = os.environ.get("CHROMIUM_PATH")
    if configured:
        return configured if Path(configured).exists() else None
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def chromium() -> str:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        pytest.skip("Playwright for Python is not installed (requirements-dev.txt; `make test` installs it)")
    path = _chromium_path()
    if path is None:
        pytest.skip(
            "Chromium is not installed: `make test` installs Debian's `chromium` with apt-get where it runs as root; "
            "elsewhere install it, or set CHROMIUM_PATH"
        )
    return path


@pytest.fixture(scope="module")
def live_server(mongo_server: EmbeddedMongo) -> Iterator[str]:
    """Base URL of a uvicorn process serving the app on its own database, with one registered user."""
    with ApiServer(env={"MONGODB_URI": mongo_server.uri, "MONGODB_DB": f"e2e_{uuid.uuid4().hex[:12]}"}) as server:
        registered = httpx.post(
            f"{server.base_url}/auth/register",
            json={"username": USERNAME, "email": "swagger@example.com", "password": TEST_PASSWORD},
        )
        assert registered.status_code == 201, registered.text
        yield server.base_url


async def test_authorize_then_try_get_auth_me(chromium: str, live_server: str, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright, expect

    requested: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, headless=True)
        try:
            page = await browser.new_page()
            page.on("request", lambda request: requested.append(request.url))
            await page.goto(f"{live_server}/docs")

            # The Authorize dialog: OAuth2 password flow against /auth/token.
            await page.locator(".auth-wrapper button.authorize").click()
            dialog = page.locator(".modal-ux")
            await expect(dialog).to_be_visible()
            await dialog.locator("#oauth_username").fill(USERNAME)
            await dialog.locator("#oauth_password").fill(TEST_PASSWORD)
            await dialog.locator("button.modal-btn", has_text="Authorize").click()
            await expect(dialog.get_by_role("heading", name="Authorized")).to_be_visible()
            await expect(dialog.locator("button.modal-btn", has_text="Logout")).to_be_visible()
            await dialog.locator("button.modal-btn", has_text="Close").click()

            # "Try it out" on GET /auth/me, then Execute.
            operation = page.locator("#operations-auth-read_current_user_auth_me_get")
            await operation.locator(".opblock-summary").click()
            await operation.locator("button.try-out__btn").click()
            await operation.locator("button.execute").click()
            status = operation.locator(".live-responses-table .response .response-col_status").first
            await expect(status).to_have_text("200", timeout=15_000)
            body = await operation.locator(".live-responses-table .response-col_description pre").first.inner_text()
            await operation.screenshot(path=str(tmp_path / "swagger-auth-me.png"))
        finally:
            await browser.close()

    assert f'"username": "{USERNAME}"' in body
    assert any(url.endswith("/auth/token") for url in requested), requested
    assert any(url.endswith("/auth/me") for url in requested), requested
    outside = [url for url in requested if not url.startswith(live_server) and not url.startswith("data:")]
    assert not outside, f"/docs fetched from outside the app: {outside}"
