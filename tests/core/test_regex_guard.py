"""The ``name`` filter's regular expressions: validated, and catastrophic ones refused before the database (docs/contract.md §4).

The ``test_guard_*`` tests call ``core.regex_guard.check_safe_regex`` directly (no database); the others go through
``GET /products``.
"""

from __future__ import annotations

import time

import pytest

from backend_app.core.regex_guard import UnsafePatternError, check_safe_regex
from tests.support.helpers import assert_problem, create_product

CATASTROPHIC = [
    "(a+)+$",
    "(a*)*b",
    "(a|aa)*$",
    "(?:a+){2,}$",
    r"(a)\1",
    "(x+x+)+y",
    "(.*a){12}",
    "(a|a)" * 9,
    "a?" * 12 + "a" * 12,
    ".*a.*a.*a.*b",
]
FINE = [
    "shirt",
    "sh.*rt",
    "^iPhone [0-9]+",
    "(red|blue) shirt",
    "^red (shirt|dress)",
    "(a|b)?c",
    "[ab]*c",
    r"\(a|b\)*",
    "[(|]+x",
    r"\d+ ?GB",
    "^.*$",
    "[a-z]{2,5}",
]
#: Alternations inside a repeated group that Python's parser folds into a character class, so that only
#: a reading of the pattern as written (as MongoDB's PCRE runs it) refuses them.
FOLDED_ALTERNATIONS = [r"(a|[a-z])*\d", r"(\w|\d)+$", r"(\w|[\w ])*[!?]", "(a|b)*c", "(x(a|b)){2}", "(?x)(a # )\n|b)*"]


@pytest.mark.parametrize("pattern", CATASTROPHIC)
def test_guard_refuses_catastrophic_patterns(pattern):
    with pytest.raises(UnsafePatternError):
        check_safe_regex(pattern)


@pytest.mark.parametrize("pattern", FINE)
def test_guard_accepts_ordinary_patterns(pattern):
    assert check_safe_regex(pattern) == pattern


@pytest.mark.parametrize("pattern", FOLDED_ALTERNATIONS)
def test_guard_refuses_alternation_inside_a_repeated_group_as_written(pattern):
    with pytest.raises(UnsafePatternError, match=r"alternation inside a repeated group|group construct"):
        check_safe_regex(pattern)


@pytest.mark.parametrize("pattern", ["[", "(abc", "a{2,1}", "*a"])
def test_guard_refuses_patterns_that_do_not_compile(pattern):
    with pytest.raises(UnsafePatternError, match="not a valid regular expression"):
        check_safe_regex(pattern)


def test_guard_length_limit_is_inclusive_and_configurable():
    assert check_safe_regex("x" * 100) == "x" * 100
    with pytest.raises(UnsafePatternError, match="longer than 100 characters"):
        check_safe_regex("x" * 101)
    assert check_safe_regex("x" * 5, max_length=5) == "x" * 5
    with pytest.raises(UnsafePatternError, match="longer than 4 characters"):
        check_safe_regex("x" * 5, max_length=4)


@pytest.mark.parametrize("pattern", ["[", "(abc", "a{2,1}", "*a", "x" * 101])
async def test_invalid_or_long_pattern_is_422(client, pattern):
    assert_problem(await client.get("/products", params={"name": pattern}), 422)


async def test_catastrophic_pattern_against_long_names_is_refused_fast(client, admin_headers):
    for i in range(3):
        await create_product(client, admin_headers, name="a" * 192 + "!" * i)
    for pattern in CATASTROPHIC:
        started = time.monotonic()
        response = await client.get("/products", params={"name": pattern})
        assert time.monotonic() - started < 1.0
        body = assert_problem(response, 422, "invalid_pattern")
        assert body["errors"][0]["loc"] == ["query", "name"]
    # the service still answers, and ordinary patterns still work
    ok = await client.get("/products", params={"name": "^a+!$"})
    assert ok.status_code == 200 and len(ok.json()["data"]) == 1


@pytest.mark.parametrize("pattern", FOLDED_ALTERNATIONS)
async def test_alternation_inside_a_repeated_group_is_refused_as_written(client, pattern):
    body = assert_problem(await client.get("/products", params={"name": pattern}), 422, "invalid_pattern")
    assert body["errors"][0]["loc"] == ["query", "name"]


async def test_folded_alternations_are_refused_fast_against_long_names(client, admin_headers):
    for i in range(3):
        await create_product(client, admin_headers, name="a" * 192 + "!" * i)
    for pattern in FOLDED_ALTERNATIONS:
        started = time.monotonic()
        assert_problem(await client.get("/products", params={"name": pattern}), 422, "invalid_pattern")
        assert time.monotonic() - started < 1.0


