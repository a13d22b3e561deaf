"""The settings of each subsystem: one model per group, each field with its description.

:class:`config.settings.Settings` combines the groups into the one flat class
callers use; ``config/.env.example`` lists every setting in the same groups and
order. The names are the ones the API contract promises. Checks of one field
live with the field; checks across groups (the production guards) live with
``Settings``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from limits import parse_many
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

DEFAULT_MONGODB_URI = "mongodb://127.0.0.1:27017"
#: Development-only signing key; refused in production. Never use it on a server.
DEV_JWT_SECRET = "dev-only-insecure-secret-change-me-0123456789"  # noqa: S105 - documented dev default
MIN_JWT_SECRET_BYTES = 32
#: Shortest ``JWT_SECRET`` per ``JWT_ALGORITHM`` in production: the HMAC's output size (RFC 7518 §3.2).
MIN_JWT_SECRET_BYTES_BY_ALGORITHM = {"HS256": 32, "HS384": 48, "HS512": 64}
#: Rate-limit storages the app supports (``limits`` storage URI schemes).
RATE_LIMIT_STORAGE_SCHEMES = ("memory", "redis", "rediss", "redis+unix", "valkey", "valkeys")
#: URI schemes of ``CACHE_URI`` (redis-py's ``Redis.from_url``).
CACHE_URI_SCHEMES = ("redis", "rediss", "unix")

#: A comma-separated environment value read as a list (``A,B`` → ``["A", "B"]``; empty → ``[]``).
CommaList = Annotated[list[str], NoDecode]


def _split_commas(value: object) -> object:
    """``"a, b,"`` → ``["a", "b"]``; anything but a string unchanged."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _check_limit(value: str) -> str:
    """``value`` if it is a ``limits`` rate limit such as ``120/minute``; else ``ValueError``."""
    try:
        parse_many(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a rate limit; write e.g. '120/minute' or '10/minute;100/hour'") from None
    return value


class ServerSettings(BaseModel):
    """The environment and the processes: where ``serve`` listens, how many workers, demo data."""

    app_env: Literal["development", "production", "test"] = Field(
        default="development",
        description="development, production or test; production refuses unsafe settings.",
    )
    host: str = Field(default="127.0.0.1", description="Interface ``python -m backend_app serve`` listens on.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port ``python -m backend_app serve`` listens on.")
    web_concurrency: int = Field(
        default=1, ge=1, description="Worker processes of ``python -m backend_app serve`` (uvicorn ``--workers``)."
    )
    demo_data: bool = Field(
        default=True,
        description="``python -m backend_app dev`` loads the demo catalog (``backend_app/demo``) into an EMPTY "
        "embedded database; never with a configured ``MONGODB_URI``, never in ``serve``. ``false`` starts empty.",
    )


class DatabaseSettings(BaseModel):
    """The MongoDB connection and its time limits."""

    # Keyword arguments use the field name, whatever aliases the environment offers.
    model_config = ConfigDict(populate_by_name=True)

    mongodb_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MONGODB_URI", "DATABASE_URL", "mongodb_uri"),
        description="A MongoDB >= 6 replica set or Atlas cluster (alias ``DATABASE_URL``); unset: the local default.",
    )
    mongodb_db: str = Field(default="storefront", description="Name of the database the app uses.")
    mongodb_max_time_ms: int = Field(default=2000, ge=1, description="Server-side time limit of list queries, in ms.")
    mongodb_server_selection_timeout_ms: int = Field(
        default=5000, ge=1, description="How long the driver waits to find a server before failing a call, in ms."
    )

    @property
    def effective_mongodb_uri(self) -> str:
        """The URI the app connects to: ``MONGODB_URI`` or the local default."""
        return self.mongodb_uri or DEFAULT_MONGODB_URI


