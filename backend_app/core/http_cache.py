"""HTTP conditional requests: entity tags, ``If-None-Match`` and ``304 Not Modified`` (RFC 9110, RFC 9111).

Generic helpers, free of any domain: a route renders its response body once
(:func:`render_json`, exactly the bytes FastAPI would send for the route's
``response_model``), and :func:`conditional_response` answers ``200`` with
``ETag`` and ``Cache-Control``, or ``304`` with the same two headers and no
body when the request's ``If-None-Match`` names the current tag.

- The entity tag is **strong** and derived from the body bytes (BLAKE2b,
  128 bits): it changes whenever any byte of the representation changes, and
  equal bodies get equal tags on every worker and host, with no state shared.
- ``If-None-Match`` is parsed per RFC 9110 §13.1.2 (``*`` or a list of
  entity tags, §8.8.3 syntax, commas allowed inside a tag) and compared with
  the **weak** comparison function (§8.8.3.2), as that section requires. A
  malformed field is ignored (the full response is sent), never guessed at.
- ``Cache-Control`` is ``public`` only for anonymous requests; a request that
  carries ``Authorization`` gets ``private``, so no shared cache stores an
  authenticated response (RFC 9111 §3.5, §5.2.2.7).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Any, Final, cast
from urllib.parse import urlencode

from pydantic import TypeAdapter
from starlette.requests import Request
from starlette.responses import Response

JSON_MEDIA_TYPE = "application/json"

#: ``If-None-Match: *``: matches any current representation (RFC 9110 §13.1.2).
ANY: Final = "*"

# RFC 9110 §8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE; etagc = %x21 / %x23-7E / obs-text.
# Starlette decodes header bytes as latin-1, so obs-text (%x80-FF) arrives as U+0080..U+00FF.
_ENTITY_TAG = re.compile(r'(W/)?"([\x21\x23-\x7e\x80-\xff]*)"')
_OWS = " \t"

#: OpenAPI ``responses`` of a conditional GET: the headers of the 200, and the 304.
CONDITIONAL_GET_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "headers": {
            "ETag": {"description": "Strong entity tag of this representation.", "schema": {"type": "string"}},
            "Cache-Control": {
                "description": "`public` (anonymous) or `private` (with `Authorization`), "
                "plus revalidation directives.",
                "schema": {"type": "string"},
            },
        }
    },
    304: {
        "description": "Not Modified: `If-None-Match` names the current entity tag. No body; `ETag` and "
        "`Cache-Control` as on the 200.",
        "headers": {"ETag": {"schema": {"type": "string"}}, "Cache-Control": {"schema": {"type": "string"}}},
    },
}


@dataclass(frozen=True, slots=True)
class EntityTag:
    """One parsed entity tag: ``opaque`` is the quoted string's content, ``weak`` the ``W/`` prefix."""

    opaque: str
    weak: bool = False

    def __str__(self) -> str:
        return f'{"W/" if self.weak else ""}"{self.opaque}"'


def entity_tag(body: bytes) -> str:
    """The strong entity tag of ``body``: ``"<22 url-safe base64 chars of a 128-bit BLAKE2b digest>"``."""
    digest = hashlib.blake2b(body, digest_size=16).digest()
    return '"' + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii") + '"'


def parse_entity_tags(value: str) -> list[EntityTag] | str | None:
    """Parse an ``If-None-Match`` (or ``If-Match``) field value (RFC 9110 §13.1.2, §8.8.3, §5.6.1).

    Args:
        value: the field value; several field lines are joined with ``,`` first.

    Returns:
        :data:`ANY` for ``*``; the listed tags, in order (empty list elements
        are skipped, as §5.6.1 requires recipients to accept); or ``None``
        when the value is not valid syntax.
    """
    value = value.strip(_OWS)
    if value == ANY:
        return ANY
    tags: list[EntityTag] = []
    pos, end = 0, len(value)
    while pos < end:
        if value[pos] in _OWS or value[pos] == ",":
            pos += 1
            continue
        match = _ENTITY_TAG.match(value, pos)
        if match is None:
            return None
        tags.append(EntityTag(opaque=match.group(2), weak=match.group(1) is not None))
        pos = match.end()
        while pos < end and value[pos] in _OWS:
            pos += 1
        if pos < end and value[pos] != ",":
            return None
    return tags


def weak_match(a: EntityTag, b: EntityTag) -> bool:
    """RFC 9110 §8.8.3.2 weak comparison: the opaque tags are equal, ``W/`` or not."""
    return a.opaque == b.opaque


