"""docs/contract.md §3 "Who may do what", row by row: anonymous, user, another user, admin.

Each case runs against a fresh database holding an admin (``root_admin``), two
shoppers (``alice``, ``bob``), one product and one order of ``bob``. The table is
complete: every row's route must exist, and every route the app publishes must
have a row or be one of the public routes listed in ``PUBLIC_ROUTES``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import pytest
from fastapi import FastAPI

from tests.support.helpers import assert_problem, create_product

pytestmark = pytest.mark.asyncio

Actor = Literal["anonymous", "alice", "bob", "admin"]
#: ``"allowed"``: authorization passed, whatever the route then answers (not 401/403, not a 5xx).
Expected = int | Literal["allowed"]


@dataclass(frozen=True)
class Case:
    """One cell of the table: ``actor`` calls ``method path`` (placeholders filled in) and gets ``expected``."""

    row: str
    method: str
    path: str
    actor: Actor
    expected: Expected
    body: dict[str, Any] | None = field(default=None)

    @property
    def id(self) -> str:
        return f"{self.method} {self.path} as {self.actor}"


PRODUCT_BODY = {"name": "Boots", "price": 80.0, "sizes": [{"size": "m", "quantity": 5}]}
ORDER_FOR_ALICE = {"userId": "alice", "items": [{"productId": "{product_id}", "qty": 1}]}
ORDER_FOR_BOB = {"userId": "bob", "items": [{"productId": "{product_id}", "qty": 1}]}
ORDER_FOR_SELF = {"items": [{"productId": "{product_id}", "qty": 1}]}
NO_ID = "{no_id}"


def _admin_only(
    row: str, method: str, path: str, body: dict[str, Any] | None = None, ok: Expected = "allowed"
) -> list[Case]:
    return [
        Case(row, method, path, "anonymous", 401, body),
        Case(row, method, path, "alice", 403, body),
        Case(row, method, path, "admin", ok, body),
    ]


CASES: list[Case] = [
    # GET /products, GET /products/{id}: everyone.
    *[Case("catalog reads", "GET", "/products", actor, 200) for actor in ("anonymous", "alice", "admin")],
    *[Case("catalog reads", "GET", "/products/{product_id}", actor, 200) for actor in ("anonymous", "alice", "admin")],
    # Catalog writes: admins.
    *_admin_only("catalog writes", "POST", "/products", PRODUCT_BODY, ok=201),
    *_admin_only("catalog writes", "PUT", "/products/{product_id}", PRODUCT_BODY),
    *_admin_only("catalog writes", "PATCH", "/products/{product_id}", {"price": 12.5}),
    *_admin_only("catalog writes", "DELETE", "/products/{product_id}"),
    *_admin_only("catalog writes", "PUT", "/products/{product_id}/quantity", {"size": "m", "quantity": 25}),
    *_admin_only("catalog writes", "POST", "/products/batch"),
    # POST /orders: own userId (or omitted) for users, any for admins.
    Case("place order", "POST", "/orders", "anonymous", 401, ORDER_FOR_ALICE),
    Case("place order", "POST", "/orders", "alice", 201, ORDER_FOR_ALICE),
    Case("place order", "POST", "/orders", "alice", 201, ORDER_FOR_SELF),
    Case("place order", "POST", "/orders", "alice", 403, ORDER_FOR_BOB),
    Case("place order", "POST", "/orders", "admin", 201, ORDER_FOR_BOB),
    # A user's orders: own only; admins any.
    Case("read orders", "GET", "/orders/bob", "anonymous", 401),
    Case("read orders", "GET", "/orders/bob", "bob", 200),
    Case("read orders", "GET", "/orders/bob", "alice", 403),
    Case("read orders", "GET", "/orders/bob", "admin", 200),
    Case("read orders", "GET", "/orders/bob/{order_id}", "anonymous", 401),
    Case("read orders", "GET", "/orders/bob/{order_id}", "bob", "allowed"),
    Case("read orders", "GET", "/orders/bob/{order_id}", "alice", 403),
    Case("read orders", "GET", "/orders/bob/{order_id}", "admin", "allowed"),
    # Order status: owner may cancel; other users may not touch it; admins may.
    Case("order status", "PATCH", "/orders/bob/{order_id}", "anonymous", 401, {"status": "cancelled"}),
    Case("order status", "PATCH", "/orders/bob/{order_id}", "bob", "allowed", {"status": "cancelled"}),
    Case("order status", "PATCH", "/orders/bob/{order_id}", "alice", 403, {"status": "cancelled"}),
    Case("order status", "PATCH", "/orders/bob/{order_id}", "admin", "allowed", {"status": "completed"}),
    # GET /orders: own orders for users, all for admins.
    Case("all orders", "GET", "/orders", "anonymous", 401),
    Case("all orders", "GET", "/orders", "alice", 200),
    Case("all orders", "GET", "/orders", "admin", 200),
    # Dashboard and user management: admins.
    *_admin_only("admin areas", "GET", "/dashboard/summary", ok=200),
    *_admin_only("admin areas", "GET", "/users", ok=200),
    *_admin_only("admin areas", "PATCH", "/users/bob", {"role": "user"}, ok=200),
    *_admin_only("admin areas", "GET", "/audit", ok=200),
    # The caller's own account and sessions: any signed-in user.
    *[
        Case("own account", "GET", "/auth/me", actor, expected)
        for actor, expected in (("anonymous", 401), ("alice", 200))
    ],
    *[
        Case("own account", "POST", path, actor, expected)
        for path in ("/auth/password", "/auth/sessions/revoke-others")
        for actor, expected in (("anonymous", 401), ("alice", "allowed"))
    ],
    # Events feed and webhooks: admins (ids that do not exist: an admin gets past authorization to a 404).
    *_admin_only("events", "GET", "/events", ok=200),
    *_admin_only("events", "GET", "/events/" + NO_ID),
    *_admin_only("webhooks", "POST", "/webhooks/endpoints", {"url": "https://127.0.0.1/hook", "events": ["*"]}),
    *_admin_only("webhooks", "GET", "/webhooks/endpoints", ok=200),
    *_admin_only("webhooks", "GET", "/webhooks/endpoints/" + NO_ID),
    *_admin_only("webhooks", "PATCH", "/webhooks/endpoints/" + NO_ID, {"description": "x"}),
    *_admin_only("webhooks", "DELETE", "/webhooks/endpoints/" + NO_ID),
    *_admin_only("webhooks", "POST", f"/webhooks/endpoints/{NO_ID}/rotate-secret"),
    *_admin_only("webhooks", "GET", f"/webhooks/endpoints/{NO_ID}/deliveries"),
    *_admin_only("webhooks", "POST", f"/webhooks/endpoints/{NO_ID}/test"),
    *_admin_only(
        "webhooks",
        "POST",
        f"/webhooks/endpoints/{NO_ID}/replay",
        {"since": "2026-01-01T00:00:00Z", "until": "2026-01-02T00:00:00Z"},
    ),
    *_admin_only("webhooks", "POST", f"/webhooks/deliveries/{NO_ID}/retry"),
]


#: Routes called without a bearer token (``/auth/refresh`` and ``/auth/logout`` carry a refresh
#: token in the body instead); their answers are tested where they live.
PUBLIC_ROUTES = {
    ("GET", "/health"),
    ("GET", "/health/live"),
    ("GET", "/health/ready"),
    ("POST", "/auth/register"),
    ("POST", "/auth/login"),
    ("POST", "/auth/token"),
    ("POST", "/auth/refresh"),
    ("POST", "/auth/logout"),
}


def _shape(path: str) -> str:
    """A path template with its parameters blanked (``/orders/bob/{order_id}`` → ``/orders/{}/{}``)."""
    shape = re.sub(r"\{[^}]+\}", "{}", path)
    return re.sub(r"^/orders/bob", "/orders/{}", shape).replace("/users/bob", "/users/{}")


def _published_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Every ``(METHOD, path shape)`` in the app's OpenAPI document."""
    return {
        (method.upper(), _shape(route_path))
        for route_path, operations in app.openapi()["paths"].items()
        for method in operations
    }