class AuthSettings(BaseModel):
    """Token signing and lifetimes, and the per-process cache of login sessions."""

    jwt_secret: SecretStr | None = Field(
        default=None,
        description="HMAC key signing JWTs and cursors; required in production, at least as long as "
        "``JWT_ALGORITHM``'s output (32/48/64 bytes).",
    )
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = Field(default="HS256", description="JWT signing algorithm.")
    jwt_issuer: str = Field(default="storefront", description="``iss`` claim of issued tokens.")
    jwt_audience: str = Field(default="storefront-api", description="``aud`` claim of issued tokens.")
    access_token_ttl_seconds: int = Field(
        default=15 * 60, ge=60, description="Lifetime of access tokens, in seconds (15 min by default)."
    )
    refresh_token_ttl_seconds: int = Field(
        default=7 * 24 * 3600,
        ge=60,
        description="Lifetime of refresh tokens, in seconds (7 days by default).",
    )
    session_max_age_days: float = Field(
        default=30, gt=0, description="Longest life of one login's refresh chain, in days, however often refreshed."
    )
    session_cache_enabled: bool = Field(
        default=True,
        description="Serve the user and login session of authenticated requests from process memory, invalidated "
        "by a change stream on ``users`` and ``sessions`` (``auth.session_cache``); ``false``: read both on every "
        "request.",
    )
    session_cache_max_entries: int = Field(
        default=10_000, ge=1, description="Most login sessions cached per process (least recently used evicted first)."
    )
    session_cache_max_staleness_seconds: float = Field(
        default=0.8,
        gt=0.2,
        le=1.0,
        description="Longest a cached session is served without the change stream confirming it is current, in "
        "seconds: it bounds how long a revoked session still works on other processes, so at most 1 s.",
    )
    session_cache_ttl_seconds: float = Field(
        default=60.0, gt=0, description="Backstop: a cached session is re-read at least this often, in seconds."
    )

    @property
    def signing_key(self) -> str:
        """The JWT/cursor HMAC key: ``JWT_SECRET``, or the dev default outside production."""
        return self.jwt_secret.get_secret_value() if self.jwt_secret else DEV_JWT_SECRET


class HttpSettings(BaseModel):
    """HTTP hardening: CORS origins, trusted proxies, request body size."""

    allowed_origins: CommaList = Field(
        default_factory=list,
        description="Browser origins allowed by CORS, e.g. ``https://shop.example``; none by default.",
    )
    trusted_proxies: CommaList = Field(
        default_factory=list,
        description="Peers whose ``X-Forwarded-For`` / ``X-Forwarded-Proto`` are believed: IPs or CIDRs.",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=0, description="Largest accepted request body, in bytes; larger → 413 (1 MiB)."
    )

    @field_validator("allowed_origins", "trusted_proxies", mode="before")
    @classmethod
    def _split_lists(cls, value: object) -> object:
        return _split_commas(value)


class RateLimitSettings(BaseModel):
    """Request rate limits and the per-account throttle of failed sign-ins."""

    rate_limit_enabled: bool = Field(
        default=True, description="Rate limiting on/off; tests turn it off unless a test is about it."
    )
    rate_limit_default: str = Field(
        default="120/minute",
        description="Budget of each caller (user, or client IP when anonymous) over all routes; ``limits`` syntax.",
    )
    rate_limit_auth: str = Field(
        default="10/minute",
        description="Stricter budget shared by ``/auth/login``, ``/auth/token`` and ``/auth/register``.",
    )
    rate_limit_storage_uri: str = Field(
        default="memory://",
        description="Where counters live: ``memory://`` (one process) or ``redis://host:6379/0`` (shared).",
    )
    rate_limit_strategy: Literal["fixed-window", "moving-window", "sliding-window-counter"] = Field(
        default="fixed-window", description="Counting algorithm of the ``limits`` library."
    )
    signin_throttle_enabled: bool = Field(
        default=True, description="Per-account throttle of failed sign-ins on/off, whatever ``RATE_LIMIT_ENABLED``."
    )
    signin_failure_limit: str = Field(
        default="10/15minutes",
        description="Failed sign-ins allowed per account (normalised username) in a moving window; ``limits`` syntax.",
    )

    @field_validator("rate_limit_default", "rate_limit_auth", "signin_failure_limit")
    @classmethod
    def _parse_rate_limits(cls, value: str) -> str:
        return _check_limit(value)

    @field_validator("rate_limit_storage_uri")
    @classmethod
    def _storage_scheme(cls, value: str) -> str:
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if scheme not in RATE_LIMIT_STORAGE_SCHEMES:
            raise ValueError(f"RATE_LIMIT_STORAGE_URI must be memory:// or redis://host:port/db, got {value!r}")
        return value


