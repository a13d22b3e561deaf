"""Webhook endpoints and deliveries through the public API, delivered by the app's own dispatcher to a loopback receiver.

Receivers verify every delivery with the maintained ``standardwebhooks``
package, exactly as a customer would.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from backend_app.devtools.webhook_receiver import always
from tests.support.helpers import assert_problem, create_product
from tests.webhooks.conftest import FAST, create_endpoint, deliveries, wait_for

pytestmark = [pytest.mark.asyncio, pytest.mark.settings(**FAST)]


def _verify(secret: str, received) -> dict:
    return Webhook(secret).verify(received.body, received.headers)


async def test_an_endpoint_shows_its_secret_once_and_every_change_is_audited(client, admin_headers, receiver):
    created = await create_endpoint(client, admin_headers, receiver.url, ["order.created"], description="erp")
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    assert created["status"] == "enabled" and created["events"] == ["order.created"]
    endpoint_id = created["id"]

    one = (await client.get(f"/webhooks/endpoints/{endpoint_id}", headers=admin_headers)).json()
    listed = (await client.get("/webhooks/endpoints", headers=admin_headers)).json()
    assert "secret" not in one and listed["data"][0]["id"] == endpoint_id and "secret" not in listed["data"][0]
    assert set(listed["page"]) >= {"next", "limit", "previous", "next_cursor", "prev_cursor"}

    patched = await client.patch(
        f"/webhooks/endpoints/{endpoint_id}", json={"events": ["*"], "description": None}, headers=admin_headers
    )
    assert patched.status_code == 200 and patched.json()["events"] == ["*"] and "secret" not in patched.json()
    assert_problem(
        await client.patch(f"/webhooks/endpoints/{endpoint_id}", json={"url": None}, headers=admin_headers), 422
    )
    assert_problem(
        await client.post("/webhooks/endpoints", json={"url": receiver.url, "events": ["nope"]}, headers=admin_headers),
        422,
    )

    rotated = (await client.post(f"/webhooks/endpoints/{endpoint_id}/rotate-secret", headers=admin_headers)).json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != secret

    assert (await client.delete(f"/webhooks/endpoints/{endpoint_id}", headers=admin_headers)).status_code == 204
    assert_problem(
        await client.get(f"/webhooks/endpoints/{endpoint_id}", headers=admin_headers), 404, "webhook_endpoint_not_found"
    )

    trail = (
        await client.get("/audit", params={"entity_type": "webhook_endpoint", "limit": 100}, headers=admin_headers)
    ).json()
    actions = [e["action"] for e in trail["data"]]
    assert actions == [
        "webhook_endpoint.create",
        "webhook_endpoint.update",
        "webhook_endpoint.rotate_secret",
        "webhook_endpoint.delete",
    ]
    assert all(e["actor"] == "root_admin" for e in trail["data"])
    dumped = json.dumps(trail)
    assert secret not in dumped and rotated["secret"] not in dumped and "whsec_" not in dumped


async def test_a_delivery_verifies_with_standardwebhooks_and_carries_the_event(client, admin_headers, receiver, app):
    endpoint = await create_endpoint(client, admin_headers, receiver.url)
    product_id = await create_product(client, admin_headers, name="Hat")
    got = await wait_for(receiver.accepted)
    payload = _verify(endpoint["secret"], got[0])
    assert payload["type"] == "product.created" and payload["data"]["id"] == product_id
    assert payload["entity"] == {"type": "product", "id": product_id, "version": 1}
    assert got[0].headers["webhook-id"] == payload["id"]
    assert got[0].headers["content-type"] == "application/json"
    event = (await client.get(f"/events/{payload['id']}", headers=admin_headers)).json()
    assert event == payload  # the feed and the delivery carry the same envelope
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "QUJD" * 8).verify(got[0].body, got[0].headers)

    listed = await wait_for(lambda: _delivered(client, admin_headers, endpoint["id"]))
    (delivery,) = listed
    assert delivery["event_id"] == payload["id"] and delivery["event_type"] == "product.created"
    (attempt,) = delivery["attempts"]
    assert attempt["status_code"] == 200 and attempt["error"] is None and attempt["response"] == "ok"
    assert attempt["duration_ms"] >= 0 and attempt["next_attempt_at"] is None


async def _delivered(client, headers, endpoint_id):
    found = await deliveries(client, headers, endpoint_id)
    return found if found and all(d["status"] == "delivered" for d in found) else None


async def _failed(client, headers, endpoint_id):
    found = await deliveries(client, headers, endpoint_id)
    return found if found and found[0]["status"] == "failed" else None


async def test_failures_are_retried_with_the_same_id_until_a_2xx_and_the_endpoint_recovers(
    client, admin_headers, receiver
):
    receiver.behaviour = lambda n, _h: (500, {}, b"boom", 0.0) if n < 2 else (200, {}, b"ok", 0.0)
    endpoint = await create_endpoint(client, admin_headers, receiver.url)
    await create_product(client, admin_headers)
    await wait_for(receiver.accepted)
    ids = {r.headers["webhook-id"] for r in receiver.snapshot()}
    assert len(receiver.snapshot()) == 3 and len(ids) == 1
    for r in receiver.snapshot():
        _verify(endpoint["secret"], r)
    (delivery,) = await wait_for(lambda: _delivered(client, admin_headers, endpoint["id"]))
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 200]
    assert delivery["attempts"][0]["response"] == "boom" and delivery["attempts"][0]["next_attempt_at"] is not None

    async def recovered() -> list[str] | None:
        # The endpoint's status change commits after the attempt's outcome, in its own transaction.
        trail = (
            await client.get(
                "/audit", params={"entity_type": "webhook_endpoint", "actor": "system:webhooks"}, headers=admin_headers
            )
        ).json()
        actions = [e["action"] for e in trail["data"]]
        return actions if "webhook_endpoint.recovered" in actions else None

    assert await wait_for(recovered) == ["webhook_endpoint.failing", "webhook_endpoint.recovered"]
    assert (await client.get(f"/webhooks/endpoints/{endpoint['id']}", headers=admin_headers)).json()[
        "status"
    ] == "enabled"


async def test_410_disables_the_endpoint_visibly_and_audited(client, admin_headers, receiver):
    receiver.behaviour = always(410, body=b"gone")
    endpoint = await create_endpoint(client, admin_headers, receiver.url)
    await create_product(client, admin_headers)

    async def disabled():
        body = (await client.get(f"/webhooks/endpoints/{endpoint['id']}", headers=admin_headers)).json()
        return body if body["status"] == "disabled" else None

    body = await wait_for(disabled)
    assert "410" in body["disabled_reason"]
    await create_product(client, admin_headers, name="Second")
    (delivery,) = await deliveries(client, admin_headers, endpoint["id"])  # nothing queued for a disabled endpoint
    assert delivery["status"] == "failed" and len(receiver.snapshot()) == 1
    trail = (
        await client.get(
            "/audit", params={"entity_type": "webhook_endpoint", "actor": "system:webhooks"}, headers=admin_headers
        )
    ).json()
    assert [e["action"] for e in trail["data"]] == ["webhook_endpoint.disabled"]
    assert_problem(
        await client.post(f"/webhooks/endpoints/{endpoint['id']}/test", headers=admin_headers),
        409,
        "webhook_endpoint_disabled",
    )


async def test_a_spent_schedule_fails_the_delivery_and_disables_but_never_deletes_the_endpoint(
    client, admin_headers, receiver
):
    receiver.behaviour = always(500)
    endpoint = await create_endpoint(client, admin_headers, receiver.url)
    await create_product(client, admin_headers)

    (delivery,) = await wait_for(lambda: _failed(client, admin_headers, endpoint["id"]))
    assert len(delivery["attempts"]) == 4  # the first attempt and one per value of the schedule
    assert delivery["attempts"][-1]["next_attempt_at"] is None

    async def disabled() -> dict | None:
        # The endpoint's status change commits after the attempt's outcome, in its own transaction.
        body = (await client.get(f"/webhooks/endpoints/{endpoint['id']}", headers=admin_headers)).json()
        return body if body["status"] == "disabled" else None

    body = await wait_for(disabled)
    assert "schedule" in body["disabled_reason"]
    trail = (
        await client.get(
            "/audit", params={"entity_type": "webhook_endpoint", "actor": "system:webhooks"}, headers=admin_headers
        )
    ).json()
    assert [e["action"] for e in trail["data"]] == ["webhook_endpoint.failing", "webhook_endpoint.disabled"]

    # Enabled again by an admin, a manual retry starts the schedule over and succeeds.
    receiver.behaviour = always(200)
    assert (
        await client.patch(f"/webhooks/endpoints/{endpoint['id']}", json={"status": "enabled"}, headers=admin_headers)
    ).json()["status"] == "enabled"
    retried = await client.post(f"/webhooks/deliveries/{delivery['id']}/retry", headers=admin_headers)
    assert retried.status_code == 202 and retried.json()["status"] == "pending"
    (done,) = await wait_for(lambda: _delivered(client, admin_headers, endpoint["id"]))
    assert [a["status_code"] for a in done["attempts"]][-1] == 200


async def test_429_and_503_honour_retry_after(client, admin_headers, receiver):
    receiver.behaviour = lambda n, _h: (
        (503, {"retry-after": "1"}, b"", 0.0)
        if n == 0
        else (429, {"retry-after": "1"}, b"", 0.0)
        if n == 1
        else (200, {}, b"", 0.0)
    )
    endpoint = await create_endpoint(client, admin_headers, receiver.url)
    await create_product(client, admin_headers)
    (delivery,) = await wait_for(lambda: _delivered(client, admin_headers, endpoint["id"]), timeout=20)
    first, second, _third = delivery["attempts"]
    for attempt in (first, second):
        wait = datetime.fromisoformat(attempt["next_attempt_at"]) - datetime.fromisoformat(attempt["at"])
        assert wait >= timedelta(seconds=0.9), attempt  # the schedule alone would have waited 0.2 s
    got = receiver.snapshot()
    assert got[1].at - got[0].at >= 0.9 and got[2].at - got[1].at >= 0.9


@pytest.mark.settings(webhook_timeout_seconds=0.5, webhook_retry_schedule="0.1")
async def test_a_slow_receiver_times_out_and_redirects_are_not_followed(client, admin_headers, receiver):
    receiver.behaviour = lambda n, _h: (
        (200, {}, b"", 3.0) if n == 0 else (302, {"location": receiver.url + "/elsewhere"}, b"", 0.0)
    )
    endpoint = await create_endpoint(client, admin_headers, receiver.url)
    await create_product(client, admin_headers)

    (delivery,) = await wait_for(lambda: _failed(client, admin_headers, endpoint["id"]))
    first, second = delivery["attempts"]
    assert first["status_code"] is None and first["error"].startswith("timeout") and first["duration_ms"] < 2000
    assert second["status_code"] == 302
    assert all(r.path == "/hook" for r in receiver.snapshot())  # the Location was never requested


async def test_after_a_rotation_old_and_new_secrets_both_verify_for_a_day(client, admin_headers, receiver):
    endpoint = await create_endpoint(client, admin_headers, receiver.url)
    rotated = (await client.post(f"/webhooks/endpoints/{endpoint['id']}/rotate-secret", headers=admin_headers)).json()
    await create_product(client, admin_headers)
    (got,) = await wait_for(receiver.accepted)
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    assert _verify(endpoint["secret"], got) == _verify(rotated["secret"], got)


async def test_only_subscribed_types_are_delivered_and_ping_tests_an_endpoint(client, admin_headers, receiver, alice):
    endpoint = await create_endpoint(client, admin_headers, receiver.url, ["order.created"])
    product_id = await create_product(client, admin_headers)
    order = await client.post("/orders", json={"items": [{"productId": product_id, "qty": 1}]}, headers=alice)
    (got,) = await wait_for(receiver.accepted)
    payload = _verify(endpoint["secret"], got)
    assert payload["type"] == "order.created" and payload["data"]["id"] == order.json()["id"]

    ping = await client.post(f"/webhooks/endpoints/{endpoint['id']}/test", headers=admin_headers)
    assert ping.status_code == 202 and ping.json()["event_type"] == "ping"
    got = await wait_for(lambda: receiver.accepted() if len(receiver.accepted()) == 2 else None)
    pinged = _verify(endpoint["secret"], got[1])
    assert pinged["type"] == "ping" and pinged["data"]["endpoint_id"] == endpoint["id"]


async def test_replay_queues_a_time_range_again_and_retry_resends_one(client, admin_headers, receiver):
    start = datetime.now(UTC) - timedelta(seconds=1)
    for name in ("A", "B", "C"):
        await create_product(client, admin_headers, name=name)
    # Created after the events: fan-out never sends it earlier events; an explicit replay does.
    endpoint = await create_endpoint(client, admin_headers, receiver.url)
    await create_product(client, admin_headers, name="D")
    await wait_for(receiver.accepted)
    until = datetime.now(UTC) + timedelta(seconds=1)
    replayed = await client.post(
        f"/webhooks/endpoints/{endpoint['id']}/replay",
        json={"since": start.isoformat(), "until": until.isoformat(), "types": ["product.created"]},
        headers=admin_headers,
    )
    assert replayed.status_code == 202 and replayed.json() == {"queued": 4}
    got = await wait_for(lambda: receiver.accepted() if len(receiver.accepted()) == 5 else None)
    names = sorted(_verify(endpoint["secret"], r)["data"]["name"] for r in got)
    assert names == ["A", "B", "C", "D", "D"]
    bad = await client.post(
        f"/webhooks/endpoints/{endpoint['id']}/replay",
        json={"since": until.isoformat(), "until": start.isoformat()},
        headers=admin_headers,
    )
    assert_problem(bad, 422)
    assert_problem(
        await client.post(f"/webhooks/deliveries/{'0' * 24}/retry", headers=admin_headers),
        404,
        "webhook_delivery_not_found",
    )


async def test_an_attempt_keeps_the_first_kib_of_the_answer(client, admin_headers, receiver):
    receiver.behaviour = always(200, body=b"x" * 5000)
    endpoint = await create_endpoint(client, admin_headers, receiver.url)
    await create_product(client, admin_headers)
    (delivery,) = await wait_for(lambda: _delivered(client, admin_headers, endpoint["id"]))
    assert delivery["attempts"][0]["response"] == "x" * 1024


async def test_deliveries_are_listed_like_every_list(client, admin_headers, receiver):
    endpoint = await create_endpoint(client, admin_headers, receiver.url)
    for i in range(5):
        await create_product(client, admin_headers, name=f"P{i}")
    await wait_for(lambda: len(receiver.accepted()) == 5)
    first = (
        await client.get(f"/webhooks/endpoints/{endpoint['id']}/deliveries", params={"limit": 2}, headers=admin_headers)
    ).json()
    assert first["page"]["limit"] == 2 and first["page"]["next"] == "2" and first["page"]["next_cursor"]
    second = (
        await client.get(
            f"/webhooks/endpoints/{endpoint['id']}/deliveries",
            params={"limit": 3, "cursor": first["page"]["next_cursor"]},
            headers=admin_headers,
        )
    ).json()
    ids = [d["id"] for d in first["data"] + second["data"]]
    assert len(set(ids)) == 5 and ids == sorted(ids, reverse=True)  # newest first
    assert second["page"]["next_cursor"] is None
