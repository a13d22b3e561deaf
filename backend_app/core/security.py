"""Password hashing (bcrypt, off the event loop) and JWTs (PyJWT, pinned algorithm).

Passwords are 8..72 UTF-8 bytes and hashed with bcrypt in a thread
pool so a burst of logins does not stall other requests; tokens carry ``sub``,
``role``, ``type``, ``jti``, ``iat``, ``exp``, ``iss`` and ``aud`` (RFC 7519
claim names) and are only ever decoded with an explicit ``algorithms`` list.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import bcrypt
import jwt

from backend_app.core import metrics
from config import Settings

TokenType = Literal["access", "refresh"]

#: bcrypt only reads the first 72 bytes of a password; longer ones are refused.
MAX_PASSWORD_BYTES = 72
MIN_PASSWORD_BYTES = 8
BCRYPT_ROUNDS = 12
#: bcrypt runs in its own small pool: one thread fewer than the CPUs (at least one), so a
#: burst of logins queues there instead of taking every core from the event loop and the
#: database (measured by ``benchmarks/login_load.py``).
PASSWORD_HASH_WORKERS = max(
    1, (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)) - 1
)
T = TypeVar("T")

#: Niceness of the bcrypt threads (Linux per-thread priority): the event loop thread wins the CPU.
PASSWORD_HASH_NICENESS = 10


def _lower_thread_priority() -> None:
    """Thread initializer: lower this worker thread's scheduling priority where the OS allows it."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not permitted: run at normal priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), PASSWORD_HASH_NICENESS)


_password_pool = ThreadPoolExecutor(
    max_workers=PASSWORD_HASH_WORKERS, thread_name_prefix="bcrypt", initializer=_lower_thread_priority
)


async def _run_in_password_pool(func: Callable[..., T], *args: Any) -> T:
    """Run ``func(*args)`` in the bcrypt pool, counted in ``bcrypt_pool_queue_length`` until a thread takes it."""
    metrics.bcrypt_queued(1)
    dequeued = threading.Lock()  # whoever acquires it first (the job starting, or a cancel) decrements once

    def job() -> T:
        if dequeued.acquire(blocking=False):
            metrics.bcrypt_queued(-1)
        return func(*args)

    try:
        return await asyncio.get_running_loop().run_in_executor(_password_pool, job)
    finally:
        if dequeued.acquire(blocking=False):
            metrics.bcrypt_queued(-1)


@functools.cache
def _dummy_hash() -> str:
    """A hash of a random password, checked when the user does not exist so that
    "unknown user" and "wrong password" take the same time."""
    return bcrypt.hashpw(secrets.token_bytes(16).hex().encode(), bcrypt.gensalt(BCRYPT_ROUNDS)).decode()


def _hash_sync(password: str) -> str:
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(BCRYPT_ROUNDS)).decode("ascii")


def _verify_sync(password: str, password_hash: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode("utf-8"), password_hash.encode("ascii"))
    except ValueError:
        return False


def _verify_dummy_sync(password: str) -> bool:
    # _dummy_hash() is computed (once) here, in the pool, never on the event loop.
    _verify_sync(password, _dummy_hash())
    return False


async def hash_password(password: str) -> str:
    """bcrypt-hash ``password`` (≤ 72 UTF-8 bytes, checked by the schema) in the bcrypt pool."""
    return await _run_in_password_pool(_hash_sync, password)


async def verify_password(password: str, password_hash: str | None) -> bool:
    """Check ``password`` against ``password_hash`` in the bcrypt pool.

    With ``password_hash=None`` (unknown user) a dummy hash is checked instead
    and ``False`` returned, so both failures cost one bcrypt verification.
    Passwords over 72 UTF-8 bytes never match (bcrypt refuses them).
    """
    if password_hash is None:
        await _run_in_password_pool(_verify_dummy_sync, password)
        return False
    return await _run_in_password_pool(_verify_sync, password, password_hash)


class TokenError(Exception):
    """A JWT is malformed, forged, expired, of the wrong type, issuer or audience."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """The verified claims of one token.

    Attributes:
        sub: the username (RFC 7519 ``sub``).
        role: ``user`` or ``admin`` at issue time (authorization re-reads the user).
        type: ``access`` or ``refresh``.
        jti: unique token id (RFC 7519 ``jti``).
        sid: the login session a refresh chain belongs to (for reuse detection).
        iat: issued-at, seconds since the epoch.
        exp: expiry, seconds since the epoch.
    """

    sub: str
    role: str
    type: TokenType
    jti: str
    sid: str
    iat: int
    exp: int


def create_token(
    settings: Settings,
    *,
    subject: str,
    role: str,
    token_type: TokenType,
    session_id: str | None = None,
    not_after: int | None = None,
) -> tuple[str, TokenClaims]:
    """Sign a token for ``subject``; returns ``(encoded_jwt, claims)``.

    Lifetime: ``ACCESS_TOKEN_TTL_SECONDS`` or ``REFRESH_TOKEN_TTL_SECONDS``,
    cut at ``not_after`` (seconds since the epoch: the end of the login,
    ``SESSION_MAX_AGE_DAYS`` after it began) when given.
    ``session_id`` ties the token to a login (a new one when ``None``).
    """
    now = int(time.time())
    ttl = settings.access_token_ttl_seconds if token_type == "access" else settings.refresh_token_ttl_seconds  # noqa: S105 - a token type, not a secret
    exp = now + ttl if not_after is None else min(now + ttl, not_after)
    claims = TokenClaims(
        sub=subject,
        role=role,
        type=token_type,
        jti=uuid.uuid4().hex,
        sid=session_id or uuid.uuid4().hex,
        iat=now,
        exp=exp,
    )
    payload: dict[str, Any] = {
        "sub": claims.sub,
        "role": claims.role,
        "type": claims.type,
        "jti": claims.jti,
        "sid": claims.sid,
        "iat": claims.iat,
        "exp": claims.exp,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
    }
    token = jwt.encode(payload, settings.signing_key, algorithm=settings.jwt_algorithm)
    return token, claims


def decode_token(settings: Settings, token: str, *, expected_type: TokenType) -> TokenClaims:
    """Verify ``token`` and return its claims.

    Checks the signature with the one configured algorithm (``alg: none`` and
    algorithm confusion are refused), ``exp``, ``iat``, ``iss``, ``aud``, the
    presence of every claim, and that ``type`` equals ``expected_type``.

    Raises:
        TokenError: any check failed.
    """
    try:
        payload = jwt.decode(
            token,
            settings.signing_key,
            algorithms=[settings.jwt_algorithm],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["sub", "role", "type", "jti", "sid", "iat", "exp", "iss", "aud"]},
        )
    except jwt.PyJWTError as exc:
        raise TokenError(str(exc)) from None
    if payload.get("type") != expected_type:
        raise TokenError(f"expected a {expected_type} token")
    try:
        return TokenClaims(
            sub=str(payload["sub"]),
            role=str(payload["role"]),
            type=payload["type"],
            jti=str(payload["jti"]),
            sid=str(payload["sid"]),
            iat=int(payload["iat"]),
            exp=int(payload["exp"]),
        )
    except (TypeError, ValueError) as exc:
        raise TokenError("malformed claims") from exc