class CatalogCacheSettings(BaseModel):
    """The server-side cache of ``GET /products`` pages (``products.page_store``)."""

    cache_enabled: bool = Field(
        default=True, description="Server-side cache of ``GET /products`` pages on/off; ETags and 304s work either way."
    )
    cache_max_entries: int = Field(
        default=1024, ge=1, description="Most pages the in-process cache holds (least recently used evicted first)."
    )
    cache_max_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=1024,
        description="Most bytes of pages (body + key) the in-process cache holds; a larger page is not cached.",
    )
    cache_ttl_seconds: int = Field(
        default=300,
        ge=1,
        description="Seconds a cached page lives at most, whatever the catalog version (bounds database edits).",
    )
    cache_uri: str | None = Field(
        default=None,
        description="``redis://host:6379/1``: keep pages in Redis, shared by every worker and host, not in process.",
    )
    cache_fill_wait_seconds: float = Field(
        default=2.0,
        ge=0,
        le=30,
        description="Redis cache only: seconds a miss waits, polling the cache, for another process computing the "
        "same page (single-flight across processes) before computing it itself.",
    )

    @field_validator("cache_uri")
    @classmethod
    def _cache_scheme(cls, value: str | None) -> str | None:
        if not value:
            return None
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if scheme not in CACHE_URI_SCHEMES:
            raise ValueError(f"CACHE_URI must be redis://host:port/db (or rediss://, unix://), got {value!r}")
        return value


class OrderSettings(BaseModel):
    """Order caps, expiry of pending orders, and forwarding to one placement leader."""

    order_max_pending: int = Field(
        default=10,
        ge=1,
        description="Most pending orders (stock reservations) one user may hold, counted for the order's owner "
        "whoever places it; one more → 409 ``too_many_pending_orders``.",
    )
    order_max_units_per_line: int = Field(
        default=100,
        ge=1,
        description="Most units of one product one order may take, its lines merged; more → 422 "
        "``too_many_units_per_line``.",
    )
    order_max_pending_units: int = Field(
        default=500,
        ge=1,
        description="Most units one user may hold across pending orders (the owner counts, whoever places the "
        "order); more → 409 ``too_many_pending_units``. Checked in the transaction that checks "
        "``order_max_pending``.",
    )
    order_pending_ttl_seconds: int = Field(
        default=86400,
        ge=0,
        description="A pending order older than this many seconds becomes ``expired`` and its stock returns; "
        "0 = never.",
    )
    order_sweep_interval_seconds: float = Field(
        default=60.0, gt=0, description="How often each process's sweeper looks for expired pending orders, in seconds."
    )
    order_forwarding: bool = Field(
        default=True,
        description="Send every order to one placement leader per database, elected by a lease in MongoDB, so the "
        "orders of all processes and hosts join the same batches (docs/architecture.md (Orders and stock)); ``false``: each "
        "process places its own orders.",
    )
    order_forward_host: str = Field(
        default="127.0.0.1",
        description="Address each process's internal placement endpoint listens on (ephemeral port) and "
        "advertises; with several hosts, an address the other hosts reach.",
    )
    order_forward_group: str = Field(
        default="default",
        min_length=1,
        max_length=64,
        description="Processes on one database with the same group elect one leader; separate deployments "
        "sharing a database give themselves separate groups.",
    )
    order_forward_timeout_seconds: float = Field(
        default=15.0, gt=0, description="Seconds a forwarded order may take before the receiver places it itself."
    )


