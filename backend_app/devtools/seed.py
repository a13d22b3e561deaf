"""Seed users with live logins and order histories, for tests and benchmarks (no bcrypt per user, no HTTP round trip)."""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from bson import ObjectId

from backend_app.auth import service as auth_service
from backend_app.core.db import MongoDatabase
from backend_app.orders import repository as orders_repository
from backend_app.orders.documents import OrderDocument
from backend_app.orders.schemas import OrderStatus
from backend_app.users import repository as users_repository
from backend_app.users.schemas import Role, UserPublic
from config import Settings


async def seed_user(
    db: MongoDatabase, settings: Settings, *, username: str, role: Role, password_hash: str
) -> dict[str, str]:
    """Store a user (``<username>@example.com``) and start a login for it, as ``POST /auth/login`` would.

    Args:
        password_hash: a bcrypt hash computed once by the caller and shared by seeded users.

    Returns:
        ``{"Authorization": "Bearer <access token>"}`` for that login.

    Raises:
        pymongo.errors.DuplicateKeyError: the username or email exists.
    """
    doc = await users_repository.insert_user(
        db, username=username, email=f"{username}@example.com", password_hash=password_hash, full_name=None, role=role
    )
    pair = await auth_service.start_session(db, settings, user=UserPublic.model_validate(doc))
    return {"Authorization": f"Bearer {pair.access_token}"}


async def seed_order_history(
    db: MongoDatabase,
    *,
    user_id: str,
    count: int,
    product_id: ObjectId,
    product_name: str = "Seeded product",
    newest: datetime | None = None,
    spacing: timedelta = timedelta(minutes=30),
    statuses: Sequence[OrderStatus] = ("completed", "cancelled", "expired"),
) -> list[ObjectId]:
    """Insert ``count`` past orders of ``user_id`` straight into ``orders``, one ``spacing`` apart.

    The newest is at ``newest`` (default: one minute ago); each order's ``_id``
    carries its creation second (as the driver's would), with random low bytes.
    Statuses cycle through ``statuses`` (terminal ones by default: seeded
    orders hold no stock reservation). No stock is taken: a history for list
    benchmarks and tests, not a sale.

    Returns:
        the ``_id`` s, oldest first.
    """
    end = newest or datetime.now(UTC) - timedelta(minutes=1)
    docs: list[OrderDocument] = []
    for i in range(count):
        when = end - spacing * (count - 1 - i)
        line = orders_repository.NewOrderLine(
            product_id=product_id, name=product_name, size="m", qty=1, unit_price=Decimal("9.50"), taken={"m": 1}
        )
        doc = orders_repository.new_order_document(
            user_id=user_id, placed_by=user_id, lines=[line], total=Decimal("9.50"), now=when
        )
        doc["status"] = statuses[i % len(statuses)]
        doc["_id"] = ObjectId(struct.pack(">I", int(when.timestamp())) + os.urandom(8))
        docs.append(doc)
    for start in range(0, len(docs), 1000):
        chunk = cast("list[dict[str, Any]]", docs[start : start + 1000])  # ``db[...]`` takes plain dicts
        await db[orders_repository.COLLECTION].insert_many(chunk, ordered=False)
    return [doc["_id"] for doc in docs]
