"""Signing secrets and the Standard Webhooks headers, through the maintained ``standardwebhooks`` package.

A secret is ``whsec_`` + base64 of 32 random bytes (the specification asks for
24 to 64). Each attempt is signed over ``{webhook-id}.{webhook-timestamp}.{body}``
with HMAC-SHA256 (``v1``) by :meth:`standardwebhooks.Webhook.sign`, once per
secret still valid: after a rotation the old secret signs beside the new one
for :data:`ROTATION_OVERLAP`, space-separated in ``webhook-signature``, so a
receiver that has either secret verifies the delivery.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 - a name, not a secret
SECRET_BYTES = 32
#: How long a replaced secret keeps signing after ``rotate-secret``.
ROTATION_OVERLAP = timedelta(hours=24)


def new_secret() -> str:
    """A new signing secret, ``whsec_<base64 of 32 random bytes>``."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def valid_keys(keys: Iterable[Mapping[str, Any]], *, now: datetime) -> list[str]:
    """The secrets of ``keys`` (``{"secret", "expires_at"}``) that still sign at ``now``, newest first."""
    valid = []
    for key in keys:
        expires = key.get("expires_at")
        if expires is not None and expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        if expires is None or expires > now:
            valid.append(key["secret"])
    return valid


def headers(*, message_id: str, body: str, secrets_: Iterable[str], now: datetime) -> dict[str, str]:
    """The three Standard Webhooks headers of one attempt sent at ``now``.

    ``webhook-id`` is the event id (the same on every attempt: receivers
    de-duplicate by it), ``webhook-timestamp`` the attempt's Unix time in
    seconds, ``webhook-signature`` one ``v1,<base64>`` per secret.
    """
    signatures = [Webhook(secret).sign(message_id, now, body) for secret in secrets_]
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": " ".join(signatures),
    }
