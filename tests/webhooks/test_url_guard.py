"""The URL guard: address rules tested on addresses, delivery paths on loopback and on names a test resolver answers.

No packet leaves loopback: refused addresses are never connected to, and the
public addresses below are only ever *answers* of the test resolver, checked
and refused or never dialled.
"""

from __future__ import annotations

import ipaddress

import httpx
import pytest
from pydantic import ValidationError
from standardwebhooks import Webhook

from backend_app.devtools.seed import seed_user
from backend_app.main import create_app
from backend_app.webhooks import urlguard
from config import Settings
from tests.support.helpers import assert_problem, create_product
from tests.support.lifespan import lifespan
from tests.webhooks.conftest import FAST, create_endpoint, deliveries, wait_for

REFUSED = {
    "127.0.0.1": "loopback",
    "127.255.0.9": "loopback",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "192.168.1.1": "private",
    "169.254.169.254": "link-local",  # cloud metadata
    "224.0.0.1": "multicast",
    "0.0.0.0": "unspecified",
    "100.64.0.1": "non-public",  # carrier-grade NAT (shared)
    "192.0.2.10": "private",  # documentation
    "::1": "loopback",
    "::": "unspecified",
    "fc00::1": "private",  # unique-local
    "fd12:3456::1": "private",
    "fe80::1": "link-local",
    "ff02::1": "multicast",
    "::ffff:127.0.0.1": "IPv4-mapped form of a loopback",
    "::ffff:169.254.169.254": "IPv4-mapped form of a link-local",
    "::ffff:10.0.0.1": "IPv4-mapped form of a private",
    "64:ff9b::7f00:1": "NAT64 form of a loopback",
    "2002:7f00:1::1": "6to4 form of a loopback",
}
PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:93.184.216.34"]


@pytest.mark.parametrize("address", sorted(REFUSED))
def test_non_public_addresses_are_refused(address):
    reason = urlguard.refused_reason(ipaddress.ip_address(address))
    assert reason is not None and reason.startswith(REFUSED[address]), reason


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address):
    assert urlguard.refused_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "http://user:pw@example.com/",
        "http:///nohost",
        "not a url",
        "https://" + "a" * 2100 + ".com",
    ],
)
def test_urls_with_bad_syntax_are_refused(url):
    with pytest.raises(urlguard.UnsafeUrlError):
        urlguard.parse(url, https_only=False)


def test_production_allows_only_https_and_refuses_private_url_override():
    with pytest.raises(urlguard.UnsafeUrlError, match="https"):
        urlguard.parse("http://example.com/hook", https_only=True)
    assert urlguard.parse("https://example.com/hook", https_only=True).port == 443
    with pytest.raises(ValidationError, match="WEBHOOK_ALLOW_PRIVATE_URLS"):
        Settings(
            app_env="production", mongodb_uri="mongodb://db.internal:27017", jwt_secret="x" * 40,
            webhook_allow_private_urls=True,
        )  # fmt: skip


def resolver_for(answers: dict[str, list[str]]):
    """A resolver the test controls: ``host`` → the addresses listed (``OSError`` for others)."""
    calls: list[str] = []

    async def resolve(host: str, _port: int) -> list[str]:
        calls.append(host)
        if host not in answers:
            raise OSError("no such host")
        return list(answers[host])

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


@pytest.fixture
def answers() -> dict[str, list[str]]:
    """What the test resolver answers, per host name (tests change it between steps)."""
    return {
        "internal.test": ["10.0.0.7"],
        "mixed.test": ["93.184.216.34", "127.0.0.1"],
        "public.test": ["93.184.216.34"],
    }


@pytest.fixture
async def guarded(settings: Settings, answers, password_hash, mongo_server, db_name):
    """``(client, admin_headers)`` of an app whose webhook hosts are resolved by :func:`resolver_for` ``(answers)``."""
    app = create_app(settings)
    app.state.webhook_resolver = resolver_for(answers)
    async with lifespan(app):
        admin = await seed_user(
            app.state.db, settings, username="guard_admin", role="admin", password_hash=password_hash
        )
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
            yield client, admin
        await app.state.db.client.drop_database(db_name)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://[::1]:9/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:127.0.0.1]/x",
        "http://internal.test/hook",  # resolves to a private address
        "http://mixed.test/hook",  # one public and one private answer
        "http://nowhere.test/hook",  # does not resolve
    ],
)
async def test_creating_or_changing_an_endpoint_to_a_refused_address_is_a_422(guarded, url):
    client, admin = guarded
    refused = await client.post("/webhooks/endpoints", json={"url": url, "events": ["*"]}, headers=admin)
    assert_problem(refused, 422, "unsafe_webhook_url")
    ok = await client.post(
        "/webhooks/endpoints", json={"url": "http://public.test/hook", "events": ["*"]}, headers=admin
    )
    assert ok.status_code == 201, ok.text
    changed = await client.patch(f"/webhooks/endpoints/{ok.json()['id']}", json={"url": url}, headers=admin)
    assert_problem(changed, 422, "unsafe_webhook_url")


@pytest.mark.asyncio
@pytest.mark.settings(webhook_poll_interval_seconds=0.05, webhook_retry_schedule="60")
async def test_a_name_that_rebinds_to_loopback_after_the_check_is_refused_at_delivery(guarded, answers, receiver):
    client, admin = guarded
    answers["rebind.test"] = ["93.184.216.34"]  # public when the endpoint is saved (never dialled)
    url = f"http://rebind.test:{receiver.port}/hook"
    endpoint = await create_endpoint(client, admin, url)
    answers["rebind.test"] = ["127.0.0.1"]  # then the name points inside
    await create_product(client, admin)

    async def attempted():
        found = await deliveries(client, admin, endpoint["id"])
        return found if found and found[0]["attempts"] else None

    (delivery,) = await wait_for(attempted)
    (attempt,) = delivery["attempts"]
    assert (
        attempt["status_code"] is None
        and attempt["error"].startswith("address refused")
        and "loopback" in attempt["error"]
    )
    assert receiver.snapshot() == []  # nothing reached the loopback receiver


@pytest.mark.asyncio
@pytest.mark.settings(**FAST)
async def test_a_name_is_delivered_to_the_address_it_resolved_to_with_its_own_host_header(guarded, answers, receiver):
    client, admin = guarded
    answers["receiver.test"] = ["127.0.0.1"]
    endpoint = await create_endpoint(client, admin, f"http://receiver.test:{receiver.port}/hook")
    await create_product(client, admin)
    (got,) = await wait_for(receiver.accepted)
    assert got.headers["host"] == f"receiver.test:{receiver.port}"
    assert Webhook(endpoint["secret"]).verify(got.body, got.headers)["type"] == "product.created"
