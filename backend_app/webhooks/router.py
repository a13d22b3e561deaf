"""HTTP routes of webhooks (admins only): endpoints, their deliveries, retries, replays and test pings."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response, status

from backend_app.auth.dependencies import AdminUser
from backend_app.core.config import AppSettings
from backend_app.core.db import Database
from backend_app.core.errors import problem_responses
from backend_app.core.pages import Page
from backend_app.core.pagination import Pagination
from backend_app.core.types import ObjectIdStr
from backend_app.webhooks import service, urlguard
from backend_app.webhooks.schemas import (
    DeliveryPublic,
    EndpointCreate,
    EndpointPublic,
    EndpointUpdate,
    EndpointWithSecret,
    ReplayRequest,
    ReplayResult,
)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

EndpointId = Annotated[ObjectIdStr, Path(description="The endpoint's 24-hex id.")]


def get_resolver(request: Request) -> urlguard.Resolver:
    """FastAPI dependency: how endpoint hosts are resolved (the system resolver; tests install their own)."""
    return request.app.state.webhook_resolver


Resolver = Annotated[urlguard.Resolver, Depends(get_resolver)]


def url_policy(settings: AppSettings, resolver: Resolver) -> service.UrlPolicy:
    """FastAPI dependency: which endpoint URLs are accepted (``https`` only in production; loopback only when allowed)."""
    return service.UrlPolicy(
        resolver=resolver,
        https_only=settings.app_env == "production",
        allow_private=settings.webhook_allow_private_urls,
    )


Policy = Annotated[service.UrlPolicy, Depends(url_policy)]


@router.post(
    "/endpoints",
    status_code=status.HTTP_201_CREATED,
    response_model=EndpointWithSecret,
    responses=problem_responses(401, 403, 422, 500),
    summary="Register a webhook endpoint (admin); the answer holds its signing secret, shown only now",
)
async def create_endpoint(body: EndpointCreate, db: Database, admin: AdminUser, policy: Policy) -> EndpointWithSecret:
    """``{"url", "events": [...] | ["*"], "description"?}`` → the endpoint with ``secret`` (``whsec_...``).

    The URL must be ``https`` in production and its host must be and resolve to
    public addresses only (422 ``unsafe_webhook_url``).
    """
    return await service.create_endpoint(db, body=body, actor=admin.username, policy=policy)


@router.get(
    "/endpoints",
    response_model=Page[EndpointPublic],
    responses=problem_responses(400, 401, 403, 422, 500),
    summary="List webhook endpoints (admin)",
)
async def list_endpoints(db: Database, page: Pagination, _admin: AdminUser) -> Page[EndpointPublic]:
    """Endpoints in creation order, pages of docs/contract.md §1-2; never their secrets."""
    data, meta = await service.list_endpoints(db, page=page)
    return Page[EndpointPublic](data=data, page=meta)


@router.get(
    "/endpoints/{endpoint_id}",
    response_model=EndpointPublic,
    responses=problem_responses(401, 403, 404, 422, 500),
    summary="Read one webhook endpoint (admin)",
)
async def get_endpoint(endpoint_id: EndpointId, db: Database, _admin: AdminUser) -> EndpointPublic:
    """One endpoint, without its secret."""
    return await service.get_endpoint(db, endpoint_id=endpoint_id)


@router.patch(
    "/endpoints/{endpoint_id}",
    response_model=EndpointPublic,
    responses=problem_responses(401, 403, 404, 422, 500),
    summary="Change a webhook endpoint (admin)",
)
async def update_endpoint(
    endpoint_id: EndpointId, body: EndpointUpdate, db: Database, admin: AdminUser, policy: Policy
) -> EndpointPublic:
    """Change ``url``, ``events``, ``description`` or ``status`` (``enabled``/``disabled``); audited."""
    return await service.update_endpoint(db, endpoint_id=endpoint_id, changes=body, actor=admin.username, policy=policy)


@router.delete(
    "/endpoints/{endpoint_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(401, 403, 404, 422, 500),
    summary="Delete a webhook endpoint and its deliveries (admin)",
)
async def delete_endpoint(endpoint_id: EndpointId, db: Database, admin: AdminUser) -> Response:
    """204; audited."""
    await service.delete_endpoint(db, endpoint_id=endpoint_id, actor=admin.username)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/endpoints/{endpoint_id}/rotate-secret",
    response_model=EndpointWithSecret,
    responses=problem_responses(401, 403, 404, 422, 500),
    summary="Give a webhook endpoint a new signing secret (admin); the old one signs beside it for 24 h",
)
async def rotate_secret(endpoint_id: EndpointId, db: Database, admin: AdminUser) -> EndpointWithSecret:
    """The endpoint with its new ``secret``, shown only now; audited."""
    return await service.rotate_secret(db, endpoint_id=endpoint_id, actor=admin.username)


@router.get(
    "/endpoints/{endpoint_id}/deliveries",
    response_model=Page[DeliveryPublic],
    responses=problem_responses(400, 401, 403, 404, 422, 500),
    summary="List an endpoint's deliveries and their attempts, newest first (admin)",
)
async def list_deliveries(
    endpoint_id: EndpointId, db: Database, page: Pagination, _admin: AdminUser
) -> Page[DeliveryPublic]:
    """Each delivery with its attempts: time, status code or error, duration, first 1 KiB of the answer, next attempt."""
    data, meta = await service.list_deliveries(db, endpoint_id=endpoint_id, page=page)
    return Page[DeliveryPublic](data=data, page=meta)


@router.post(
    "/endpoints/{endpoint_id}/test",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryPublic,
    responses=problem_responses(401, 403, 404, 409, 422, 500),
    summary="Send a ping event to one endpoint (admin)",
)
async def send_test(endpoint_id: EndpointId, db: Database, _admin: AdminUser) -> DeliveryPublic:
    """202 with the queued delivery of a ``ping`` event; 409 if the endpoint is disabled."""
    return await service.send_test(db, endpoint_id=endpoint_id)


@router.post(
    "/endpoints/{endpoint_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReplayResult,
    responses=problem_responses(401, 403, 404, 409, 422, 500),
    summary="Queue again the events of a time range for one endpoint (admin)",
)
async def replay(endpoint_id: EndpointId, body: ReplayRequest, db: Database, _admin: AdminUser) -> ReplayResult:
    """``{"since", "until", "types"?}``: events created in ``[since, until)`` the endpoint subscribes to."""
    return await service.replay(db, endpoint_id=endpoint_id, body=body)


@router.post(
    "/deliveries/{delivery_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryPublic,
    responses=problem_responses(401, 403, 404, 409, 422, 500),
    summary="Attempt a delivery again now (admin)",
)
async def retry_delivery(
    delivery_id: Annotated[ObjectIdStr, Path(description="The delivery's 24-hex id.")], db: Database, _admin: AdminUser
) -> DeliveryPublic:
    """202 with the delivery queued now (its schedule starts again); 409 while it is in flight or its endpoint is disabled."""
    return await service.retry_delivery(db, delivery_id=delivery_id)
