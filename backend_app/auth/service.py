"""Authentication rules: credentials, token pairs, refresh rotation with reuse detection.

Every login opens a *session* (the ``sid`` claim of all tokens it yields).
Only the newest refresh token of a session may be exchanged (RFC 9700
§4.14.2 rotation); presenting an older one means a copy leaked, so the whole
session is revoked, and with it every access token that carries its ``sid``.

Sessions end for good: a session is valid only while
(1) it is recorded for the token's ``sub`` (sid *and* subject must match),
(2) it is not revoked, (3) its ``epoch`` equals the user's ``session_epoch``,
which a password change, a role change or a deactivation bumps (so
reactivating an account does not bring old tokens back), and (4) it began
less than ``SESSION_MAX_AGE_DAYS`` ago, however often it was refreshed.

Failed sign-ins (``POST /auth/login``, ``/auth/token``) are counted per
account by :class:`~backend_app.auth.throttles.SignInThrottle`, one check per
account at a time; unknown and known usernames take the same steps, so neither
the status nor the time tells them apart. Wrong current passwords of
``POST /auth/password`` are counted per login session instead.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from backend_app.auth import repository
from backend_app.auth.documents import SessionCheck
from backend_app.auth.exceptions import (
    InvalidCredentialsError,
    InvalidTokenError,
    PasswordChangedConcurrentlyError,
    PasswordChangeThrottledError,
    SignInThrottledError,
    WrongCurrentPasswordError,
)
from backend_app.auth.schemas import TokenPair
from backend_app.auth.session_cache import Documents, SessionCache
from backend_app.auth.throttles import SignInThrottle
from backend_app.core.db import MongoDatabase
from backend_app.core.security import (
    TokenClaims,
    TokenError,
    create_token,
    decode_token,
    hash_password,
    verify_password,
)
from backend_app.core.throttle import FailureThrottle
from backend_app.core.types import as_utc
from backend_app.users import service as users_service
from backend_app.users.documents import PublicUserDocument, UserDocument
from backend_app.users.schemas import UserPublic
from config import Settings

REFRESH_INVALID = "The refresh token is invalid, expired or revoked."
REFRESH_REUSED = "This refresh token was already used: every token of this login is now revoked. Log in again."


def _when(epoch_seconds: int) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, UTC)


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated caller of a request: the user as stored now and the login session of its token."""

    user: UserPublic
    session_id: str


def _epoch(user_doc: PublicUserDocument) -> int:
    """A user's ``session_epoch`` (absent in documents older than the field: 0)."""
    return int(user_doc.get("session_epoch", 0) or 0)


def _session_ends(settings: Settings, session: SessionCheck) -> datetime:
    """When a login ends at the latest: ``SESSION_MAX_AGE_DAYS`` after it began."""
    return as_utc(session["created_at"]) + timedelta(days=settings.session_max_age_days)


def _session_valid(settings: Settings, session: SessionCheck | None, user_doc: PublicUserDocument | None) -> bool:
    """Whether an unrevoked ``session`` (already matched on sid and subject) still lets ``user_doc`` in."""
    return (
        session is not None
        and user_doc is not None
        and user_doc.get("is_active", False)
        and int(session.get("epoch", 0) or 0) == _epoch(user_doc)
        and datetime.now(UTC) < _session_ends(settings, session)
    )


async def authenticate(
    db: MongoDatabase,
    throttle: SignInThrottle,
    *,
    username: str | None = None,
    email: str | None = None,
    password: str,
) -> UserDocument:
    """The stored active user named by ``username`` (or ``email``) whose password is ``password``.

    Unknown users are checked against a dummy bcrypt hash, so that an unknown
    user, a wrong password and a deactivated account cost the same time and
    give the same error. Every such failure is counted against the
    account (the case-folded username; for an unknown email, the email), and
    an account over ``SIGNIN_FAILURE_LIMIT`` is refused before its password
    is checked, whether it exists or not.

    Raises:
        SignInThrottledError: too many recent failures for this account (429, ``Retry-After``).
        InvalidCredentialsError: unknown user, wrong password or deactivated account (401).
    """
    if username is not None:
        doc = await users_service.find_account(db, username=username)
    elif email is not None:
        doc = await users_service.find_account(db, email=email)
    else:
        doc = None
    account = doc["username"] if doc is not None else (username if username is not None else email or "")
    # One check per account at a time, the count read inside the turn: concurrent guesses cost at most the limit.
    async with throttle.attempt(account) as attempt:
        if attempt.retry_after is not None:
            raise SignInThrottledError(retry_after=attempt.retry_after)
        matches = await verify_password(password, doc["password_hash"] if doc else None)
        if doc is None or not matches or not doc.get("is_active", False):
            await attempt.failed()
            raise InvalidCredentialsError()
    return doc


