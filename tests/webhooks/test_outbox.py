"""The outbox between a committed event and its first attempts: who may send it, and what a crash leaves behind.

An event is stored leased to the dispatcher of the process that recorded it
and handed to it after the commit; an event whose lease is over (its process
died, or runs no dispatcher) is claimed by any dispatcher. These tests run the
app with its own dispatcher off and drive a ``Dispatcher`` of their own, so
the outbox states a crash leaves can be set up before any dispatcher looks.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from bson import ObjectId

from backend_app.webhooks import repository as webhooks_repository
from backend_app.webhooks.dispatcher import Dispatcher
from tests.support.helpers import create_product
from tests.webhooks.conftest import FAST, create_endpoint, deliveries

pytestmark = [pytest.mark.asyncio, pytest.mark.settings(**FAST, webhook_dispatcher_enabled=False)]


def _dispatcher(app, settings) -> Dispatcher:
    return Dispatcher(app.state.db, settings, resolver=app.state.webhook_resolver)


async def _only_event(mongo) -> dict:
    (event,) = await mongo["events"].find({"type": "product.created"}).to_list(None)
    return event


async def test_an_event_recorded_where_no_dispatcher_runs_is_claimed_delivered_and_leaves_the_outbox(
    app, settings, client, admin_headers, receiver, mongo
):
    endpoint = await create_endpoint(client, admin_headers, receiver.url)
    await create_product(client, admin_headers)
    event = await _only_event(mongo)
    assert event["pending_fanout"] is True and "fanout_token" not in event  # nobody to hand it to: unleased

    dispatcher = _dispatcher(app, settings)
    try:
        await dispatcher.drain(timeout_s=10)
    finally:
        await dispatcher.close()
    (received,) = receiver.accepted()
    assert received.headers["webhook-id"] == str(event["_id"])
    (delivery,) = await deliveries(client, admin_headers, endpoint["id"])
    assert delivery["status"] == "delivered" and [a["status_code"] for a in delivery["attempts"]] == [200]
    stored = await mongo["events"].find_one({"_id": event["_id"]})
    assert not {"pending_fanout", "fanout_token", "fanout_lease_until"} & set(stored)


async def test_an_event_another_process_holds_is_not_sent_until_its_lease_is_over(
    app, settings, client, admin_headers, receiver, mongo
):
    await create_endpoint(client, admin_headers, receiver.url)
    await create_product(client, admin_headers)
    event = await _only_event(mongo)
    # What a process that recorded the event and then died leaves: the event leased to it.
    until = datetime.now(UTC) + timedelta(seconds=1.5)
    await mongo["events"].update_one(
        {"_id": event["_id"]}, {"$set": {"fanout_token": "a-dead-process", "fanout_lease_until": until}}
    )

    dispatcher = _dispatcher(app, settings)
    try:
        await dispatcher.drain(timeout_s=0.5)
        assert receiver.snapshot() == []  # held by another process: not claimable yet
        while datetime.now(UTC) < until + timedelta(seconds=0.1):
            await dispatcher.drain(timeout_s=0.2)
        await dispatcher.drain(timeout_s=10)
    finally:
        await dispatcher.close()
    assert [r.headers["webhook-id"] for r in receiver.snapshot()] == [str(event["_id"])]


async def test_a_claimed_event_is_sent_only_to_the_endpoints_whose_first_outcome_is_missing(
    app, settings, client, admin_headers, receiver, mongo
):
    recorded = await create_endpoint(client, admin_headers, receiver.url + "/recorded")
    missing = await create_endpoint(client, admin_headers, receiver.url + "/missing")
    await create_product(client, admin_headers)
    event = await _only_event(mongo)
    # A process died after storing one endpoint's first outcome and before the event left the outbox.
    now = datetime.now(UTC)
    await mongo["webhook_deliveries"].insert_one(
        {
            "_id": ObjectId(), "endpoint_id": ObjectId(recorded["id"]), "event_id": event["_id"],
            "event_type": event["type"], "event_created_at": event["created_at"], "status": "delivered",
            "next_attempt_at": None, "schedule_step": 0, "lease_until": datetime(1970, 1, 1, tzinfo=UTC),
            "lease_token": None, "delivered_at": now, "created_at": now, "updated_at": now,
            "attempts": [{"at": now, "status_code": 200, "error": None, "duration_ms": 1.0, "response": "ok",
                          "next_attempt_at": None}],
        }
    )  # fmt: skip

    dispatcher = _dispatcher(app, settings)
    try:
        await dispatcher.drain(timeout_s=10)
    finally:
        await dispatcher.close()
    assert [r.path for r in receiver.snapshot()] == ["/hook/missing"]
    assert [len(d["attempts"]) for d in await deliveries(client, admin_headers, recorded["id"])] == [1]
    assert [d["status"] for d in await deliveries(client, admin_headers, missing["id"])] == ["delivered"]
    assert "pending_fanout" not in await mongo["events"].find_one({"_id": event["_id"]})


async def test_a_dispatcher_stopped_while_its_round_reads_the_endpoints_hands_the_events_back(
    app, settings, client, admin_headers, receiver, mongo, monkeypatch
):
    """A shutdown arriving between taking the fresh events and holding their attempts loses none of them."""
    await create_endpoint(client, admin_headers, receiver.url)
    reading = asyncio.Event()
    read_endpoints = webhooks_repository.endpoints_for_dispatch

    async def slow_read(db):
        reading.set()
        await asyncio.sleep(30)  # the shutdown lands here, as it may on a loaded server
        return await read_endpoints(db)

    monkeypatch.setattr(webhooks_repository, "endpoints_for_dispatch", slow_read)
    first = _dispatcher(app, settings)
    run = asyncio.create_task(first.run())
    try:
        await create_product(client, admin_headers)
        await asyncio.wait_for(reading.wait(), timeout=10)
    finally:
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
    stored = await _only_event(mongo)
    assert stored["fanout_token"] == first.token
    assert stored["pending_fanout"] is True and stored["fanout_lease_until"] <= datetime.now(UTC)


async def test_a_dispatcher_shutting_down_hands_back_what_it_did_not_send(
    app, settings, client, admin_headers, receiver, mongo
):
    await create_endpoint(client, admin_headers, receiver.url)
    first = _dispatcher(app, settings)
    run = asyncio.create_task(first.run())
    try:
        # Recorded while ``first`` runs: leased to it and handed to it after the commit.
        receiver.behaviour = lambda _n, _h: (200, {}, b"ok", 2.5)  # longer than the test waits: nothing finishes
        await create_product(client, admin_headers)
        event = await _only_event(mongo)
        assert event["fanout_token"] == first.token
    finally:
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
    stored = await mongo["events"].find_one({"_id": event["_id"]})
    assert stored["pending_fanout"] is True and stored["fanout_lease_until"] <= datetime.now(UTC)

    receiver.behaviour = lambda _n, _h: (200, {}, b"ok", 0.0)
    second = _dispatcher(app, settings)
    try:
        await second.drain(timeout_s=10)
    finally:
        await second.close()
    assert str(event["_id"]) in {r.headers["webhook-id"] for r in receiver.accepted()}
