"""Request and response models of the auth routes (RFC 6749 §5.1 token response)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator, model_validator

from backend_app.users.schemas import check_password_bytes


class LoginRequest(BaseModel):
    """Body of ``POST /auth/login``: ``{"username" | "email", "password"}`` (exactly one of the first two)."""

    model_config = ConfigDict(extra="forbid")

    username: str | None = Field(default=None, min_length=1, max_length=32, examples=["user_1"])
    email: EmailStr | None = None
    password: str = Field(examples=["correct horse battery"], description="At most 72 UTF-8 bytes.")

    @field_validator("password")
    @classmethod
    def _password_size(cls, value: str) -> str:
        return check_password_bytes(value, min_bytes=1)

    @model_validator(mode="after")
    def _one_identifier(self) -> LoginRequest:
        if (self.username is None) == (self.email is None):
            raise ValueError("give exactly one of 'username' or 'email'")
        return self


class TokenPair(BaseModel):
    """A successful token response (RFC 6749 §5.1): bearer access token plus rotating refresh token."""

    access_token: str = Field(description="JWT to send as `Authorization: Bearer <token>`.")
    refresh_token: str = Field(description="JWT for `POST /auth/refresh`; single use (rotated).")
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - a token type, not a secret
    expires_in: int = Field(description="Lifetime of the access token, in seconds.", examples=[900])


class RefreshRequest(BaseModel):
    """Body of ``POST /auth/refresh`` and ``POST /auth/logout``: ``{"refresh_token"}``."""

    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=1, max_length=4096)


class PasswordChange(BaseModel):
    """Body of ``POST /auth/password``: the current password and a new one (8..72 UTF-8 bytes)."""

    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(description="At most 72 UTF-8 bytes.", examples=["correct horse battery"])
    new_password: str = Field(description="8..72 UTF-8 bytes.", examples=["a new long passphrase"])

    @field_validator("current_password")
    @classmethod
    def _current_size(cls, value: str) -> str:
        return check_password_bytes(value, min_bytes=1)

    @field_validator("new_password")
    @classmethod
    def _new_size(cls, value: str) -> str:
        return check_password_bytes(value)


class SessionsRevoked(BaseModel):
    """Answer of ``POST /auth/sessions/revoke-others``: how many other live sessions were ended."""

    revoked: int = Field(ge=0, description="Sessions ended (their refresh and access tokens stop working).")