def _pair(settings: Settings, *, user: UserPublic, refresh_token: str, session_id: str, not_after: int) -> TokenPair:
    access_token, _ = create_token(
        settings,
        subject=user.username,
        role=user.role,
        token_type="access",  # noqa: S106 - a token type, not a secret
        session_id=session_id,
        not_after=not_after,
    )
    return TokenPair(
        access_token=access_token, refresh_token=refresh_token, expires_in=settings.access_token_ttl_seconds
    )


async def start_session(db: MongoDatabase, settings: Settings, *, user: UserPublic, epoch: int = 0) -> TokenPair:
    """Open a new login session for ``user`` (whose ``session_epoch`` is ``epoch``); its first token pair.

    No token of the session outlives ``SESSION_MAX_AGE_DAYS`` from now.
    """
    now = datetime.now(UTC)
    not_after = int((now + timedelta(days=settings.session_max_age_days)).timestamp())
    refresh_token, claims = create_token(
        settings,
        subject=user.username,
        role=user.role,
        token_type="refresh",  # noqa: S106 - a token type, not a secret
        not_after=not_after,
    )
    await repository.insert_session(
        db,
        sid=claims.sid,
        username=user.username,
        refresh_jti=claims.jti,
        epoch=epoch,
        now=now,
        expires_at=_when(claims.exp),
    )
    return _pair(settings, user=user, refresh_token=refresh_token, session_id=claims.sid, not_after=not_after)


async def login(
    db: MongoDatabase,
    settings: Settings,
    throttle: SignInThrottle,
    *,
    username: str | None = None,
    email: str | None = None,
    password: str,
) -> TokenPair:
    """Check the credentials and open a session (``POST /auth/login``, ``POST /auth/token``).

    Raises:
        SignInThrottledError: too many recent failed sign-ins of this account (429).
        InvalidCredentialsError: unknown user, wrong password or deactivated account (401).
    """
    doc = await authenticate(db, throttle, username=username, email=email, password=password)
    return await start_session(db, settings, user=UserPublic.model_validate(doc), epoch=_epoch(doc))


def _refresh_claims(settings: Settings, refresh_token: str) -> TokenClaims:
    try:
        return decode_token(settings, refresh_token, expected_type="refresh")
    except TokenError:
        raise InvalidTokenError(REFRESH_INVALID) from None


async def refresh(db: MongoDatabase, settings: Settings, *, refresh_token: str) -> TokenPair:
    """Exchange the current refresh token of a session for a new pair; the old one is revoked.

    The new tokens never outlive the login's ``SESSION_MAX_AGE_DAYS``.

    Raises:
        InvalidTokenError: the token does not verify, its user is unknown or
            deactivated, its session is revoked, ended by a password, role or
            activation change, older than ``SESSION_MAX_AGE_DAYS`` or not the
            subject's, or it was already exchanged (reuse: the whole session is
            revoked first) (401).
    """
    claims = _refresh_claims(settings, refresh_token)
    doc, session = await asyncio.gather(
        users_service.find_account(db, username=claims.sub),
        repository.get_unrevoked_session(db, sid=claims.sid, username=claims.sub),
    )
    if not _session_valid(settings, session, doc):
        raise InvalidTokenError(REFRESH_INVALID)
    assert session is not None and doc is not None  # checked by _session_valid
    user = UserPublic.model_validate(doc)
    not_after = int(_session_ends(settings, session).timestamp())
    new_refresh, new_claims = create_token(
        settings,
        subject=user.username,
        role=user.role,
        token_type="refresh",  # noqa: S106 - a token type, not a secret
        session_id=claims.sid,
        not_after=not_after,
    )
    now = datetime.now(UTC)
    rotated = await repository.rotate_refresh_jti(
        db,
        sid=claims.sid,
        username=claims.sub,
        old_jti=claims.jti,
        new_jti=new_claims.jti,
        now=now,
        expires_at=_when(new_claims.exp),
    )
    if rotated:
        return _pair(settings, user=user, refresh_token=new_refresh, session_id=claims.sid, not_after=not_after)
    if await repository.get_unrevoked_session(db, sid=claims.sid, username=claims.sub) is not None:
        # A validly signed, older refresh token of a live session: a copy is in other hands.
        await repository.revoke_session(db, sid=claims.sid, username=claims.sub, now=now, reason="refresh_reuse")
        raise InvalidTokenError(REFRESH_REUSED)
    raise InvalidTokenError(REFRESH_INVALID)


