"""Application settings, read from the environment and an optional ``.env`` file.

Every setting is documented in ``config/.env.example``; the names follow
``../shared/spec/API.md`` §8.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import logging

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MONGODB_URI = "mongodb://127.0.0.1:27017"
#: Development-only signing key; refused in production (spec §8). Never use it on a server.
DEV_JWT_SECRET = "dev-only-insecure-secret-change-me-0123456789"  # noqa: S105 - documented dev default
MIN_JWT_SECRET_BYTES = 32

logger = logging.getLogger(__name__)


class Settings(BaseSettings):
    """Typed configuration of one storefront process.

    Values come from environment variables (case-insensitive) and then from a
    ``.env`` file in the working directory. ``MONGODB_URI`` also accepts the
    alias ``DATABASE_URL``.

    Raises:
        pydantic.ValidationError: a value has the wrong type, or (in
            ``production``) a required setting is missing (spec §8).
    """

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    app_env: Literal["development", "production", "test"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)

    mongodb_uri: str | None = Field(
        default=None, validation_alias=AliasChoices("MONGODB_URI", "DATABASE_URL", "mongodb_uri")
    )
    mongodb_db: str = "storefront"
    #: Server-side time limit of list queries, in milliseconds (spec §4).
    mongodb_max_time_ms: int = Field(default=2000, ge=1)
    #: How long the driver waits to find a server before failing a call, in ms.
    mongodb_server_selection_timeout_ms: int = Field(default=5000, ge=1)

    #: HMAC key signing JWTs (and cursors). Required, ≥ 32 bytes, in production.
    jwt_secret: SecretStr | None = None
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    jwt_issuer: str = "storefront"
    jwt_audience: str = "storefront-api"
    #: Lifetime of access tokens, in seconds (spec §3: 15 min).
    access_token_ttl_seconds: int = Field(default=15 * 60, ge=60)
    #: Lifetime of refresh tokens, in seconds (spec §3: 7 days).
    refresh_token_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)

    log_level: str = "INFO"
    log_dir: str = "logs"

    @property
    def effective_mongodb_uri(self) -> str:
        """The URI the app connects to: ``MONGODB_URI`` or the local default."""
        return self.mongodb_uri or DEFAULT_MONGODB_URI

    @property
    def signing_key(self) -> str:
        """The JWT/cursor HMAC key: ``JWT_SECRET``, or the dev default outside production."""
        return self.jwt_secret.get_secret_value() if self.jwt_secret else DEV_JWT_SECRET

    @model_validator(mode="after")
    def _production_guards(self) -> Settings:
        if self.app_env == "production":
            if not self.mongodb_uri:
                raise ValueError(
                    "MONGODB_URI (or DATABASE_URL) must be set when APP_ENV=production; "
                    "point it at a MongoDB replica set or Atlas cluster."
                )
            secret = self.jwt_secret.get_secret_value() if self.jwt_secret else ""
            if len(secret.encode()) < MIN_JWT_SECRET_BYTES:
                raise ValueError(
                    f"JWT_SECRET must be set to at least {MIN_JWT_SECRET_BYTES} bytes when APP_ENV=production; "
                    "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
                )
        elif self.jwt_secret is None and self.app_env == "development":
            logger.warning("JWT_SECRET is not set: using the insecure development secret (never in production)")
        return self


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once (``Settings()`` on first call)."""
    return Settings()
