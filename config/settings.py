"""Application settings, read from the environment and an optional ``.env`` file.

One model per subsystem (``config.groups``) holds that subsystem's fields, each
with its description; :class:`Settings` combines them into the one flat class
callers use and adds the checks across groups that production needs.
"""

from __future__ import annotations

import ipaddress
import logging
from functools import lru_cache
from urllib.parse import urlsplit

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from config.groups import (
    DEV_JWT_SECRET,
    MIN_JWT_SECRET_BYTES_BY_ALGORITHM,
    AuthSettings,
    CatalogCacheSettings,
    DatabaseSettings,
    EventSettings,
    HttpSettings,
    ObservabilitySettings,
    OrderSettings,
    RateLimitSettings,
    ServerSettings,
)

__all__ = ["DEV_JWT_SECRET", "MIN_JWT_SECRET_BYTES_BY_ALGORITHM", "Settings", "get_settings"]

logger = logging.getLogger(__name__)


class Settings(
    ServerSettings,
    DatabaseSettings,
    AuthSettings,
    HttpSettings,
    RateLimitSettings,
    CatalogCacheSettings,
    OrderSettings,
    EventSettings,
    ObservabilitySettings,
    BaseSettings,
):
    """Typed configuration of one storefront process: every group's settings in one flat class.

    Values come from environment variables (case-insensitive) and then from a
    ``.env`` file in the working directory. ``MONGODB_URI`` also accepts the
    alias ``DATABASE_URL``.

    Raises:
        pydantic.ValidationError: a value has the wrong type, or (in
            ``production``) a required setting is missing.
    """

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True)

    @model_validator(mode="after")
    def _production_guards(self) -> Settings:
        if self.app_env == "production":
            if not self.mongodb_uri:
                raise ValueError(
                    "MONGODB_URI (or DATABASE_URL) must be set when APP_ENV=production; "
                    "point it at a MongoDB replica set or Atlas cluster."
                )
            secret = self.jwt_secret.get_secret_value() if self.jwt_secret else ""
            min_bytes = MIN_JWT_SECRET_BYTES_BY_ALGORITHM[self.jwt_algorithm]
            if len(secret.encode()) < min_bytes or secret == DEV_JWT_SECRET:
                raise ValueError(
                    f"JWT_SECRET must be set to at least {min_bytes} bytes for JWT_ALGORITHM={self.jwt_algorithm} "
                    "(and not the development default) when APP_ENV=production; generate one with: "
                    f"python -c 'import secrets; print(secrets.token_urlsafe({min_bytes * 3 // 2}))'"
                )
            not_origins = [origin for origin in self.allowed_origins if not _is_web_origin(origin)]
            if not_origins:
                raise ValueError(
                    "ALLOWED_ORIGINS must list exact origins (e.g. https://shop.example) when APP_ENV=production; "
                    f"{', '.join(repr(o) for o in not_origins)} is not one: '*' would let any web page call the API, "
                    "and 'null' any sandboxed page or local file."
                )
            too_broad = _too_broad_proxies(self.trusted_proxies)
            if too_broad:
                raise ValueError(
                    "TRUSTED_PROXIES must list your proxies' IPs or CIDRs when APP_ENV=production; "
                    f"{too_broad} lets any client forge X-Forwarded-For and escape rate limits."
                )
            token = self.metrics_token.get_secret_value() if self.metrics_token else None
            if token is not None and len(token.encode()) < MIN_METRICS_TOKEN_BYTES:
                raise ValueError(
                    f"METRICS_TOKEN must be at least {MIN_METRICS_TOKEN_BYTES} bytes when APP_ENV=production "
                    "(or unset, which closes /metrics); generate one with: "
                    "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
                )
            if self.cache_uri and _same_redis_server(self.rate_limit_storage_uri, self.cache_uri):
                raise ValueError(
                    "RATE_LIMIT_STORAGE_URI and CACHE_URI must not share one Redis server when APP_ENV=production: "
                    "its maxmemory eviction would drop rate-limit and sign-in counters to make room for pages. "
                    "Give the counters a Redis of their own with maxmemory-policy noeviction (docker-compose.yml)."
                )
            if self.webhook_allow_private_urls:
                raise ValueError(
                    "WEBHOOK_ALLOW_PRIVATE_URLS must not be set when APP_ENV=production; webhook endpoints "
                    "must be public https URLs (it would let endpoints reach internal services)."
                )
            if self.rate_limit_enabled and self.web_concurrency > 1 and self.rate_limit_storage_uri == "memory://":
                logger.warning(
                    "RATE_LIMIT_STORAGE_URI=memory:// with WEB_CONCURRENCY=%d: each worker counts on its own, "
                    "so callers get %dx the budget; use redis://",
                    self.web_concurrency,
                    self.web_concurrency,
                )
        if self.jwt_secret is None and self.app_env == "development":
            logger.warning("JWT_SECRET is not set: using the insecure development secret (never in production)")
        return self


