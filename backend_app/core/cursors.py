"""Signed keyset cursors: the sort order, the boundary a cursor names, and the HMAC codec.

A cursor is URL-safe base64 of ``{v, s: sort, f: filter fingerprint, k: last
sort key, i: last _id, d: "next" | "prev"}`` (BSON canonical extended JSON so
``ObjectId``, ``Decimal128`` and dates survive exactly) followed by ``.`` and an
HMAC-SHA256 of those bytes under a key derived from ``settings.signing_key``.
Nothing here knows about HTTP or MongoDB queries: ``core.pagination`` opens a
page with a cursor, ``core.keyset`` turns its position into filters.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from bson import ObjectId, json_util
from bson.errors import BSONError
from bson.json_util import CANONICAL_JSON_OPTIONS

from backend_app.core.errors import DomainError

#: Longest accepted ``cursor`` query value, in characters.
MAX_CURSOR_LENGTH = 1024
CURSOR_VERSION = 1
#: Domain separation: the cursor key is derived from the signing key, so a
#: cursor MAC can never be confused with a JWT signature.
_CURSOR_KEY_LABEL = b"storefront/cursor/v1"


class InvalidCursorError(DomainError):
    """A cursor is tampered, truncated, foreign, or reused with other filters or sort: 400."""

    status = 400
    code = "invalid_cursor"
    title = "Invalid cursor"

    def __init__(self, detail: str = "The cursor is invalid for this list; start again without a cursor.") -> None:
        super().__init__(detail)


@dataclass(frozen=True, slots=True)
class SortOrder:
    """A list's order: ``field`` then ``_id`` as tie-breaker, both in ``direction``.

    Attributes:
        field: the sort key's document field (``_id`` for the default order).
        direction: ``1`` ascending, ``-1`` descending.
    """

    field: str = "_id"
    direction: Literal[1, -1] = 1

    @classmethod
    def parse(cls, token: str) -> SortOrder:
        """Parse a ``sort`` value such as ``price`` or ``-created_at`` (``-`` prefix: descending)."""
        direction: Literal[1, -1] = -1 if token.startswith("-") else 1
        return cls(field=token.lstrip("-"), direction=direction)

    @property
    def token(self) -> str:
        """The canonical text of this order (``-price``), bound into cursors."""
        return ("-" if self.direction == -1 else "") + self.field


ID_ORDER = SortOrder()


@dataclass(frozen=True, slots=True)
class CursorPosition:
    """The boundary record a cursor points at.

    Attributes:
        key: the boundary record's sort-key value (``None`` when sorting by ``_id``).
        id: the boundary record's ``_id``.
        before: ``True`` for a ``prev_cursor`` (records preceding the boundary),
            ``False`` for a ``next_cursor`` (records following it).
    """

    key: Any
    id: ObjectId
    before: bool = False


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def filter_fingerprint(scope: str, filters: Mapping[str, Any]) -> str:
    """A stable digest of a list's identity: its ``scope`` (e.g. ``products``) and filter values.

    Values are rendered with ``str`` when not JSON-native (``Decimal``), keys sorted,
    so equal filters give equal fingerprints across processes.
    """
    canonical = json.dumps({"scope": scope, "filters": dict(filters)}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


class CursorCodec:
    """Signs and verifies cursors with HMAC-SHA256 (RFC 2104).

    Args:
        secret: the application's signing key (``settings.signing_key``); the
            cursor key is derived from it with a fixed label.
    """

    __slots__ = ("_key",)

    def __init__(self, secret: str) -> None:
        self._key = hmac.new(secret.encode("utf-8"), _CURSOR_KEY_LABEL, hashlib.sha256).digest()

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def encode(self, *, fingerprint: str, sort: SortOrder, position: CursorPosition) -> str:
        """Return the opaque, URL-safe cursor for ``position`` in the list ``fingerprint`` ordered by ``sort``."""
        body = {
            "v": CURSOR_VERSION,
            "s": sort.token,
            "f": fingerprint,
            "k": position.key,
            "i": position.id,
            "d": "prev" if position.before else "next",
        }
        payload = json_util.dumps(body, json_options=CANONICAL_JSON_OPTIONS, separators=(",", ":")).encode("utf-8")
        return f"{_b64encode(payload)}.{_b64encode(self._mac(payload))}"

    def decode(self, token: str, *, fingerprint: str, sort: SortOrder) -> CursorPosition:
        """Verify ``token`` and return its position.

        Raises:
            InvalidCursorError: malformed, truncated, bad signature, another
                version, or issued for other filters or another sort.
        """
        try:
            payload_text, mac_text = token.split(".")
            payload, mac = _b64decode(payload_text), _b64decode(mac_text)
        except (ValueError, binascii.Error):
            raise InvalidCursorError("The cursor is malformed or truncated.") from None
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise InvalidCursorError("The cursor's signature does not match; it was altered or not issued here.")
        try:
            body = json_util.loads(payload.decode("utf-8"), json_options=CANONICAL_JSON_OPTIONS)
            version, sort_token, bound, key, last_id, way = (
                body["v"],
                body["s"],
                body["f"],
                body["k"],
                body["i"],
                body["d"],
            )
        except (ValueError, KeyError, TypeError, BSONError):
            raise InvalidCursorError("The cursor is malformed.") from None
        if version != CURSOR_VERSION or not isinstance(last_id, ObjectId) or way not in ("next", "prev"):
            raise InvalidCursorError("The cursor is malformed.")
        if sort_token != sort.token or bound != fingerprint:
            raise InvalidCursorError("The cursor was issued for other filters or another sort order.")
        return CursorPosition(key=key, id=last_id, before=way == "prev")
