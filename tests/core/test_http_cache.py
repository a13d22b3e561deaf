"""``core.http_cache``: entity-tag syntax and ``If-None-Match`` evaluation (RFC 9110 §8.8.3, §13.1.2)."""

from __future__ import annotations

import pytest

from backend_app.core.http_cache import ANY, EntityTag, entity_tag, none_match_fails, parse_entity_tags

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
