"""Settings (docs/contract.md §8): production guards with clear messages, parsing, groups, a complete .env.example."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import AliasChoices, ValidationError
from pydantic_settings import BaseSettings

from backend_app.orders import faults
from config import Settings
from config.settings import DEV_JWT_SECRET

ROOT = Path(__file__).resolve().parents[2]
STRONG_SECRET = "s" * 48
PRODUCTION = {"app_env": "production", "mongodb_uri": "mongodb://db.internal:27017/?replicaSet=rs0"}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MONGODB_URI", "DATABASE_URL", "JWT_SECRET", "APP_ENV", "ALLOWED_ORIGINS", "TRUSTED_PROXIES"):
        monkeypatch.delenv(name, raising=False)


def build(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def refusal(**values: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        build(**values)
    return str(caught.value)


def test_production_starts_with_the_required_settings() -> None:
    settings = build(**PRODUCTION, jwt_secret=STRONG_SECRET, allowed_origins="https://shop.example")
    assert settings.signing_key == STRONG_SECRET


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"jwt_secret": STRONG_SECRET}, "MONGODB_URI (or DATABASE_URL) must be set"),
        ({**PRODUCTION}, "JWT_SECRET must be set to at least 32 bytes"),
        ({**PRODUCTION, "jwt_secret": "short-secret"}, "JWT_SECRET must be set to at least 32 bytes"),
        ({**PRODUCTION, "jwt_secret": DEV_JWT_SECRET}, "not the development default"),
        ({**PRODUCTION, "jwt_secret": STRONG_SECRET, "allowed_origins": "*"}, "ALLOWED_ORIGINS must list exact"),
        ({**PRODUCTION, "jwt_secret": STRONG_SECRET, "trusted_proxies": "*"}, "TRUSTED_PROXIES must list"),
    ],
)
def test_production_refuses_unsafe_settings_with_a_clear_message(values: dict[str, Any], message: str) -> None:
    assert message in refusal(**{"app_env": "production", **values})


def test_production_guard_messages_say_how_to_fix() -> None:
    assert "secrets.token_urlsafe" in refusal(**PRODUCTION)
    assert "replica set or Atlas" in refusal(app_env="production", jwt_secret=STRONG_SECRET)


def test_development_allows_the_defaults() -> None:
    settings = build(app_env="development")
    assert settings.rate_limit_enabled is True
    assert settings.rate_limit_default == "120/minute"
    assert settings.rate_limit_auth == "10/minute"
    assert settings.rate_limit_storage_uri == "memory://"
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.allowed_origins == [] and settings.trusted_proxies == []


def test_comma_separated_lists_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_ORIGINS", "https://shop.example, https://admin.example")
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.0/8,192.168.1.1")
    settings = build()
    assert settings.allowed_origins == ["https://shop.example", "https://admin.example"]
    assert settings.trusted_proxies == ["10.0.0.0/8", "192.168.1.1"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"rate_limit_default": "lots"}, "is not a rate limit"),
        ({"rate_limit_auth": "10 per fortnight"}, "is not a rate limit"),
        ({"rate_limit_storage_uri": "memcached://cache:11211"}, "RATE_LIMIT_STORAGE_URI must be"),
        ({"log_level": "chatty"}, "log_level"),
    ],
)
def test_bad_values_are_refused(values: dict[str, Any], message: str) -> None:
    assert message in refusal(**values)


#: Variables .env.example explains that are not ``Settings`` fields: read by ``create-admin``, by
#: prometheus-client and by the OpenTelemetry SDK.
NOT_SETTINGS = {"ADMIN_PASSWORD", "PROMETHEUS_MULTIPROC_DIR"}
NOT_SETTINGS_PREFIXES = ("OTEL_",)
#: The settings groups, in the order ``Settings`` combines them (and .env.example lists them).
GROUPS = [base for base in Settings.__bases__ if base is not BaseSettings]


def env_example() -> str:
    return (ROOT / "config" / ".env.example").read_text(encoding="utf-8")


def example_variables() -> list[str]:
    """Variables .env.example sets or shows commented out, in order of appearance."""
    return re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", env_example(), flags=re.MULTILINE)


def variable_names(field: str) -> list[str]:
    """Environment variables of a setting: its name upper-cased, or its alias choices (``MONGODB_URI``, ...)."""
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return [choice.upper() for choice in alias.choices if isinstance(choice, str)]
    return [field.upper()]


def test_env_example_documents_every_setting() -> None:
    documented = set(example_variables())
    missing = {field.upper() for field in Settings.model_fields} - documented
    assert not missing, f".env.example does not document {sorted(missing)}"


def test_env_example_documents_only_settings() -> None:
    known = {name for field in Settings.model_fields for name in variable_names(field)} | NOT_SETTINGS
    unknown = {name for name in example_variables() if name not in known and not name.startswith(NOT_SETTINGS_PREFIXES)}
    assert not unknown, f".env.example shows {sorted(unknown)}, which no setting reads"


def test_env_example_lists_the_groups_in_the_order_of_the_classes() -> None:
    first_line = {}
    for position, name in enumerate(example_variables()):
        first_line.setdefault(name, position)
    order = [field.upper() for group in GROUPS for field in group.model_fields]
    assert sorted(order, key=first_line.__getitem__) == order


def test_every_setting_belongs_to_exactly_one_group_and_has_a_description() -> None:
    fields = [field for group in GROUPS for field in group.model_fields]
    assert len(fields) == len(set(fields)) and set(fields) == set(Settings.model_fields)
    assert all(info.description for info in Settings.model_fields.values())
    # The groups' validators still run on the combined class.
    assert "is not a rate limit" in refusal(metrics_failure_limit="often")
    assert "WEBHOOK_LEASE_SECONDS must be longer" in refusal(webhook_lease_seconds=5, webhook_timeout_seconds=10)


# --- The test-only fault hook is not a setting ----------------------------------------------------


class FaultExit(Exception):
    """Raised instead of ``os._exit`` so a test sees the armed step."""


@pytest.fixture
def fault_exits(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def exit_(status: int) -> None:
        raise FaultExit(status)

    monkeypatch.setattr(faults.os, "_exit", exit_)
    yield
    faults.configure("development")


def test_the_fault_step_is_neither_a_setting_nor_in_env_example() -> None:
    assert "order_fault_step" not in Settings.model_fields
    assert "ORDER_FAULT_STEP" not in env_example()


@pytest.mark.usefixtures("fault_exits")
def test_the_fault_step_is_read_from_the_environment_of_a_test_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDER_FAULT_STEP", "committed")
    faults.configure("test")
    faults.reach("key_claimed")
    with pytest.raises(FaultExit, match=str(faults.FAULT_EXIT_STATUS)):
        faults.reach("committed")


@pytest.mark.usefixtures("fault_exits")
@pytest.mark.parametrize("app_env", ["production", "development"])
def test_the_fault_step_is_ignored_outside_tests(app_env: str) -> None:
    faults.configure(app_env, {"ORDER_FAULT_STEP": "committed"})
    faults.reach("committed")


@pytest.mark.usefixtures("fault_exits")
def test_an_unknown_or_empty_fault_step() -> None:
    with pytest.raises(ValueError, match="ORDER_FAULT_STEP must be one of"):
        faults.configure("test", {"ORDER_FAULT_STEP": "nowhere"})
    faults.configure("test", {"ORDER_FAULT_STEP": ""})
    faults.reach("committed")


@pytest.mark.parametrize(("algorithm", "needed"), [("HS256", 32), ("HS384", 48), ("HS512", 64)])
def test_production_jwt_secret_length_follows_the_algorithm(algorithm: str, needed: int) -> None:
    short = "k" * (needed - 1)
    message = refusal(**PRODUCTION, jwt_algorithm=algorithm, jwt_secret=short)
    assert f"at least {needed} bytes for JWT_ALGORITHM={algorithm}" in message
    assert build(**PRODUCTION, jwt_algorithm=algorithm, jwt_secret="k" * needed).jwt_algorithm == algorithm


@pytest.mark.parametrize("proxies", ["0.0.0.0/0", "::/0", "10.0.0.1,0.0.0.0/0", "0.0.0.0/0.0.0.0", "::0/0"])
def test_production_refuses_catch_all_trusted_proxies(proxies: str) -> None:
    message = refusal(**PRODUCTION, jwt_secret=STRONG_SECRET, trusted_proxies=proxies)
    assert "TRUSTED_PROXIES must list" in message
    assert "forge X-Forwarded-For" in message


def test_production_accepts_specific_trusted_proxies() -> None:
    settings = build(**PRODUCTION, jwt_secret=STRONG_SECRET, trusted_proxies="10.0.0.0/8,::1,192.0.2.7")
    assert settings.trusted_proxies == ["10.0.0.0/8", "::1", "192.0.2.7"]
    # Outside production a catch-all is the operator's call (e.g. a test rig).
    assert build(trusted_proxies="0.0.0.0/0").trusted_proxies == ["0.0.0.0/0"]


@pytest.mark.parametrize("secret", [None, "", "x" * 31, "ab"])
def test_production_refuses_a_missing_or_short_jwt_secret(secret: str | None) -> None:
    with pytest.raises(ValidationError, match="JWT_SECRET must be set to at least 32 bytes"):
        Settings(_env_file=None, app_env="production", mongodb_uri="mongodb://db.example:27017", jwt_secret=secret)


def test_development_uses_the_documented_dev_secret_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("JWT_SECRET", raising=False)
    with caplog.at_level(logging.WARNING, logger="config.settings"):
        settings = Settings(_env_file=None, app_env="development")
    assert settings.signing_key == DEV_JWT_SECRET
    assert "insecure development secret" in caplog.text


# --- Production refuses settings that trust or expose too much -----------------------------------


@pytest.mark.parametrize(
    "proxies",
    [
        "0.0.0.0/1,128.0.0.0/1",  # together every IPv4 address
        "0.0.0.0/2,64.0.0.0/2,128.0.0.0/1",
        "::/1,8000::/1",  # together every IPv6 address
        "::ffff:0:0/96",  # every IPv4 client of a dual-stack socket
        "1.0.0.0/1",  # half of the internet is not a proxy
    ],
)
def test_production_refuses_trusted_proxies_that_together_trust_everyone(proxies: str) -> None:
    assert "TRUSTED_PROXIES must list" in refusal(**PRODUCTION, jwt_secret=STRONG_SECRET, trusted_proxies=proxies)


def test_production_accepts_private_proxy_networks() -> None:
    networks = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7,203.0.113.7"
    assert build(**PRODUCTION, jwt_secret=STRONG_SECRET, trusted_proxies=networks).trusted_proxies


@pytest.mark.parametrize(
    "origin", ["null", "NULL", "https://shop.example,null", "shop.example", "https://shop.example/path"]
)
def test_production_refuses_origins_that_are_not_exact_web_origins(origin: str) -> None:
    assert "ALLOWED_ORIGINS must list exact" in refusal(**PRODUCTION, jwt_secret=STRONG_SECRET, allowed_origins=origin)


def test_production_refuses_a_short_metrics_token() -> None:
    message = refusal(**PRODUCTION, jwt_secret=STRONG_SECRET, metrics_token="x")
    assert "METRICS_TOKEN must be at least 32 bytes" in message
    assert build(**PRODUCTION, jwt_secret=STRONG_SECRET, metrics_token="m" * 32).metrics_token is not None
    # Development and tests may use a short one.
    assert build(app_env="development", metrics_token="x").metrics_token is not None


@pytest.mark.parametrize(
    ("limits_uri", "cache_uri"),
    [
        ("redis://redis.internal:6379/0", "redis://redis.internal:6379/1"),
        ("redis://redis.internal/0", "redis://redis.internal:6379/0"),
    ],
)
def test_production_refuses_rate_limits_and_page_cache_in_one_redis(limits_uri: str, cache_uri: str) -> None:
    message = refusal(**PRODUCTION, jwt_secret=STRONG_SECRET, rate_limit_storage_uri=limits_uri, cache_uri=cache_uri)
    assert "must not share one Redis server" in message


def test_production_accepts_rate_limits_and_page_cache_in_separate_redis_servers() -> None:
    settings = build(
        **PRODUCTION,
        jwt_secret=STRONG_SECRET,
        rate_limit_storage_uri="redis://redis-limits.internal:6379/0",
        cache_uri="redis://redis-cache.internal:6379/0",
    )
    assert settings.cache_uri
