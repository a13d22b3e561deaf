"""Seed users with live logins, for tests and benchmarks (no bcrypt per user, no HTTP round trip)."""

from __future__ import annotations

from backend_app.auth import service as auth_service
from backend_app.core.db import MongoDatabase
from backend_app.users import repository as users_repository
from backend_app.users.schemas import UserPublic
from config import Settings


async def seed_user(
    db: MongoDatabase, settings: Settings, *, username: str, role: str, password_hash: str
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
