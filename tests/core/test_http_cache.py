"""Unit tests, no database: ``core.http_cache``'s entity-tag syntax, ``If-None-Match`` evaluation and
``Cache-Control`` scope (RFC 9110 §8.8.3, §13.1.2; RFC 9111 §5.2.2.7)."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from backend_app.core.http_cache import (
    ANY,
    EntityTag,
    cache_control,
    entity_tag,
    none_match_fails,
    parse_entity_tags,
    weak_match,
)

CURRENT = entity_tag(b'{"data":[]}')


def test_the_tag_is_strong_quoted_and_changes_with_any_byte() -> None:
    assert CURRENT.startswith('"') and CURRENT.endswith('"') and not CURRENT.startswith("W/")
    assert entity_tag(b'{"data":[]}') == CURRENT
    assert entity_tag(b'{"data":[] }') != CURRENT
    assert parse_entity_tags(CURRENT) == [EntityTag(opaque=CURRENT.strip('"'))]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("*", ANY),
        ('"abc"', [EntityTag("abc")]),
        ('W/"abc"', [EntityTag("abc", weak=True)]),
        ('""', [EntityTag("")]),
        ('"a", W/"b" ,"c"', [EntityTag("a"), EntityTag("b", weak=True), EntityTag("c")]),
        ('"a,b", "c"', [EntityTag("a,b"), EntityTag("c")]),  # a comma is a valid etagc
        (' , "a",, "b" ,', [EntityTag("a"), EntityTag("b")]),  # empty list elements are accepted (§5.6.1)
        ('"\xe9t\xe9"', [EntityTag("\xe9t\xe9")]),  # obs-text, as Starlette decodes it (latin-1)
    ],
)
def test_valid_field_values_parse(value: str, expected: object) -> None:
    assert parse_entity_tags(value) == expected


@pytest.mark.parametrize(
    "value",
    ["abc", '"abc', 'w/"abc"', '"a" "b"', '"a"b', '"a b"', '"a"; "b"', '* , "a"', '"a\\"b"'],
)
def test_malformed_field_values_are_refused(value: str) -> None:
    assert parse_entity_tags(value) is None


@pytest.mark.parametrize(
    ("lines", "fails"),
    [
        ([], False),
        ([CURRENT], True),
        (["W/" + CURRENT], True),  # weak comparison
        (['"other", ' + CURRENT], True),
        (['"other", W/' + CURRENT], True),
        (['"other"'], False),
        (["*"], True),
        (['"other"', CURRENT], True),  # several field lines form one list
        ([CURRENT.strip('"')], False),  # unquoted: malformed, so ignored
        ([CURRENT + " junk"], False),
    ],
)
def test_if_none_match_evaluation(lines: list[str], fails: bool) -> None:
    assert none_match_fails(lines, CURRENT) is fails


@pytest.mark.parametrize("tag", [EntityTag("abc"), EntityTag("abc", weak=True), EntityTag("")])
def test_a_tag_prints_as_the_header_syntax_it_was_parsed_from(tag: EntityTag) -> None:
    assert parse_entity_tags(str(tag)) == [tag]


def test_weak_comparison_ignores_the_weak_prefix_only() -> None:
    assert weak_match(EntityTag("a"), EntityTag("a", weak=True))
    assert not weak_match(EntityTag("a"), EntityTag("b"))


def _request(headers: dict[str, str]) -> Request:
    raw = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    return Request({"type": "http", "method": "GET", "path": "/products", "query_string": b"", "headers": raw})


def test_cache_control_is_private_for_requests_with_authorization() -> None:
    assert cache_control(_request({}), "no-cache") == "public, no-cache"
    assert cache_control(_request({"Authorization": "Bearer x"}), "no-cache") == "private, no-cache"
    assert cache_control(_request({"Authorization": "Bearer x"}), "") == "private"