class EventSettings(BaseModel):
    """The event feed's retention and the webhook dispatcher."""

    events_retention_days: float = Field(
        default=30,
        gt=0,
        description="Days an event stays in ``GET /events`` and its deliveries in their lists; a sweeper in every "
        "process removes older ones (no TTL index: docs/architecture.md (Events and webhooks)).",
    )
    events_sweep_interval_seconds: float = Field(
        default=3600.0, gt=0, description="How often each process's sweeper removes old events, in seconds."
    )
    webhook_retry_schedule: CommaList = Field(
        default_factory=lambda: ["5", "300", "1800", "7200", "18000", "36000", "50400", "72000", "86400"],
        description="Seconds between a failing delivery's attempts: attempt 1 is immediate, attempt n+1 follows "
        "attempt n by the n-th value (jittered). Default: the Standard Webhooks example schedule (about 3 days).",
    )
    webhook_allow_private_urls: bool = Field(
        default=False,
        description="Development and tests only: let endpoints point at loopback and private addresses.",
    )
    webhook_timeout_seconds: float = Field(
        default=15.0,
        gt=0,
        le=60,
        description="A delivery attempt without its whole answer after this many seconds fails (and is retried).",
    )
    webhook_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How long a process holds a delivery it sends; a dead process's deliveries are sent again "
        "after it. Longer than ``webhook_timeout_seconds``.",
    )
    webhook_poll_interval_seconds: float = Field(
        default=0.5, gt=0, description="How often an idle dispatcher looks for new events and due deliveries, in s."
    )
    webhook_concurrency: int = Field(
        default=8, ge=1, le=256, description="Deliveries one process sends at the same time at most."
    )
    webhook_dispatcher_enabled: bool = Field(
        default=True,
        description="Run the webhook dispatcher in this process (every process may; leases keep sends single).",
    )

    @field_validator("webhook_retry_schedule", mode="before")
    @classmethod
    def _split_schedule(cls, value: object) -> object:
        value = _split_commas(value)
        if isinstance(value, list):
            for item in value:
                try:
                    seconds = float(item)
                except (TypeError, ValueError):
                    raise ValueError(
                        f"WEBHOOK_RETRY_SCHEDULE must list seconds, e.g. '5,300,1800'; got {item!r}"
                    ) from None
                if seconds < 0:
                    raise ValueError("WEBHOOK_RETRY_SCHEDULE values must be 0 or more seconds")
        return value

    @model_validator(mode="after")
    def _lease_outlasts_attempt(self) -> EventSettings:
        if self.webhook_lease_seconds <= self.webhook_timeout_seconds:
            raise ValueError(
                "WEBHOOK_LEASE_SECONDS must be longer than WEBHOOK_TIMEOUT_SECONDS, so a delivery's lease "
                "outlasts its attempt and no two processes send it at once."
            )
        return self

    @property
    def webhook_retry_delays(self) -> list[float]:
        """``WEBHOOK_RETRY_SCHEDULE`` as seconds: the wait before attempt 2, 3, ... of a failing delivery."""
        return [float(item) for item in self.webhook_retry_schedule]


class ObservabilitySettings(BaseModel):
    """Logs (level, file, rotation) and the ``GET /metrics`` endpoint."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO", description="Level of the JSON logs (any case)."
    )
    log_dir: str = Field(default="logs", description="Directory of the JSON log file ``storefront.log``.")
    log_file_max_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, description="Size at which the log file is rotated, in bytes."
    )
    log_file_backup_count: int = Field(
        default=5, ge=0, description="Rotated log files kept (``storefront.log.1`` ...)."
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="Bearer token Prometheus sends to ``GET /metrics``; unset: 404. Production: at least 32 bytes.",
    )
    metrics_failure_limit: str = Field(
        default="10/minute",
        description="Failed ``GET /metrics`` authorisations allowed per client address (moving window); more → 429.",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _blank_token_is_unset(cls, value: object) -> object:
        # An empty METRICS_TOKEN (e.g. compose's ${METRICS_TOKEN:-}) must not open /metrics to "Bearer ".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("metrics_failure_limit")
    @classmethod
    def _parse_metrics_limit(cls, value: str) -> str:
        return _check_limit(value)
