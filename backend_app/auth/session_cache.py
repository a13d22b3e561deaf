"""The user and login session of authenticated requests, served from process memory.

Every authenticated request needs its token's user document and login
session document (``auth.service.caller_from_access_token``). Reading both
from the database on every request made them the largest single cost of the
busiest routes. :class:`SessionCache` keeps them per process, in an LRU of at
most ``SESSION_CACHE_MAX_ENTRIES`` sessions, and is only ever as old as the
revocation bound allows (docs/security.md (Auth hardening), "Session cache"):

- **Signal.** A :class:`~backend_app.core.change_feed.ChangeFeed` on the
  ``users`` and ``sessions`` collections drops a session when its document
  changes, and every session of a user when the user's document changes.
  Any write counts (logout, rotation, reuse revocation, a password, role or
  activation change, revoking other sessions, an edit behind the API), so no
  write path has to know about the cache.
- **Bound.** An entry is served only while the feed is caught up
  (:meth:`ChangeFeed.caught_up`: it confirmed less than
  ``SESSION_CACHE_MAX_STALENESS_SECONDS`` ago that it has reported every
  change); otherwise the request reads the database, as without the cache.
  When the stream errors, stalls or is reopened, the cache is emptied and
  stays unused until the new stream confirms.
- **Backstop.** An entry is re-read from the database at least every
  ``SESSION_CACHE_TTL_SECONDS``.
- **This process's own writes** take effect at once, before the write
  returns: :class:`LocalWrites`, a command listener on the process's one
  client, drops what a write to ``users`` or ``sessions`` names when the
  command is sent and again when it (or its transaction) completes, so a
  logout answered ``204`` is refused on the next request to the same process.
- **Fill race.** A read that overlapped any invalidation is not stored: the
  cache's generation counts invalidations, and a fill is kept only if the
  generation is the one seen before the database read began.

Session age (``SESSION_MAX_AGE_DAYS``) and token expiry are still checked on
every request by the caller (``auth.service``): the cache holds documents,
never decisions. Password hashes are not kept. The verified claims of
recently seen access tokens are kept too (:meth:`SessionCache.verified`),
re-checking only ``exp``.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from time import monotonic, time
from typing import Any, cast

from pymongo import monitoring

from backend_app.auth.documents import SessionCheck
from backend_app.auth.repository import COLLECTION as SESSIONS
from backend_app.core.change_feed import ChangeFeed
from backend_app.core.db import MongoDatabase
from backend_app.core.security import TokenClaims
from backend_app.users.documents import PublicUserDocument
from backend_app.users.repository import COLLECTION as USERS
from config import Settings

logger = logging.getLogger(__name__)

#: A user (without its password hash: what the cache keeps) and its session, either ``None`` when not stored.
Documents = tuple[PublicUserDocument | None, SessionCheck | None]
#: Fields of a user document never kept in memory.
_SECRET_FIELDS = ("password_hash",)


@dataclass(slots=True)
class _Entry:
    username: str
    user_id: Any
    user: PublicUserDocument
    session: SessionCheck
    expires: float  # monotonic seconds


class SessionCache:
    """LRU of ``(user document, session document)`` by session id, invalidated by a change feed.

    Args:
        max_entries: most sessions kept (least recently used evicted first).
        ttl_s: longest an entry is served, in seconds (backstop).
        max_staleness_s: entries are served only while the change feed
            confirmed less than this many seconds ago that it reported every
            change (the revocation bound).
    """

    def __init__(self, *, max_entries: int, ttl_s: float, max_staleness_s: float) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self.max_staleness_s = max_staleness_s
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._by_user: dict[Any, set[str]] = {}
        self._tokens: OrderedDict[str, TokenClaims] = OrderedDict()
        self.generation = 0
        self.feed: ChangeFeed | None = None
        #: Requests answered from memory / from ``load()`` (for tests and benchmarks).
        self.hits = self.misses = 0

    def verified(self, token: str, verify: Callable[[], TokenClaims]) -> TokenClaims:
        """The claims of ``token``: remembered from an earlier ``verify()`` of the same string, or ``verify()``.

        A token string whose signature and claims verified once verifies the
        same way until its ``exp`` (the key and the checks do not change within
        a process), so only ``exp`` is checked again on a hit; an expired one
        is verified again (and refused). This skips the JWT's base64 and HMAC
        work on repeated requests; whether its session still lets it in is
        decided from the session documents, as without the cache.

        Raises:
            whatever ``verify`` raises (``TokenError``).
        """
        claims = self._tokens.get(token)
        if claims is not None and time() < claims.exp:
            self._tokens.move_to_end(token)
            return claims
        claims = verify()
        self._tokens[token] = claims
        if len(self._tokens) > self.max_entries:
            self._tokens.popitem(last=False)
        return claims

    def watch(self, db: MongoDatabase) -> None:
        """Start the change feed on ``db``'s ``users`` and ``sessions`` (in the running event loop)."""
        # Inserts are not reported: a new login or user cannot make a cached entry stale (only existing
        # sessions are cached), and a login storm must not keep every concurrent fill from being kept.
        self.feed = ChangeFeed(
            db,
            [USERS, SESSIONS],
            on_change=self.changed,
            on_reset=self.clear,
            max_staleness_s=self.max_staleness_s,
            operations=frozenset({"update", "replace", "delete"}),
        )
        self.feed.start()

    def _caught_up(self) -> bool:
        return self.feed is not None and self.feed.caught_up()

    def __len__(self) -> int:
        return len(self._entries)

    async def documents(self, *, sid: str, username: str, load: Callable[[], Awaitable[Documents]]) -> Documents:
        """The user document of ``username`` and its unrevoked session ``sid``: from memory, or ``load()``.

        ``load`` reads both from the database (the design without a cache);
        its result is kept when both documents exist and no invalidation
        happened while it ran.
        """
        entry = self._entries.get(sid)
        if entry is not None and entry.username == username and self._caught_up() and monotonic() < entry.expires:
            self._entries.move_to_end(sid)
            self.hits += 1
            return entry.user, entry.session
        self.misses += 1
        generation = self.generation
        user, session = await load()
        if (
            user is not None
            and session is not None
            and user.get("username") == username
            and generation == self.generation
            and self._caught_up()
        ):
            self._store(sid, username, user, session)
        return user, session

    def _store(self, sid: str, username: str, user: PublicUserDocument, session: SessionCheck) -> None:
        self._drop(sid)
        kept = cast(PublicUserDocument, {k: v for k, v in user.items() if k not in _SECRET_FIELDS})
        self._entries[sid] = _Entry(username, user.get("_id"), kept, session.copy(), monotonic() + self.ttl_s)
        self._by_user.setdefault(user.get("_id"), set()).add(sid)
        while len(self._entries) > self.max_entries:
            self._drop(next(iter(self._entries)))

    def _drop(self, sid: str) -> None:
        entry = self._entries.pop(sid, None)
        if entry is not None:
            sids = self._by_user.get(entry.user_id)
            if sids is not None:
                sids.discard(sid)
                if not sids:
                    del self._by_user[entry.user_id]

    def changed(self, collection: str, document_id: Any) -> None:
        """A document of ``collection`` changed: forget what depends on it (``ChangeFeed.on_change``)."""
        self.generation += 1
        if collection == SESSIONS:
            self._drop(str(document_id))
        elif collection == USERS:
            for sid in list(self._by_user.get(document_id, ())):
                self._drop(sid)
        else:
            self.clear()

    def forget(self, targets: Sequence[tuple[str, Any]] | None) -> None:
        """Drop what writes name: ``("sid" | "username" | "user_id", value)`` pairs; ``None``: everything.

        Called by :class:`LocalWrites` for this process's own writes.
        """
        if targets is None:
            self.clear()
            return
        if not targets:  # an insert: nothing cached depends on a new document
            return
        self.generation += 1
        for kind, value in targets:
            if kind == "sid":
                self._drop(value)
            elif kind == "user_id":
                self.changed(USERS, value)
            else:
                for sid in [sid for sid, entry in self._entries.items() if entry.username == value]:
                    self._drop(sid)

    def clear(self) -> None:
        """Forget every entry (``ChangeFeed.on_reset``: changes may have been missed)."""
        self.generation += 1
        self._entries.clear()
        self._by_user.clear()

    async def close(self) -> None:
        """Stop the change feed; the cache serves nothing afterwards."""
        logger.info("session cache: %d hits, %d misses", self.hits, self.misses)
        if self.feed is not None:
            await self.feed.stop()
        self.clear()


