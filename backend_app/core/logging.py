"""JSON logs: one JSON object per line to stdout and to a size-rotated file.

- Format: python-json-logger, one line per record with ``timestamp`` (UTC,
  ISO 8601), ``level``, ``logger``, ``message``, ``request_id`` (the request's
  ``X-Request-ID``, or ``null`` outside a request) and any ``extra`` fields.
- Destinations: stdout and ``<LOG_DIR>/storefront.log``, rotated at
  ``LOG_FILE_MAX_BYTES`` keeping ``LOG_FILE_BACKUP_COUNT`` files. The file
  handler is concurrent-log-handler's, which locks around writes and rotation,
  so several uvicorn workers can share one file.
- Secrets: passwords, tokens and hashes never reach a log line. Nothing in the
  app logs request bodies, headers or query strings, and as a second line of
  defence :class:`RedactingJsonFormatter` blanks fields whose name says they
  hold a secret and masks JWTs, bcrypt hashes, bearer credentials and
  ``password=...`` pairs in any text.

``configure_logging`` is idempotent: it replaces only the handlers it added
before, so test runners' capture handlers stay in place.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Any

from asgi_correlation_id import correlation_id
from concurrent_log_handler import ConcurrentRotatingFileHandler
from pythonjsonlogger.json import JsonFormatter

from config import Settings

LOG_FILE_NAME = "storefront.log"
#: Attribute marking the handlers this module installed on the root logger.
_OWNED = "_storefront_handler"
REDACTED = "[REDACTED]"

#: Field names whose values are always blanked (case-insensitive substring match).
SENSITIVE_KEY = re.compile(r"pass(word)?|secret|token|authorization|hash|cookie|credential", re.IGNORECASE)
#: Secret-shaped text masked anywhere in a line: JWTs, bcrypt hashes, bearer
#: credentials, and ``password=...`` / ``"password": "..."`` pairs.
SENSITIVE_TEXT = [
    (re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), REDACTED),
    (re.compile(r"\$2[abxy]?\$\d{2}\$[./A-Za-z0-9]{53}"), REDACTED),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + REDACTED),
    (
        re.compile(
            r"""(?i)(["']?[\w-]*(?:password|passwd|secret|token)[\w-]*["']?\s*[:=]\s*)("[^"]*"|'[^']*'|[^\s,;&}]+)"""
        ),
        r"\1" + REDACTED,
    ),
]

#: Loggers that would echo request data or database commands at DEBUG; kept at WARNING.
QUIET_LOGGERS = ("pymongo", "uvicorn.access", "httpx", "httpcore", "multipart", "python_multipart", "asyncio")


def redact_text(text: str) -> str:
    """Mask secret-shaped substrings of ``text`` (see :data:`SENSITIVE_TEXT`)."""
    for pattern, replacement in SENSITIVE_TEXT:
        text = pattern.sub(replacement, text)
    return text


def redact(value: Any, key: str = "") -> Any:
    """Return ``value`` with secrets blanked: by field name (``key``) and by shape inside strings."""
    if key and SENSITIVE_KEY.search(key):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


class RedactingJsonFormatter(JsonFormatter):
    """python-json-logger's formatter, with :func:`redact` applied to every field of every record."""

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        """Redact the record's fields (message, extras, exception text) before serialisation."""
        log_data.pop("color_message", None)  # uvicorn's ANSI-coloured duplicate of ``message``
        return {key: redact(value, key) if key not in _SAFE_FIELDS else value for key, value in log_data.items()}


#: Fields we set ourselves and that never hold secrets (so their names are not matched).
_SAFE_FIELDS = frozenset({"timestamp", "level", "logger", "request_id"})


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` (asgi-correlation-id's context variable) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = correlation_id.get()
        return True


class StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler bound to whatever ``sys.stdout`` is when a record is emitted.

    (A plain ``StreamHandler(sys.stdout)`` keeps the stream it was built with,
    which breaks when a test runner swaps ``sys.stdout``.)
    """

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def build_formatter() -> RedactingJsonFormatter:
    """The JSON formatter of every handler: ``timestamp``, ``level``, ``logger``, ``message``, extras."""
    return RedactingJsonFormatter(
        "{levelname}{name}{message}",
        style="{",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp=True,
    )


def configure_logging(settings: Settings) -> None:
    """Send the root logger's records, as JSON lines, to stdout and ``<LOG_DIR>/storefront.log``.

    Args:
        settings: ``LOG_LEVEL``, ``LOG_DIR``, ``LOG_FILE_MAX_BYTES``, ``LOG_FILE_BACKUP_COUNT``.

    Raises:
        OSError: ``LOG_DIR`` cannot be created or written.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _OWNED, False)]:
        root.removeHandler(handler)
        handler.close()

    formatter = build_formatter()
    request_ids = RequestIdFilter()
    log_dir = Path(settings.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    file_handler = ConcurrentRotatingFileHandler(
        str(log_dir / LOG_FILE_NAME),
        maxBytes=settings.log_file_max_bytes,
        backupCount=settings.log_file_backup_count,
        encoding="utf-8",
    )
    for handler in (StdoutHandler(), file_handler):
        handler.setFormatter(formatter)
        handler.addFilter(request_ids)
        setattr(handler, _OWNED, True)
        root.addHandler(handler)
    root.setLevel(settings.log_level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(settings.log_level)))
