"""The ``sessions`` collection's stored documents, as types: one document per login (refresh-token family).

A session is only valid while its ``epoch`` equals its user's
``session_epoch``: bumping that one field (``users.repository``) ends every
session of the user in the same write as a password, role or activation
change. Sessions stored before ``epoch`` existed lack it, which reads as 0.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, NotRequired, TypedDict

RevokedReason = Literal["logout", "refresh_reuse", "revoke_others"]


class SessionCheck(TypedDict):
    """What every authenticated request reads of its session (a projection of :class:`SessionDocument`)."""

    #: The tokens' ``sid`` claim.
    _id: str
    epoch: NotRequired[int | None]
    created_at: datetime
    #: ``jti`` of the only refresh token of the family that may still be used.
    refresh_jti: str


class SessionDocument(SessionCheck):
    """A stored login session, as a whole."""

    username: str
    #: When the refresh token was last rotated (``None`` until then), UTC.
    refreshed_at: datetime | None
    #: Expiry of the newest refresh token, UTC; the TTL index deletes the session after it.
    expires_at: datetime
    revoked_at: datetime | None
    revoked_reason: RevokedReason | None