def create_session_cache(settings: Settings) -> SessionCache | None:
    """A :class:`SessionCache` sized by the settings, or ``None`` when ``SESSION_CACHE_ENABLED`` is false.

    It serves nothing until :meth:`SessionCache.watch` has started its change
    feed and the feed has confirmed; register :class:`LocalWrites` for it on
    the process's client.
    """
    if not settings.session_cache_enabled:
        return None
    return SessionCache(
        max_entries=settings.session_cache_max_entries,
        ttl_s=settings.session_cache_ttl_seconds,
        max_staleness_s=settings.session_cache_max_staleness_seconds,
    )


#: Commands that write documents, with the field of their body listing the statements' filters.
_WRITES = {"update": ("updates", "q"), "delete": ("deletes", "q"), "findAndModify": (None, "query")}
_TXN_ENDS = frozenset({"commitTransaction", "abortTransaction"})
#: Transactions writing users/sessions tracked at once (their writes were already applied when sent).
MAX_OPEN_TRANSACTIONS = 1000


def _targets(command: Mapping[str, Any], name: str) -> list[tuple[str, Any]] | None:
    """What a write command on ``users``/``sessions`` names, as :meth:`SessionCache.forget` pairs.

    ``[]`` for inserts (a new login or user: nothing cached depends on it);
    ``None`` when a filter names neither an ``_id`` nor a ``username`` by
    equality (forget everything).
    """
    if name == "insert":
        return []
    id_kind = "sid" if command[name] == SESSIONS else "user_id"
    many, field = _WRITES[name]
    filters = [stmt.get(field) or {} for stmt in command.get(many, ())] if many else [command.get(field) or {}]
    targets: list[tuple[str, Any]] = []
    for query in filters:
        if "_id" in query and not isinstance(query["_id"], Mapping):
            targets.append((id_kind, query["_id"]))
        elif "username" in query and isinstance(query["username"], str):
            targets.append(("username", query["username"]))
        else:
            return None
    return targets


