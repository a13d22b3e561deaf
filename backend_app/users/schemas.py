"""User models. ``UserPublic`` never has a password or hash field."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from backend_app.core.security import MAX_PASSWORD_BYTES, MIN_PASSWORD_BYTES

Role = Literal["user", "admin"]

#: The user id of URLs, ``userId`` and the token ``sub``; it never changes.
Username = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{2,31}$", examples=["user_1"])]


def check_password_bytes(value: str, *, min_bytes: int = MIN_PASSWORD_BYTES) -> str:
    """Accept ``min_bytes``..72 UTF-8 bytes (bcrypt's limit); raise ``ValueError`` otherwise (→ 422).

    New passwords need 8 bytes; logins pass ``min_bytes=1``, since a
    short password there is simply wrong (401), while a long one could never
    be checked at all.
    """
    size = len(value.encode("utf-8"))
    if size < min_bytes or size > MAX_PASSWORD_BYTES:
        raise ValueError(f"password must be {min_bytes}..{MAX_PASSWORD_BYTES} UTF-8 bytes, got {size}")
    return value


class UserCreate(BaseModel):
    """Body of ``POST /auth/register``; unknown fields such as ``role`` → 422 (no mass assignment)."""

    model_config = ConfigDict(extra="forbid")

    username: Username
    email: EmailStr
    password: str = Field(description="8..72 UTF-8 bytes.", examples=["correct horse battery"])
    full_name: str | None = Field(default=None, max_length=200)

    @field_validator("password")
    @classmethod
    def _password_size(cls, value: str) -> str:
        return check_password_bytes(value)

    @field_validator("email")
    @classmethod
    def _lower_email(cls, value: str) -> str:
        return value.lower()


class UserUpdate(BaseModel):
    """Body of ``PATCH /users/{username}`` (admin): ``role`` and/or ``is_active``."""

    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    is_active: bool | None = None


class UserPublic(BaseModel):
    """A user as the API shows it: no password, no hash, ever."""

    username: str
    email: str
    full_name: str | None = None
    role: Role
    is_active: bool
    created_at: datetime

    @property
    def is_admin(self) -> bool:
        """Whether this user has the ``admin`` role."""
        return self.role == "admin"