async def test_alternations_outside_repeated_groups_still_search(client, admin_headers):
    for name in ("red shirt", "red dress", "red hat", "blue shirt"):
        await create_product(client, admin_headers, name=name)

    async def names(pattern: str) -> set[str]:
        response = await client.get("/products", params={"name": pattern})
        assert response.status_code == 200, response.text
        return {item["name"] for item in response.json()["data"]}

    assert await names("^red (shirt|dress)") == {"red shirt", "red dress"}
    assert await names("(red|blue) shirt") == {"red shirt", "blue shirt"}
    assert await names("^(red|blue) (shirt|hat)?$") == {"red shirt", "red hat", "blue shirt"}
    assert await names("[rb][a-z]+ (dress|hat)") == {"red dress", "red hat"}


#: Tricky patterns, each judged as written (as MongoDB's PCRE reads it): ``True`` = accepted.
#: Comments, quoting, inline flags, named groups, lookarounds, verbs, POSIX classes, \x/\p/\k escapes and
#: literal braces are not modelled by the guard, so they are refused whatever follows them.
CORPUS = [
    # Comments: a "[" or ")" inside (?#...) must not hide the next group.
    (r"(?#[)(a|[a-z])*\d", False),
    (r"(?#[)(\w|\d)+$", False),
    (r"(?#))(a|b)*", False),
    ("(?#a comment)shirt", False),
    # \Q...\E quoting (PCRE), which Python does not have.
    (r"\Q(a|b)*\E", False),
    (r"\Qa\E(a|b)*", False),
    (r"\Qshirt\E", False),
    # Inline flags, named groups, lookarounds, verbs, atomic groups.
    ("(?i)shirt", False),
    ("(?x)(a # )\n|b)*", False),
    ("(?P<n>a|b)", False),
    ("(?<n>a)", False),
    ("(?=a)shirt", False),
    ("(?<!a)shirt", False),
    ("(?>a|b)c", False),
    ("(*UTF)shirt", False),
    # Escapes the guard does not model.
    (r"\x{41}+", False),
    (r"\p{L}+", False),
    (r"\k<n>", False),
    (r"\Ashirt\Z", False),
    (r"\1", False),
    # Braces that are not a complete quantifier differ between engines.
    ("a{,3}", False),
    ("a{2", False),
    ("{shirt}", False),
    # POSIX classes and nested "[" inside a class.
    ("[[:alpha:]|]+", False),
    # Classes containing "(", ")", "|" and "]" do not open or close groups...
    ("[(|]+x", True),
    (r"[\]|(]+x", True),
    ("[]|]+x", True),
    ("[^]|)]+x", True),
    # ...but do not hide a repeated alternation after them either.
    ("[)](a|b)*", False),
    ("[(](a|b)*", False),
    ("[]](a|b)+", False),
    # Escaped parentheses and bars are literals.
    (r"\(a|b\)*", True),
    (r"\((a|b)*", False),
    (r"a\|b*", True),
    # Nested groups: a "|" belongs to every group open around it.
    ("((a|b))*", False),
    ("(?:x(?:a|b))+", False),
    ("(x(a|b)){2}", False),
    ("(a|b)*?c", False),
    ("(a|b)++c", False),
    ("(a|b)?c", True),
    ("(?:red|blue) shirt", True),
    ("^red (shirt|dress)$", True),
    (r"^iPhone \d+ (Pro|Max)?$", True),
    ("sh.rt", True),
    ("t-shirt", True),
    ("[a-z]{2,5}", True),
    ("shirt #1", True),
]


@pytest.mark.parametrize(("pattern", "accepted"), CORPUS)
def test_guard_judges_a_corpus_of_tricky_patterns_as_written(pattern: str, accepted: bool) -> None:
    if accepted:
        assert check_safe_regex(pattern) == pattern
    else:
        with pytest.raises(UnsafePatternError):
            check_safe_regex(pattern)


@pytest.mark.parametrize("pattern", [r"(?#[)(a|[a-z])*\d", r"(?#[)(\w|\d)+$", r"\Qa\E(a|b)*"])
async def test_a_comment_or_quote_cannot_hide_a_repeated_alternation(client, pattern):
    body = assert_problem(await client.get("/products", params={"name": pattern}), 422, "invalid_pattern")
    assert body["errors"][0]["loc"] == ["query", "name"]
