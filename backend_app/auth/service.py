"""Authentication rules: credentials, token pairs, refresh rotation with reuse detection (spec §3).

Every login opens a *session* (the ``sid`` claim of all tokens it yields).
Only the newest refresh token of a session may be exchanged (RFC 9700
§4.14.2 rotation); presenting an older one means a copy leaked, so the whole
session is revoked, and with it every access token that carries its ``sid``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from backend_app.auth import repository
from backend_app.auth.exceptions import InvalidCredentialsError, InvalidTokenError
from backend_app.auth.schemas import TokenPair
from backend_app.core.db import MongoDatabase
from backend_app.core.security import TokenClaims, TokenError, create_token, decode_token, verify_password
from backend_app.users import repository as users_repository
from backend_app.users.schemas import UserPublic
from config import Settings

REFRESH_INVALID = "The refresh token is invalid, expired or revoked."
REFRESH_REUSED = "This refresh token was already used: every token of this login is now revoked. Log in again."


def _when(epoch_seconds: int) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, UTC)


async def authenticate(
    db: MongoDatabase, *, username: str | None = None, email: str | None = None, password: str
) -> UserPublic:
    """The active user named by ``username`` (or ``email``) whose password is ``password``.

    Unknown users are checked against a dummy bcrypt hash, so that an unknown
    user, a wrong password and a deactivated account cost the same time and
    give the same error (spec §3).

    Raises:
        InvalidCredentialsError: any of those failures (401).
    """
    if username is not None:
        doc = await users_repository.get_by_username(db, username=username)
    elif email is not None:
        doc = await users_repository.get_by_email(db, email=email)
    else:
        doc = None
    matches = await verify_password(password, doc["password_hash"] if doc else None)
    if doc is None or not matches or not doc.get("is_active", False):
        raise InvalidCredentialsError()
    return UserPublic.model_validate(doc)


def _pair(settings: Settings, *, user: UserPublic, refresh_token: str, session_id: str) -> TokenPair:
    access_token, _ = create_token(
        settings, subject=user.username, role=user.role, token_type="access", session_id=session_id
    )
    return TokenPair(
        access_token=access_token, refresh_token=refresh_token, expires_in=settings.access_token_ttl_seconds
    )


async def start_session(db: MongoDatabase, settings: Settings, *, user: UserPublic) -> TokenPair:
    """Open a new login session for ``user`` and return its first token pair."""
    refresh_token, claims = create_token(settings, subject=user.username, role=user.role, token_type="refresh")
    await repository.insert_session(
        db,
        sid=claims.sid,
        username=user.username,
        refresh_jti=claims.jti,
        now=datetime.now(UTC),
        expires_at=_when(claims.exp),
    )
    return _pair(settings, user=user, refresh_token=refresh_token, session_id=claims.sid)


async def login(
    db: MongoDatabase, settings: Settings, *, username: str | None = None, email: str | None = None, password: str
) -> TokenPair:
    """Check the credentials and open a session (``POST /auth/login``, ``POST /auth/token``).

    Raises:
        InvalidCredentialsError: unknown user, wrong password or deactivated account (401).
    """
    user = await authenticate(db, username=username, email=email, password=password)
    return await start_session(db, settings, user=user)


def _refresh_claims(settings: Settings, refresh_token: str) -> TokenClaims:
    try:
        return decode_token(settings, refresh_token, expected_type="refresh")
    except TokenError:
        raise InvalidTokenError(REFRESH_INVALID) from None


async def refresh(db: MongoDatabase, settings: Settings, *, refresh_token: str) -> TokenPair:
    """Exchange the current refresh token of a session for a new pair; the old one is revoked.

    Raises:
        InvalidTokenError: the token does not verify, its user is unknown or
            deactivated, its session is revoked, or it was already exchanged
            (reuse: the whole session is revoked first) (401).
    """
    claims = _refresh_claims(settings, refresh_token)
    doc = await users_repository.get_by_username(db, username=claims.sub)
    if doc is None or not doc.get("is_active", False):
        raise InvalidTokenError(REFRESH_INVALID)
    user = UserPublic.model_validate(doc)
    new_refresh, new_claims = create_token(
        settings, subject=user.username, role=user.role, token_type="refresh", session_id=claims.sid
    )
    now = datetime.now(UTC)
    rotated = await repository.rotate_refresh_jti(
        db, sid=claims.sid, old_jti=claims.jti, new_jti=new_claims.jti, now=now, expires_at=_when(new_claims.exp)
    )
    if rotated:
        return _pair(settings, user=user, refresh_token=new_refresh, session_id=claims.sid)
    session = await repository.get_session(db, sid=claims.sid)
    if session is not None and session.get("revoked_at") is None:
        # A validly signed, older refresh token of a live session: a copy is in other hands.
        await repository.revoke_session(db, sid=claims.sid, now=now, reason="refresh_reuse")
        raise InvalidTokenError(REFRESH_REUSED)
    raise InvalidTokenError(REFRESH_INVALID)


async def logout(db: MongoDatabase, settings: Settings, *, refresh_token: str) -> None:
    """Revoke the session of ``refresh_token``: its refresh and access tokens stop working at once.

    Idempotent for a session that is already revoked.

    Raises:
        InvalidTokenError: the token does not verify (forged, expired, not a refresh token) (401).
    """
    claims = _refresh_claims(settings, refresh_token)
    await repository.revoke_session(db, sid=claims.sid, now=datetime.now(UTC), reason="logout")


async def user_from_access_token(db: MongoDatabase, settings: Settings, *, token: str) -> UserPublic:
    """The caller named by a bearer access token, read from the database now (spec §3).

    Raises:
        InvalidTokenError: the token is malformed, forged, expired, not an
            access token, from a session that is not live (never recorded,
            revoked or expired), or its user is unknown or
            deactivated (401).
    """
    try:
        claims = decode_token(settings, token, expected_type="access")
    except TokenError:
        raise InvalidTokenError() from None
    doc, live = await asyncio.gather(
        users_repository.get_by_username(db, username=claims.sub),
        repository.is_live(db, sid=claims.sid),
    )
    if doc is None or not doc.get("is_active", False) or not live:
        raise InvalidTokenError()
    return UserPublic.model_validate(doc)
