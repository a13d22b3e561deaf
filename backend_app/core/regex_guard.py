"""Refuse regular expressions that a backtracking engine could take exponential or high-polynomial time on.

The embedded server evaluates ``$regex`` with a backtracking engine
that no ``maxTimeMS`` interrupts (``(a+)+$`` against three 192-character names
stalled it for over 20 s), so risky patterns are refused with 422 *before*
they reach the database. Two readings of the pattern are checked:

- its syntax tree as Python's own ``re`` parser builds it (``re._parser``,
  formerly ``sre_parse``), so spelling tricks (``(?:a+){2,}``) are seen for
  what they are;
- the pattern *as written* (:func:`_scan_as_written`), because that parser
  rewrites it: it folds single-character alternatives into a class
  (``(a|[a-z])`` becomes ``[a-z]``), while MongoDB's PCRE keeps the
  alternation and backtracks exponentially on ``(a|[a-z])*\\d`` against a long
  name. That reading models a small grammar and refuses everything outside
  it, so a construct it does not understand (a comment ``(?#[)``, ``\\Q...\\E``)
  cannot hide the rest of the pattern from it.

Refused:

- a quantifier inside a repeated group (``(a+)+``, ``(a*)*``, ``(ab?)+``): nested quantifiers;
- alternation anywhere inside a repeated group, as written (``(a|aa)*``,
  ``(a|b)*``, ``(\\w|\\d)+``, ``(x(a|b))+``): write a character class
  (``[ab]*``) instead; an optional group (``(a|b)?``) is not repeated and is
  allowed;
- every construct outside the grammar of :func:`_scan_as_written`: comments,
  inline flags (``(?x)``, ``(?i)``), named groups, lookarounds, atomic groups,
  verbs, ``\\Q...\\E``, escapes other than ``\\d \\D \\w \\W \\s \\S \\b \\B \\t \\n \\r``
  and escaped punctuation, a ``{`` that is not a quantifier, ``[`` inside a class;
- backreferences and conditionals (``(a)\\1``, ``(?(1)a|b)``);
- more than :data:`MAX_UNBOUNDED_QUANTIFIERS` unbounded quantifiers
  (``.*a.*a.*b`` is O(n⁴) on a 200-character name with an unanchored search;
  measured 0.75 s for three, 25 s for four);
- more than :data:`MAX_BRANCHING` combined alternatives and optional parts
  (``(a|a)(a|a)...`` or ``a?a?a?...aaa`` backtrack 2^k ways).

The rules are deliberately conservative: a product-name search never needs
these constructs, and a refusal costs the client one 422.
"""

from __future__ import annotations

import re

# The parser behind ``re`` (public as ``sre_parse`` until 3.11, which deprecated that name); typeshed has no stubs.
import re._constants as sre_constants  # type: ignore[import-not-found]
import re._parser as sre_parse  # type: ignore[import-not-found]
from typing import Any

#: Unbounded (or effectively unbounded: more than this many repeats) quantifiers allowed in one pattern.
MAX_UNBOUNDED_QUANTIFIERS = 2
#: A repeat with an upper bound above this counts as unbounded against 200-character names.
LARGE_REPEAT = 10
#: Upper bound on the product of alternatives × 2 per optional/variable bounded quantifier.
MAX_BRANCHING = 256

_REPEATS = {sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT}
_POSSESSIVE = getattr(sre_constants, "POSSESSIVE_REPEAT", None)
if _POSSESSIVE is not None:
    _REPEATS.add(_POSSESSIVE)
_ATOMIC = getattr(sre_constants, "ATOMIC_GROUP", None)


class UnsafePatternError(ValueError):
    """The pattern does not compile, or can backtrack catastrophically; the message says which rule."""


class _Budget:
    def __init__(self) -> None:
        self.unbounded = 0
        self.branching = 1