async def test_every_published_route_has_a_row_and_every_row_a_route(app: FastAPI) -> None:
    published = _published_routes(app)
    in_table = {(case.method, _shape(case.path)) for case in CASES}
    public = {(method, _shape(path)) for method, path in PUBLIC_ROUTES}
    assert published - in_table - public == set(), "routes with no row in the access table"
    assert in_table - published == set(), "rows whose route the app no longer has"
    assert public - published == set(), "public routes the app no longer has"
    assert in_table & public == set(), "a public route needs no row"


def _fill(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, dict):
        return {k: _fill(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, names) for v in value]
    return value


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
async def test_who_may_do_what(
    case: Case,
    app: FastAPI,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    alice: dict[str, str],
    bob: dict[str, str],
) -> None:
    product_id = await create_product(client, admin_headers, name="Shirt", sizes=[{"size": "m", "quantity": 50}])
    placed = await client.post("/orders", json={"items": [{"productId": product_id, "qty": 1}]}, headers=bob)
    assert placed.status_code == 201, placed.text
    names = {"product_id": product_id, "order_id": placed.json()["id"], "no_id": "0" * 24}
    headers = {"anonymous": {}, "alice": alice, "bob": bob, "admin": admin_headers}[case.actor]

    response = await client.request(case.method, _fill(case.path, names), json=_fill(case.body, names), headers=headers)

    if case.expected == 401:
        assert_problem(response, 401, "not_authenticated")
        assert response.headers["www-authenticate"].startswith("Bearer")
    elif case.expected == 403:
        assert_problem(response, 403, "forbidden")
    elif case.expected == "allowed":
        assert response.status_code not in (401, 403) and response.status_code < 500, response.text
    else:
        assert response.status_code == case.expected, response.text