def none_match_fails(if_none_match: Iterable[str], current_etag: str) -> bool:
    """Whether the ``If-None-Match`` condition is **false** for a resource whose tag is ``current_etag``.

    False means the client's copy is current: a ``GET``/``HEAD`` is then
    answered ``304`` (RFC 9110 §13.1.2). ``*`` is false for any current
    representation; a list is false when one listed tag weakly matches.
    No field, or a malformed one: the condition is not evaluated (``False``).

    Args:
        if_none_match: every ``If-None-Match`` field line of the request.
        current_etag: the selected representation's tag, as sent in ``ETag``.
    """
    lines = list(if_none_match)
    if not lines:
        return False
    parsed = parse_entity_tags(",".join(lines))
    if parsed is None:
        return False
    if isinstance(parsed, str):  # ANY
        return True
    current = EntityTag(opaque=current_etag.removeprefix("W/").strip('"'), weak=current_etag.startswith("W/"))
    return any(weak_match(tag, current) for tag in parsed)


def cache_control(request: Request, directives: str) -> str:
    """``Cache-Control`` for ``request``: ``public, <directives>`` when anonymous, ``private, ...`` otherwise.

    A request carrying ``Authorization`` gets ``private``, so that shared
    caches never store it (RFC 9111 §3.5, §5.2.2.7); the body may be the same
    as the anonymous one, but who may reuse it is not.
    """
    scope = "private" if "authorization" in request.headers else "public"
    return f"{scope}, {directives}" if directives else scope


def _canonical(value: Any) -> str:
    """One spelling of a validated query value: ``Decimal("1.50")`` → ``1.5``, enums by value, booleans lower-case."""
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        text = format(value.normalize(), "f")
        return "0" if text in ("-0", "0") else text
    return str(value)


def cache_key(path: str, params: Mapping[str, Any]) -> str:
    """The key of a cached response: ``path`` and the route's *validated* parameters, in a canonical form.

    ``params`` are the values the route validated (``None`` for parameters not
    in use), so the key never holds a parameter the route does not declare
    (``?junk=N`` cannot make a new entry per ``N``), and the spellings of one
    value (``limit=010``, ``limit=10``, a repeated ``limit``) share one key.
    Names are sorted; values are URL-encoded.
    """
    items = sorted((name, _canonical(value)) for name, value in params.items() if value is not None)
    return f"{path}?{urlencode(items)}"


@cache
def _adapter(model: Any) -> TypeAdapter[Any]:
    return TypeAdapter(model)


def render_json(request: Request, value: Any) -> bytes:
    """Serialise ``value`` exactly as FastAPI would for the matched route's ``response_model``.

    Validates ``value`` against the route's ``response_model`` and dumps it
    with Pydantic's ``dump_json(by_alias=True)``, FastAPI's own fast path, so
    a route that returns a :class:`~starlette.responses.Response` built from
    these bytes sends what it would have sent without the conditional
    handling (and only the declared fields).

    Raises:
        pydantic.ValidationError: ``value`` does not fit the response model.
    """
    route = request.scope.get("route")
    model = getattr(route, "response_model", None)
    if model is None:
        return _adapter(cast(Hashable, type(value))).dump_json(value, by_alias=True)
    adapter = _adapter(model)
    return adapter.dump_json(adapter.validate_python(value), by_alias=True)


def conditional_response(
    request: Request, *, body: bytes, cache_control: str, etag: str | None = None, media_type: str = JSON_MEDIA_TYPE
) -> Response:
    """``200`` with ``body``, or ``304`` (no body) when ``If-None-Match`` names the current tag.

    Both carry ``ETag`` and ``Cache-Control`` (RFC 9110 §15.4.5: a 304 sends
    the fields a 200 would have sent for caching).

    Args:
        request: the ``GET`` (or ``HEAD``) request.
        body: the full representation, as rendered by :func:`render_json`.
        cache_control: the ``Cache-Control`` value (see :func:`cache_control`).
        etag: ``body``'s tag when already known (a cached page), else computed.
    """
    tag = etag or entity_tag(body)
    headers = {"ETag": tag, "Cache-Control": cache_control}
    if request.method in {"GET", "HEAD"} and none_match_fails(request.headers.getlist("if-none-match"), tag):
        return Response(status_code=304, headers=headers)
    return Response(content=body, media_type=media_type, headers=headers)