def _walk(items: Any, budget: _Budget, *, in_repeat: bool) -> None:
    for op, arg in items:
        if op in _REPEATS:
            low, high, sub = arg
            if in_repeat:
                raise UnsafePatternError("nested quantifiers, such as (a+)+, are not allowed")
            if high == sre_constants.MAXREPEAT or high > LARGE_REPEAT:
                budget.unbounded += 1
                if budget.unbounded > MAX_UNBOUNDED_QUANTIFIERS:
                    raise UnsafePatternError(
                        f"at most {MAX_UNBOUNDED_QUANTIFIERS} unbounded quantifiers (*, +, {{n,}}) are allowed"
                    )
            elif high != low:
                budget.branching *= high - low + 1
            _walk(sub, budget, in_repeat=high > 1)
        elif op is sre_constants.BRANCH:
            if in_repeat:
                raise UnsafePatternError("alternation inside a repeated group, such as (a|aa)*, is not allowed")
            _prefix, branches = arg
            budget.branching *= len(branches)
            for branch in branches:
                _walk(branch, budget, in_repeat=in_repeat)
        elif op in (sre_constants.GROUPREF, sre_constants.GROUPREF_EXISTS):
            raise UnsafePatternError("backreferences and conditionals are not allowed")
        elif op is sre_constants.SUBPATTERN:
            _walk(arg[-1], budget, in_repeat=in_repeat)
        elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
            _walk(arg[1], budget, in_repeat=in_repeat)
        elif _ATOMIC is not None and op is _ATOMIC:
            _walk(arg, budget, in_repeat=in_repeat)
        if budget.branching > MAX_BRANCHING:
            raise UnsafePatternError("too many alternatives and optional parts")


#: Escapes the guard models, outside and inside classes: the same meaning in PCRE and Python's ``re``.
#: Any other letter or digit after ``\\`` (``\\Q``, ``\\E``, ``\\x``, ``\\p``, ``\\k``, ``\\1``, ``\\A``...) is refused.
_CLASS_ESCAPES = frozenset("dDwWsStnr")
_ESCAPES = _CLASS_ESCAPES | frozenset("bB")
#: A complete bounded quantifier, ``{n}``, ``{n,}`` or ``{n,m}``; any other ``{`` is refused (PCRE versions
#: disagree on ``{,n}``, and a literal brace must be written ``\\{``).
_BRACES = re.compile(r"\{(\d+)(?:(,)(\d*))?\}")


def _unmodelled(what: str, at: int) -> UnsafePatternError:
    return UnsafePatternError(
        f"{what} (at character {at + 1}) is not allowed: a product search uses only literals, escapes such as "
        "\\d \\w \\s \\., classes [...], groups (...) or (?:...), alternation, anchors and quantifiers"
    )


def _escape_end(pattern: str, at: int, allowed: frozenset[str]) -> int:
    """Index after the escape starting at ``pattern[at] == "\\"``; refuses escapes not in ``allowed``."""
    if at + 1 >= len(pattern):
        raise UnsafePatternError("not a valid regular expression: the pattern ends with a backslash")
    char = pattern[at + 1]
    if char.isascii() and not char.isalnum():
        return at + 2  # an escaped punctuation character is that character in both engines
    if char in allowed:
        return at + 2
    raise _unmodelled(f"the escape \\{char}", at)


def _class_end(pattern: str, at: int) -> int:
    """Index after the character class starting at ``pattern[at] == "["``.

    A leading ``]`` (after an optional ``^``) is literal, as in both engines;
    ``[`` inside a class (POSIX ``[:alpha:]``, nested sets) is refused.
    """
    i, n = at + 1, len(pattern)
    if i < n and pattern[i] == "^":
        i += 1
    if i < n and pattern[i] == "]":
        i += 1
    while i < n and pattern[i] != "]":
        if pattern[i] == "\\":
            i = _escape_end(pattern, i, _CLASS_ESCAPES)
        elif pattern[i] == "[":
            raise _unmodelled("'[' inside a character class", i)
        else:
            i += 1
    if i >= n:
        raise UnsafePatternError("not a valid regular expression: unterminated character class")
    return i + 1