async def test_omitted_user_id_orders_for_the_caller(
    client: httpx.AsyncClient, admin_headers: dict[str, str], alice: dict[str, str], bob: dict[str, str]
) -> None:
    product_id = await create_product(client, admin_headers)
    placed = await client.post("/orders", json={"items": [{"productId": product_id, "qty": 2}]}, headers=alice)
    assert placed.status_code == 201, placed.text
    mine = (await client.get("/orders/alice", headers=alice)).json()["data"]
    assert [order["id"] for order in mine] == [placed.json()["id"]]
    assert (await client.get("/orders/bob", headers=bob)).json()["data"] == []


async def test_refused_order_takes_no_stock(
    client: httpx.AsyncClient, admin_headers: dict[str, str], alice: dict[str, str]
) -> None:
    product_id = await create_product(client, admin_headers, sizes=[{"size": "m", "quantity": 3}])
    body = {"userId": "bob", "items": [{"productId": product_id, "qty": 3}]}
    assert_problem(await client.post("/orders", json=body, headers=alice), 403, "forbidden")
    product = (await client.get(f"/products/{product_id}")).json()
    assert product["stock"] == 3


async def test_admin_orders_for_another_user(
    client: httpx.AsyncClient, admin_headers: dict[str, str], bob: dict[str, str]
) -> None:
    product_id = await create_product(client, admin_headers)
    body = {"userId": "bob", "items": [{"productId": product_id, "qty": 1}]}
    placed = await client.post("/orders", json=body, headers=admin_headers)
    assert placed.status_code == 201
    bobs = (await client.get("/orders/bob", headers=bob)).json()["data"]
    assert [order["id"] for order in bobs] == [placed.json()["id"]]