#: A ``TRUSTED_PROXIES`` network broader than this many prefix bits must be private-use (proxies are not
#: spread over a public /7: 10.0.0.0/8 and fc00::/7 are the broadest networks proxies normally live in).
MIN_PUBLIC_PROXY_PREFIX = 8
#: IPv4-mapped IPv6 addresses: a dual-stack socket shows IPv4 clients as ``::ffff:a.b.c.d``.
_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
#: Shortest ``METRICS_TOKEN`` in production (256 bits, as an HS256 key).
MIN_METRICS_TOKEN_BYTES = 32


def _too_broad_proxies(proxies: list[str]) -> str | None:
    """Why ``TRUSTED_PROXIES`` trusts far too many peers, or ``None``.

    Refused: ``*``; entries that together cover every IPv4 or every IPv6
    address (``0.0.0.0/0``, or ``0.0.0.0/1,128.0.0.0/1``), IPv4-mapped IPv6
    networks counted as the IPv4 networks they map; a public network with
    fewer than :data:`MIN_PUBLIC_PROXY_PREFIX` prefix bits (``1.0.0.0/1``).
    Host names are left to uvicorn.
    """
    if any(p.strip() == "*" for p in proxies):
        return "'*'"
    v4: list[ipaddress.IPv4Network] = []
    v6: list[ipaddress.IPv6Network] = []
    for proxy in proxies:
        try:
            network: ipaddress.IPv4Network | ipaddress.IPv6Network = ipaddress.ip_network(proxy.strip(), strict=False)
        except ValueError:  # a host name or malformed entry: uvicorn decides
            continue
        if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_IPV4_MAPPED):
            mapped = int(network.network_address) - int(_IPV4_MAPPED.network_address)
            network = ipaddress.IPv4Network((mapped, network.prefixlen - 96))
        if network.prefixlen < MIN_PUBLIC_PROXY_PREFIX and not network.is_private:
            return f"{proxy.strip()!r} (a public network of /{network.prefixlen})"
        if isinstance(network, ipaddress.IPv4Network):
            v4.append(network)
        else:
            v6.append(network)
    if any(n.prefixlen == 0 for n in ipaddress.collapse_addresses(v4)) or any(
        n.prefixlen == 0 for n in ipaddress.collapse_addresses(v6)
    ):
        return f"{', '.join(repr(p) for p in proxies)} (together, every address)"
    return None


def _is_web_origin(origin: str) -> bool:
    """Whether ``origin`` is an exact web origin, ``http(s)://host[:port]`` (RFC 6454), not ``*`` or ``null``."""
    parts = urlsplit(origin)
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and not parts.path
        and not parts.query
        and not parts.fragment
        and parts.username is None
    )


def _redis_server(uri: str) -> tuple[str, int | str] | None:
    """``(host, port)`` (or ``("unix", path)``) of a Redis URI; ``None`` for ``memory://``."""
    parts = urlsplit(uri)
    if parts.scheme in ("", "memory"):
        return None
    if parts.scheme.endswith("unix"):
        return "unix", parts.path
    return (parts.hostname or "localhost").lower(), parts.port or 6379


def _same_redis_server(first: str, second: str) -> bool:
    """Whether two storage URIs name one Redis server (whatever database number: eviction is per server)."""
    server = _redis_server(first)
    return server is not None and server == _redis_server(second)


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once (``Settings()`` on first call)."""
    return Settings()
