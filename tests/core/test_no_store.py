"""One mechanism sets ``Cache-Control: no-store``: ``SecurityHeadersMiddleware``.

It covers the personal-data paths and ``/metrics`` by path, and a failing readiness
probe because its route calls ``mark_no_store``; no route sets the header itself.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from backend_app.devtools.embedded_db import free_port
from backend_app.main import create_app
from config import Settings
from tests.support.lifespan import lifespan

TOKEN = "no-store-metrics-token-0123456789"
PACKAGE = Path(__file__).resolve().parents[2] / "backend_app"


async def test_a_failing_readiness_probe_is_not_stored_and_liveness_is_untouched(log_dir: Path) -> None:
    settings = Settings(
        app_env="test",
        mongodb_uri=f"mongodb://127.0.0.1:{free_port()}/?directConnection=true",  # nothing listens
        mongodb_db="gone",
        rate_limit_enabled=False,
        log_dir=str(log_dir),
        mongodb_server_selection_timeout_ms=300,
    )
    app = create_app(settings)
    async with (
        lifespan(app, startup_timeout=10),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        ready = await http.get("/health/ready")
        assert ready.status_code == 503
        assert ready.headers["Cache-Control"] == "no-store"
        assert ready.headers["Pragma"] == "no-cache"
        live = await http.get("/health/live")
        assert live.status_code == 200
        assert "Cache-Control" not in live.headers


@pytest.mark.settings(metrics_token=TOKEN)
async def test_metrics_scrapes_and_refusals_are_not_stored(client) -> None:
    scrape = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert scrape.status_code == 200
    assert scrape.headers["Cache-Control"] == "no-store"
    refused = await client.get("/metrics", headers={"Authorization": "Bearer wrong"})
    assert refused.status_code == 401
    assert refused.headers["Cache-Control"] == "no-store"


def test_no_module_but_the_middleware_sets_no_store() -> None:
    setters = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if '"no-store"' in path.read_text(encoding="utf-8")
    )
    assert setters == ["core/middleware.py"]