def _quantifier_at(pattern: str, at: int) -> tuple[int, int] | None:
    """``(maximum, index after it)`` of the quantifier at ``pattern[at:]``, lazy/possessive suffix included.

    ``None`` when no quantifier is written there. Unbounded maxima are
    ``sre_constants.MAXREPEAT``.

    Raises:
        UnsafePatternError: a ``{`` that is not a complete quantifier.
    """
    if at >= len(pattern):
        return None
    char = pattern[at]
    if char in "*+?":
        high, end = (1 if char == "?" else sre_constants.MAXREPEAT), at + 1
    elif char == "{":
        match = _BRACES.match(pattern, at)
        if match is None:
            raise _unmodelled("a '{' that is not a quantifier {n}, {n,} or {n,m} (write \\{ for a brace)", at)
        low, comma, upper = match.groups()
        high = int(upper) if upper else (sre_constants.MAXREPEAT if comma else int(low))
        end = match.end()
    else:
        return None
    if end < len(pattern) and pattern[end] in "?+":
        end += 1
    return high, end


def _scan_as_written(pattern: str) -> bool:
    """Read the pattern as MongoDB's PCRE does; whether a group containing ``|`` is repeated (maximum > 1).

    The guard models a small grammar: literals, the escapes of
    :data:`_ESCAPES` and escaped punctuation, classes ``[...]``, groups
    ``(...)`` and ``(?:...)``, ``|``, ``^``, ``$``, ``.`` and quantifiers.
    Anything else (comments ``(?#...)``, inline flags, named groups,
    lookarounds, atomic groups, verbs ``(*...)``, ``\\Q...\\E`` quoting, other
    escapes, loose braces, POSIX classes) is refused, so no construct can hide
    text from this scan. A ``|`` belongs to every group open around it, so
    ``(x(a|b))+`` is caught as well as ``(a|b)+``.

    Raises:
        UnsafePatternError: the pattern uses a construct outside that grammar.
    """
    stack: list[bool] = []  # per open group: whether a "|" occurs inside it
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\":
            i = _escape_end(pattern, i, _ESCAPES)
            continue
        if char == "[":
            i = _class_end(pattern, i)
            continue
        if char == "(":
            if pattern.startswith("(?:", i):
                i += 3
            elif i + 1 < n and pattern[i + 1] in "?*":
                raise _unmodelled(f"the group construct {pattern[i : i + 3]!r}", i)
            else:
                i += 1
            stack.append(False)
            continue
        if char == "|":
            stack[:] = [True] * len(stack)
        elif char == ")" and stack:
            has_alternation = stack.pop()
            quantifier = _quantifier_at(pattern, i + 1)
            if quantifier is not None:
                if has_alternation and quantifier[0] > 1:
                    return True
                i = quantifier[1]
                continue
        elif char == "{":
            quantifier = _quantifier_at(pattern, i)
            assert quantifier is not None  # a non-quantifier brace raised
            i = quantifier[1]
            continue
        i += 1
    return False


def check_safe_regex(pattern: str, *, max_length: int = 100) -> str:
    """Return ``pattern`` if it is short, compiles and cannot backtrack catastrophically.

    Args:
        pattern: a regular expression (PCRE-compatible subset, as MongoDB's ``$regex``).
        max_length: longest accepted pattern, in characters (default 100, the catalog's limit).

    Raises:
        UnsafePatternError: too long, does not compile, or breaks a rule in this module's docstring.
    """
    if len(pattern) > max_length:
        raise UnsafePatternError(f"the pattern is longer than {max_length} characters")
    # The reading as written comes first: it refuses what Python's parser would only warn about ("[[").
    if _scan_as_written(pattern):
        raise UnsafePatternError(
            "alternation inside a repeated group, such as (a|b)* or (\\w|\\d)+, is not allowed; "
            "use a character class such as [ab]*"
        )
    try:
        re.compile(pattern)
        tree = sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise UnsafePatternError(f"not a valid regular expression: {exc}") from None
    _walk(tree.data, _Budget(), in_repeat=False)
    return pattern