async def logout(db: MongoDatabase, settings: Settings, *, refresh_token: str) -> None:
    """Revoke the session of ``refresh_token``: its refresh and access tokens stop working at once.

    Idempotent for a session that is already revoked.

    Raises:
        InvalidTokenError: the token does not verify (forged, expired, not a refresh token) (401).
    """
    claims = _refresh_claims(settings, refresh_token)
    await repository.revoke_session(db, sid=claims.sid, username=claims.sub, now=datetime.now(UTC), reason="logout")


async def caller_from_access_token(
    db: MongoDatabase, settings: Settings, *, token: str, cache: SessionCache | None = None
) -> Caller:
    """The caller named by a bearer access token, as stored now.

    The user and session documents come from ``cache`` when given (current
    within ``SESSION_CACHE_MAX_STALENESS_SECONDS``, ``auth.session_cache``),
    otherwise from the database.

    Raises:
        InvalidTokenError: the token is malformed, forged, expired, not an
            access token, from a session that is not valid (never recorded,
            recorded for another subject, revoked, ended by a password, role
            or activation change, older than ``SESSION_MAX_AGE_DAYS``, or
            expired), or its user is unknown or deactivated (401).
    """
    try:
        if cache is not None:
            claims = cache.verified(token, lambda: decode_token(settings, token, expected_type="access"))
        else:
            claims = decode_token(settings, token, expected_type="access")
    except TokenError:
        raise InvalidTokenError() from None

    async def load() -> Documents:
        user, session = await asyncio.gather(
            users_service.find_account(db, username=claims.sub),
            repository.get_unrevoked_session(db, sid=claims.sid, username=claims.sub),
        )
        return user, session

    if cache is not None:
        doc, session = await cache.documents(sid=claims.sid, username=claims.sub, load=load)
    else:
        doc, session = await load()
    if not _session_valid(settings, session, doc):
        raise InvalidTokenError()
    return Caller(user=UserPublic.model_validate(doc), session_id=claims.sid)


async def change_password(
    db: MongoDatabase, throttle: FailureThrottle, *, caller: Caller, current_password: str, new_password: str
) -> None:
    """Set the caller's password (``POST /auth/password``); every *other* session of the user ends at once.

    Wrong current passwords are counted per login session (``throttle``, keyed
    by the caller's ``sid``), never by the account's sign-in throttle: failed
    sign-ins by someone else cannot stop the owner from changing the password,
    and a stolen session cannot guess for long. The new hash is written only
    if the stored hash is still the one the current password was checked
    against, with a bump of the user's ``session_epoch`` in the same write,
    which ends every session (access and refresh tokens); the calling session
    is then carried to the new epoch, so the device that changed the password
    stays signed in. If the process dies between the two writes, the calling
    session has ended too (fail-safe: sign in again).

    Raises:
        PasswordChangeThrottledError: too many wrong current passwords in this session (429).
        WrongCurrentPasswordError: ``current_password`` is wrong; counted for this session (401).
        PasswordChangedConcurrentlyError: the password changed since it was checked, e.g. by a
            concurrent change; nothing was written (409).
    """
    username = caller.user.username
    doc = await users_service.find_account(db, username=username)
    verified_hash = doc["password_hash"] if doc is not None else None
    async with throttle.attempt(caller.session_id) as attempt:
        if attempt.retry_after is not None:
            raise PasswordChangeThrottledError(retry_after=attempt.retry_after)
        if verified_hash is None or not await verify_password(current_password, verified_hash):
            await attempt.failed()
            raise WrongCurrentPasswordError()
    assert doc is not None and verified_hash is not None  # checked above
    updated = await users_service.set_password(
        db, username=username, password_hash=await hash_password(new_password), expected_hash=verified_hash
    )
    if updated is None:  # another change won the race: its password stands, and it ended this session
        raise PasswordChangedConcurrentlyError()
    await repository.restamp_session(
        db, sid=caller.session_id, username=username, old_epoch=_epoch(doc), new_epoch=_epoch(updated)
    )


async def revoke_other_sessions(db: MongoDatabase, *, caller: Caller) -> int:
    """End every session of the caller except the calling one (``POST /auth/sessions/revoke-others``).

    Each ended session's refresh and access tokens stop working at once; the
    calling session goes on. A login started while this runs is not ended.

    Returns:
        How many live sessions were ended (0 when there was none).
    """
    doc = await users_service.find_account(db, username=caller.user.username)
    return await repository.revoke_other_sessions(
        db,
        username=caller.user.username,
        keep_sid=caller.session_id,
        epoch=_epoch(doc) if doc is not None else 0,
        now=datetime.now(UTC),
    )
