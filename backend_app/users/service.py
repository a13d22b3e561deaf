"""User rules: registration, admin listing and updates, the first admin."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from backend_app.audit import service as audit
from backend_app.core.db import MongoDatabase, run_in_transaction
from backend_app.core.pages import PageMeta
from backend_app.core.pagination import PageParams
from backend_app.core.security import hash_password
from backend_app.users import repository
from backend_app.users.documents import PublicUserDocument, UserDocument
from backend_app.users.exceptions import (
    AccountExistsError,
    SelfLockoutError,
    UserAlreadyExistsError,
    UserNotFoundError,
)
from backend_app.users.schemas import Role, UserCreate, UserPublic, UserUpdate


def _duplicate_field(exc: DuplicateKeyError) -> str | None:
    """Which unique field of a user (``username`` or ``email``) a duplicate-key error is about.

    ``None`` when the refusing index is not one of the users' own (e.g. an audit
    trail index, in the same transaction): that is not a taken name or address.
    """
    details: Mapping[str, Any] = exc.details or {}
    keys = set((details.get("keyPattern") or details.get("keyValue") or {}).keys())
    message = str(details.get("errmsg", ""))
    if "email" in keys or "email_unique" in message:
        return "email"
    if keys & {"username", "username_key"} or "username_unique" in message or "username_key_unique" in message:
        return "username"
    return None


async def create_user(
    db: MongoDatabase, *, user: UserCreate, role: Role = "user", actor: str | None = None
) -> UserPublic:
    """Store a new active user with a bcrypt hash of ``user.password`` (hashed off the event loop).

    Args:
        user: validated registration data (username pattern, 8..72-byte password).
        role: ``user`` for self-registration; ``admin`` only from ``create-admin``.
        actor: who creates the account, when it is an administrative act
            (``create-admin``: :data:`CREATE_ADMIN_ACTOR`). The user and its
            ``user.create`` audit entry then commit in one transaction;
            self-registration (``None``) records none.

    Raises:
        UserAlreadyExistsError: the username (in any case) or the email is taken (409).
    """
    password_hash = await hash_password(user.password)

    async def work(session: AsyncClientSession | None) -> UserDocument:
        doc = await repository.insert_user(
            db,
            username=user.username,
            email=user.email,
            password_hash=password_hash,
            full_name=user.full_name,
            role=role,
            session=session,
        )
        if actor is not None:
            await _audit_user_change(db, actor=actor, action="user.create", before=None, after=doc, session=session)
        return doc

    try:
        doc = await (run_in_transaction(db.client, work) if actor is not None else work(None))
    except DuplicateKeyError as exc:
        field = _duplicate_field(exc)
        if field is None:
            raise
        raise UserAlreadyExistsError(field) from None  # type: ignore[arg-type]
    return UserPublic.model_validate(doc)


async def list_users(
    db: MongoDatabase, *, username: str | None, email: str | None, page: PageParams
) -> tuple[list[UserPublic], PageMeta]:
    """One page of users in ascending ``_id`` order, filtered by username / email prefix
    (literal prefixes, ``email`` in any case), by offset or by cursor.

    Raises:
        InvalidCursorError: the cursor is forged or belongs to other filters or another list (400).
    """
    window = page.window(scope="users", filters={"username": username, "email": email.lower() if email else None})
    query = repository.user_filter(username_prefix=username, email_prefix=email)
    docs, meta = window.finish(await repository.list_users(db, query=query, window=window))
    return [UserPublic.model_validate(doc) for doc in docs], meta


async def update_user(db: MongoDatabase, *, username: str, changes: UserUpdate, actor: UserPublic) -> UserPublic:
    """Apply an admin's ``role`` / ``is_active`` change to ``username``.

    A deactivation or a role change also ends every login session of the user,
    in the same write (:func:`ends_sessions`); reactivating does not bring
    old sessions back. The change and its audit entry (``user.update`` by
    ``actor``: changed fields before and after) commit in one transaction.

    Raises:
        SelfLockoutError: ``actor`` would demote or deactivate themselves (409).
        UserNotFoundError: no such user (404).
    """
    if username == actor.username and (
        (changes.role is not None and changes.role != "admin") or changes.is_active is False
    ):
        raise SelfLockoutError()

    async def work(session: AsyncClientSession) -> PublicUserDocument:
        before = await repository.get_by_username(db, username=username, session=session)
        if before is None:
            raise UserNotFoundError(username)
        doc = await repository.update_user(
            db,
            username=username,
            role=changes.role,
            is_active=changes.is_active,
            end_sessions=ends_sessions(before, changes),
            session=session,
        )
        if doc is None:
            raise UserNotFoundError(username)
        await _audit_user_change(
            db, actor=actor.username, action="user.update", before=before, after=doc, session=session
        )
        return doc

    return UserPublic.model_validate(await run_in_transaction(db.client, work))


def _audited_fields(doc: PublicUserDocument) -> dict[str, Any]:
    """What the audit trail records of a user: ``role`` and ``is_active`` (never the password hash)."""
    return {"role": doc["role"], "is_active": doc["is_active"]}


async def _audit_user_change(
    db: MongoDatabase,
    *,
    actor: str,
    action: str,
    before: PublicUserDocument | None,
    after: PublicUserDocument,
    session: AsyncClientSession | None,
) -> None:
    """Record ``action`` on the user ``after`` inside ``session``'s transaction.

    ``before`` ``None`` (a creation): ``after``'s audited fields; otherwise only
    the audited fields that changed, before and after.
    """
    old, new = (
        (None, _audited_fields(after))
        if before is None
        else audit.changed_fields(_audited_fields(before), _audited_fields(after))
    )
    await audit.record(
        db,
        actor=actor,
        action=action,
        entity_type="user",
        entity_id=after["username"],
        before=old,
        after=new,
        session=session,
    )


# --- Session revocation on account changes ---------------------------------------


def ends_sessions(current: PublicUserDocument, changes: UserUpdate) -> bool:
    """Whether ``changes`` to the stored user ``current`` end its login sessions.

    A deactivation or a reactivation, or a role different from the current
    one, does; re-sending the current values does not. Reactivation ends
    sessions too so that an account deactivated before sessions had epochs
    (whose sessions were never ended) does not get its old tokens back.
    """
    activation_changes = changes.is_active is not None and changes.is_active != current.get("is_active", False)
    role_changes = changes.role is not None and changes.role != current.get("role")
    return bool(activation_changes or role_changes)


async def ensure_user_exists(db: MongoDatabase, *, username: str) -> None:
    """Check that ``username`` is a registered user (e.g. before an admin orders for them).

    Raises:
        UserNotFoundError: no such user (404 ``user_not_found``).
    """
    if await repository.get_by_username(db, username=username) is None:
        raise UserNotFoundError(username)


#: The ``actor`` the audit trail records for ``python -m backend_app create-admin``.
CREATE_ADMIN_ACTOR = "cli:create-admin"


@dataclass(frozen=True, slots=True)
class AdminOutcome:
    """What :func:`ensure_admin` did: ``created`` a new admin, ``promoted`` an existing user, or neither."""

    user: UserPublic
    created: bool
    promoted: bool


async def ensure_admin(db: MongoDatabase, *, user: UserCreate, promote_existing: bool = False) -> AdminOutcome:
    """Make ``user.username`` an active admin (``create-admin``).

    - No such user: it is created as an admin with ``user``'s email and password.
    - An existing active admin and no ``promote_existing``: nothing changes
      (running the command again is harmless).
    - Any other existing account (anyone may have registered the name first):
      refused unless ``promote_existing``. With it, the account becomes an
      active admin *and* its password is set to ``user.password`` and every
      session of it ends, in one write, so whoever registered it cannot sign
      in with their own password (or keep a token) as an admin. Its email is
      kept.

    Both changes are audited (actor :data:`CREATE_ADMIN_ACTOR`) in the
    transaction that makes them: ``user.create`` (``after``: role and
    activation) and ``user.promote`` (role and activation before and after;
    the action itself says the password was reset and every session ended).

    Raises:
        AccountExistsError: the username exists and is not an active admin, without ``promote_existing`` (1).
        UserAlreadyExistsError: a new admin's email belongs to another user (409).
    """
    existing = await repository.get_by_username(db, username=user.username)
    if existing is None:
        try:
            created = await create_user(db, user=user, role="admin", actor=CREATE_ADMIN_ACTOR)
            return AdminOutcome(user=created, created=True, promoted=False)
        except UserAlreadyExistsError as exc:
            if exc.extra.get("field") == "email":
                raise
            existing = await repository.get_by_username(db, username=user.username)  # created concurrently
            if existing is None:  # the name collides with another case variant
                raise
    if not promote_existing:
        if existing["role"] == "admin" and existing["is_active"]:
            return AdminOutcome(user=UserPublic.model_validate(existing), created=False, promoted=False)
        raise AccountExistsError(user.username)
    password_hash = await hash_password(user.password)

    async def promote(session: AsyncClientSession) -> PublicUserDocument:
        before = await repository.get_by_username(db, username=user.username, session=session)
        doc = await repository.set_password(
            db, username=user.username, password_hash=password_hash, make_active_admin=True, session=session
        )
        assert before is not None and doc is not None  # users are never deleted
        await _audit_user_change(
            db, actor=CREATE_ADMIN_ACTOR, action="user.promote", before=before, after=doc, session=session
        )
        return doc

    doc = await run_in_transaction(db.client, promote)
    return AdminOutcome(user=UserPublic.model_validate(doc), created=False, promoted=True)


# --- The stored accounts, for the auth domain (sign-in, sessions, password change) --------------------


async def find_account(
    db: MongoDatabase, *, username: str | None = None, email: str | None = None
) -> UserDocument | None:
    """The stored user (with its password hash and session epoch) by ``username``, else by ``email``; ``None`` if unknown."""
    if username is not None:
        return await repository.get_by_username(db, username=username)
    if email is not None:
        return await repository.get_by_email(db, email=email)
    return None


async def set_password(
    db: MongoDatabase, *, username: str, password_hash: str, expected_hash: str | None = None
) -> PublicUserDocument | None:
    """Store ``password_hash`` for ``username`` and end its sessions (``users.repository.set_password``).

    With ``expected_hash``, only while the stored hash is still that one (of two concurrent changes,
    one wins). Returns the stored user after the change, or ``None`` when nothing was written.
    """
    return await repository.set_password(
        db, username=username, password_hash=password_hash, expected_hash=expected_hash
    )
