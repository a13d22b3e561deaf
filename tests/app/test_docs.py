"""``/docs`` and ``/redoc`` work offline: every asset they load is served by the app (docs/contract.md §8)."""

from __future__ import annotations

import re

import httpx
import pytest

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_doc_pages_load_only_local_assets(client: httpx.AsyncClient, page: str) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    html = response.text
    refs = re.findall(r"""(?:src|href)\s*=\s*['"]([^'"]+)['"]""", html) + re.findall(
        r"""(?:url|spec-url)\s*:\s*['"]([^'"]+)['"]""", html
    )
    assets = [ref for ref in refs if ref.endswith((".js", ".css", ".png"))]
    assert assets, html
    for ref in refs:
        assert ref.startswith("/"), f"{page} loads {ref} from outside the app"
    assert "cdn" not in html.lower()
    for asset in assets:
        served = await client.get(asset)
        assert served.status_code == 200, asset
        assert len(served.content) > 1000, asset


async def test_openapi_declares_the_password_flow_on_auth_token(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    schemes = schema["components"]["securitySchemes"]
    (scheme,) = schemes.values()
    assert scheme["type"] == "oauth2"
    assert scheme["flows"]["password"]["tokenUrl"] == "/auth/token"
    name = next(iter(schemes))
    assert schema["paths"]["/auth/me"]["get"]["security"] == [{name: []}]
    assert "security" not in schema["paths"]["/products"]["get"]  # public
    assert schema["paths"]["/products"]["post"]["security"] == [{name: []}]
    for path, status in (("/auth/login", "401"), ("/users", "403"), ("/users/{username}", "409")):
        operations = schema["paths"][path]
        assert any(status in op["responses"] for op in operations.values()), path