class LocalWrites(monitoring.CommandListener):
    """Make this process's writes to ``users`` and ``sessions`` take effect in ``cache`` at once.

    Register on the process's ``AsyncMongoClient``. A write is applied to
    the cache when it is sent and again when it completes (for a write in a
    transaction: again when the transaction commits or aborts), so no read
    that began before the change is visible can fill the cache with the old
    state.
    """

    def __init__(self, cache: SessionCache) -> None:
        self._cache = cache
        self._pending: dict[int, list[tuple[str, Any]] | None] = {}
        self._transactions: dict[Any, list[list[tuple[str, Any]] | None]] = {}
        self._ending: dict[int, Any] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        lsid = _lsid(event.command)
        if name in _TXN_ENDS:
            if lsid in self._transactions:
                self._ending[event.request_id] = lsid
            return
        if (name != "insert" and name not in _WRITES) or event.command.get(name) not in (USERS, SESSIONS):
            return
        targets = _targets(event.command, name)
        self._cache.forget(targets)
        self._pending[event.request_id] = targets
        if event.command.get("autocommit") is False and lsid is not None:
            self._transactions.setdefault(lsid, []).append(targets)
            if len(self._transactions) > MAX_OPEN_TRANSACTIONS:  # never committed nor aborted by us: drop the oldest
                self._transactions.pop(next(iter(self._transactions)))

    def _completed(self, event: monitoring.CommandSucceededEvent | monitoring.CommandFailedEvent) -> None:
        if event.request_id in self._pending:
            self._cache.forget(self._pending.pop(event.request_id))
        elif event.request_id in self._ending:
            for targets in self._transactions.pop(self._ending.pop(event.request_id), []):
                self._cache.forget(targets)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._completed(event)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._completed(event)


def _lsid(command: Mapping[str, Any]) -> Any:
    """The logical session id of a command (bytes), or ``None``."""
    lsid = command.get("lsid")
    return bytes(lsid["id"]) if isinstance(lsid, Mapping) and "id" in lsid else None
