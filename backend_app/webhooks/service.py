"""Webhook endpoint rules: create, read, change, delete, rotate secrets; deliveries: list, retry, replay, test.

Every admin change of an endpoint is one transaction with its audit entry
(``webhook_endpoint.create`` / ``.update`` / ``.delete`` / ``.rotate_secret``),
never holding a secret: entries record the endpoint's public form, which has
none. The signing secret is returned by the creation and by ``rotate-secret``
only; no other view, log line or audit entry holds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession

from backend_app.audit import service as audit
from backend_app.core.cursors import ID_ORDER, SortOrder
from backend_app.core.db import MongoDatabase, run_in_transaction
from backend_app.core.errors import UnprocessableError
from backend_app.core.pages import PageMeta
from backend_app.core.pagination import PageParams
from backend_app.core.types import as_utc, oid
from backend_app.events import service as events
from backend_app.webhooks import repository, signing, urlguard
from backend_app.webhooks.documents import DeliveryDocument, EndpointDocument, PublicEndpoint, SigningKey
from backend_app.webhooks.exceptions import (
    DeliveryInFlightError,
    DeliveryNotFoundError,
    EndpointDisabledError,
    EndpointNotFoundError,
    ReplayTooLargeError,
    UnsafeWebhookUrlError,
)
from backend_app.webhooks.outcomes import subscribed
from backend_app.webhooks.schemas import (
    AttemptPublic,
    DeliveryPublic,
    EndpointCreate,
    EndpointPublic,
    EndpointUpdate,
    EndpointWithSecret,
    ReplayRequest,
    ReplayResult,
)

ENDPOINTS_SCOPE = "webhook_endpoints"
DELIVERIES_SCOPE = "webhook_deliveries"
#: Events one replay request may queue at most.
REPLAY_MAX = 10_000


def to_public(doc: Mapping[str, Any]) -> EndpointPublic:
    """A stored endpoint in its public form (no secret)."""
    return EndpointPublic(
        id=str(doc["_id"]),
        url=doc["url"],
        events=list(doc["events"]),
        description=doc.get("description"),
        status=doc["status"],
        disabled_reason=doc.get("disabled_reason"),
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
    )


def delivery_public(doc: Mapping[str, Any]) -> DeliveryPublic:
    """A stored delivery in its public form."""
    return DeliveryPublic(
        id=str(doc["_id"]),
        endpoint_id=str(doc["endpoint_id"]),
        event_id=str(doc["event_id"]),
        event_type=doc["event_type"],
        status=doc["status"],
        attempts=[AttemptPublic(**a) for a in doc.get("attempts", [])],
        next_attempt_at=doc.get("next_attempt_at") if doc["status"] == "pending" else None,
        created_at=doc["created_at"],
        delivered_at=doc.get("delivered_at"),
    )


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    """Which endpoint URLs are accepted: how hosts resolve, ``https`` only (production), loopback allowed (development)."""

    resolver: urlguard.Resolver
    https_only: bool
    allow_private: bool


async def check_url(url: str, *, policy: UrlPolicy) -> str:
    """Refuse a URL the dispatcher must not call (``webhooks.urlguard``); returns it.

    Raises:
        UnsafeWebhookUrlError: bad syntax, ``http`` in production, or a host that is or resolves to a refused address (422).
    """
    try:
        target = urlguard.parse(url, https_only=policy.https_only)
        await urlguard.check_destination(target, resolver=policy.resolver, allow_private=policy.allow_private)
    except urlguard.UnsafeUrlError as exc:
        raise UnsafeWebhookUrlError(str(exc)) from None
    return url


def _json(endpoint: EndpointPublic) -> dict[str, Any]:
    return endpoint.model_dump(mode="json")


async def create_endpoint(
    db: MongoDatabase,
    *,
    body: EndpointCreate,
    actor: str,
    policy: UrlPolicy,
) -> EndpointWithSecret:
    """Register an endpoint (``POST /webhooks/endpoints``), audited; the answer is the only one holding its secret.

    Raises:
        UnsafeWebhookUrlError: the URL is refused (422).
    """
    await check_url(body.url, policy=policy)
    now = datetime.now(UTC)
    secret = signing.new_secret()
    doc: EndpointDocument = {
        "_id": ObjectId(),
        "url": body.url,
        "events": body.events,
        "description": body.description,
        "status": "enabled",
        "disabled_reason": None,
        "signing_keys": [{"secret": secret, "created_at": now, "expires_at": None}],
        "created_at": now,
        "updated_at": now,
    }
    public = to_public(doc)

    async def work(session: AsyncClientSession) -> None:
        await repository.insert_endpoint(db, endpoint=doc, session=session)
        await _audit(
            db,
            session,
            actor=actor,
            action="webhook_endpoint.create",
            endpoint_id=public.id,
            before=None,
            after=_json(public),
        )

    await run_in_transaction(db.client, work)
    return EndpointWithSecret(**public.model_dump(), secret=secret)


async def _audit(
    db: MongoDatabase,
    session: AsyncClientSession,
    *,
    actor: str,
    action: str,
    endpoint_id: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    if before is not None and after is not None:
        before, after = audit.changed_fields(before, after)
    await audit.record(
        db, actor=actor, action=action, entity_type="webhook_endpoint", entity_id=endpoint_id,
        before=before, after=after, session=session,
    )  # fmt: skip


async def get_endpoint(db: MongoDatabase, *, endpoint_id: str) -> EndpointPublic:
    """One endpoint (no secret).

    Raises:
        EndpointNotFoundError: 404.
    """
    doc = await repository.get_endpoint(db, endpoint_id=oid(endpoint_id))
    if doc is None:
        raise EndpointNotFoundError(endpoint_id)
    return to_public(doc)


async def list_endpoints(db: MongoDatabase, *, page: PageParams) -> tuple[list[EndpointPublic], PageMeta]:
    """One page of endpoints in creation order (no secrets)."""
    window = page.window(scope=ENDPOINTS_SCOPE, filters={}, sort=ID_ORDER)
    docs, meta = window.finish(await repository.list_endpoints(db, window=window))
    return [to_public(d) for d in docs], meta


async def update_endpoint(
    db: MongoDatabase,
    *,
    endpoint_id: str,
    changes: EndpointUpdate,
    actor: str,
    policy: UrlPolicy,
) -> EndpointPublic:
    """Change the fields sent (``PATCH``), audited. ``status: enabled`` re-enables a disabled or failing endpoint.

    Raises:
        EndpointNotFoundError: 404.
        UnsafeWebhookUrlError: a new URL is refused (422).
    """
    sent = changes.model_dump(exclude_unset=True)
    if "url" in sent:
        await check_url(sent["url"], policy=policy)
    now = datetime.now(UTC)
    if sent.get("status") is not None:
        sent["disabled_reason"] = None if sent["status"] == "enabled" else f"disabled by {actor}"
    sent["updated_at"] = now
    endpoint_oid = oid(endpoint_id)

    async def work(session: AsyncClientSession) -> EndpointPublic:
        before = await repository.get_endpoint(db, endpoint_id=endpoint_oid, session=session)
        if before is None:
            raise EndpointNotFoundError(endpoint_id)
        after = await repository.update_endpoint(db, endpoint_id=endpoint_oid, changes=sent, session=session)
        assert after is not None
        public = to_public(after)
        await _audit(
            db,
            session,
            actor=actor,
            action="webhook_endpoint.update",
            endpoint_id=endpoint_id,
            before=_json(to_public(before)),
            after=_json(public),
        )
        return public

    return await run_in_transaction(db.client, work)


async def delete_endpoint(db: MongoDatabase, *, endpoint_id: str, actor: str) -> None:
    """Delete an endpoint and its deliveries (``DELETE``), audited.

    Raises:
        EndpointNotFoundError: 404.
    """
    endpoint_oid = oid(endpoint_id)

    async def work(session: AsyncClientSession) -> None:
        before = await repository.get_endpoint(db, endpoint_id=endpoint_oid, session=session)
        if before is None or not await repository.delete_endpoint(db, endpoint_id=endpoint_oid, session=session):
            raise EndpointNotFoundError(endpoint_id)
        await _audit(
            db,
            session,
            actor=actor,
            action="webhook_endpoint.delete",
            endpoint_id=endpoint_id,
            before=_json(to_public(before)),
            after=None,
        )

    await run_in_transaction(db.client, work)


async def rotate_secret(db: MongoDatabase, *, endpoint_id: str, actor: str) -> EndpointWithSecret:
    """Give the endpoint a new secret; the previous ones keep signing beside it for 24 h (``rotate-secret``), audited.

    Raises:
        EndpointNotFoundError: 404.
    """
    endpoint_oid = oid(endpoint_id)
    now = datetime.now(UTC)
    secret = signing.new_secret()
    expires = now + signing.ROTATION_OVERLAP

    async def work(session: AsyncClientSession) -> EndpointPublic:
        keys = await repository.signing_keys(db, endpoint_id=endpoint_oid, session=session)
        if keys is None:
            raise EndpointNotFoundError(endpoint_id)
        kept: list[SigningKey] = [
            {**k, "expires_at": k.get("expires_at") or expires}
            for k in keys
            if (until := k.get("expires_at")) is None or until.replace(tzinfo=UTC) > now
        ]
        new_keys: list[SigningKey] = [{"secret": secret, "created_at": now, "expires_at": None}, *kept]
        after = await repository.set_signing_keys(db, endpoint_id=endpoint_oid, keys=new_keys, now=now, session=session)
        assert after is not None
        await _audit(
            db, session, actor=actor, action="webhook_endpoint.rotate_secret", endpoint_id=endpoint_id,
            before=None, after={"previous_keys_valid_until": expires.isoformat()},
        )  # fmt: skip
        return to_public(after)

    public = await run_in_transaction(db.client, work)
    return EndpointWithSecret(**public.model_dump(), secret=secret)


async def _live_endpoint(db: MongoDatabase, endpoint_id: str) -> PublicEndpoint:
    doc = await repository.get_endpoint(db, endpoint_id=oid(endpoint_id))
    if doc is None:
        raise EndpointNotFoundError(endpoint_id)
    if doc["status"] == "disabled":
        raise EndpointDisabledError(endpoint_id)
    return doc


async def list_deliveries(
    db: MongoDatabase, *, endpoint_id: str, page: PageParams
) -> tuple[list[DeliveryPublic], PageMeta]:
    """One page of an endpoint's deliveries, newest first, each with its attempts.

    Raises:
        EndpointNotFoundError: 404.
    """
    await get_endpoint(db, endpoint_id=endpoint_id)
    window = page.window(scope=DELIVERIES_SCOPE, filters={"endpoint_id": endpoint_id}, sort=SortOrder.parse("-_id"))
    docs, meta = window.finish(await repository.list_deliveries(db, endpoint_id=oid(endpoint_id), window=window))
    return [delivery_public(d) for d in docs], meta


async def retry_delivery(db: MongoDatabase, *, delivery_id: str) -> DeliveryPublic:
    """Queue a delivery for an attempt now, with its retry schedule started again (any status).

    Raises:
        DeliveryNotFoundError: 404.
        EndpointDisabledError: its endpoint is disabled (409).
        DeliveryInFlightError: it is being sent right now (409).
    """
    doc = await repository.get_delivery(db, delivery_id=oid(delivery_id))
    if doc is None:
        raise DeliveryNotFoundError(delivery_id)
    await _live_endpoint(db, str(doc["endpoint_id"]))
    reset = await repository.reset_for_retry(db, delivery_id=doc["_id"], now=datetime.now(UTC))
    if reset is None:
        raise DeliveryInFlightError(delivery_id)
    return delivery_public(reset)


async def replay(db: MongoDatabase, *, endpoint_id: str, body: ReplayRequest) -> ReplayResult:
    """Queue again, for one endpoint, every kept event of ``[since, until)`` it subscribes to (optionally of ``types``).

    Events from before the endpoint existed are included (a replay is asked
    for explicitly, e.g. to backfill a new receiver). A delivery being sent
    right now is left alone.

    Raises:
        EndpointNotFoundError: 404. EndpointDisabledError: 409.
        UnprocessableError: ``since`` not before ``until`` (422).
        ReplayTooLargeError: more than 10,000 events in the range (422).
    """
    since, until = as_utc(body.since), as_utc(body.until)
    if since >= until:
        raise UnprocessableError("since must be before until.", field=("body", "since"))
    endpoint = await _live_endpoint(db, endpoint_id)
    found = await events.events_between(db, since=since, until=until, types=body.types, limit=REPLAY_MAX + 1)
    if len(found) > REPLAY_MAX:
        raise ReplayTooLargeError(REPLAY_MAX)
    pairs = [(event, endpoint["_id"]) for event in found if subscribed(endpoint, event["type"])]
    queued = 0
    for start in range(0, len(pairs), 1000):
        queued += await repository.requeue_deliveries(db, pairs=pairs[start : start + 1000], now=datetime.now(UTC))
    return ReplayResult(queued=queued)


async def send_test(db: MongoDatabase, *, endpoint_id: str) -> DeliveryPublic:
    """Queue a ``ping`` event for this endpoint alone (``POST /webhooks/endpoints/{id}/test``); returns its delivery.

    Raises:
        EndpointNotFoundError: 404. EndpointDisabledError: 409.
    """
    endpoint = await _live_endpoint(db, endpoint_id)

    async def work(session: AsyncClientSession) -> DeliveryDocument:
        event = await events.record_ping(db, endpoint_id=endpoint_id, url=endpoint["url"], session=session)
        return await repository.insert_delivery(
            db, event=event, endpoint_id=endpoint["_id"], now=event["created_at"], session=session
        )

    return delivery_public(await run_in_transaction(db.client, work))


async def sweep_deliveries(db: MongoDatabase, *, cutoff: datetime) -> int:
    """Remove deliveries created before ``cutoff`` (the events retention sweep calls it); returns how many."""
    return await repository.delete_older_than(db, cutoff=cutoff)
