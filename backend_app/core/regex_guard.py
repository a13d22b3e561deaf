"""Refuse regular expressions that a backtracking engine could take exponential or high-polynomial time on.

docs/contract.md §4: the embedded server evaluates ``$regex`` with a backtracking engine
that no ``maxTimeMS`` interrupts (``(a+)+$`` against three 192-character names
stalled it for over 20 s), so risky patterns are refused with 422 *before*
they reach the database. Two readings of the pattern are checked:

- its syntax tree as Python's own ``re`` parser builds it (``re._parser``,
  formerly ``sre_parse``), so spelling tricks (``(?:a+){2,}``) are seen for
  what they are;
- the pattern *as written* (:func:`_alternation_in_repeated_group`), because
  that parser rewrites it: it folds single-character alternatives into a
  class (``(a|[a-z])`` becomes ``[a-z]``), while MongoDB's PCRE keeps the
  alternation and backtracks exponentially on ``(a|[a-z])*\\d`` against a long
  name (issue 10, item 2).

Refused:

- a quantifier inside a repeated group (``(a+)+``, ``(a*)*``, ``(ab?)+``): nested quantifiers;
- alternation anywhere inside a repeated group, as written (``(a|aa)*``,
  ``(a|b)*``, ``(\\w|\\d)+``, ``(x(a|b))+``): write a character class
  (``[ab]*``) instead; an optional group (``(a|b)?``) is not repeated and is
  allowed;
- the extended flag ``(?x)`` (its comments could hide parentheses from the scan);
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
from typing import Any

try:  # Python 3.11+
    import re._constants as sre_constants
    import re._parser as sre_parse
except ImportError:  # pragma: no cover - Python < 3.11
    import sre_constants  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

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


def _quantifier_max(pattern: str, at: int) -> int | None:
    """The upper bound of the quantifier written at ``pattern[at:]`` (``None``: no quantifier there).

    ``*``, ``+`` and ``{n,}`` are unbounded (returned as a large number); a
    ``{`` that is not a valid quantifier is a literal, as in PCRE.
    """
    if at >= len(pattern):
        return None
    char = pattern[at]
    if char in "*+":
        return sre_constants.MAXREPEAT
    if char == "?":
        return 1
    if char == "{":
        match = re.match(r"\{(\d*)(,?)(\d*)\}", pattern[at:])
        if match is None or not (match.group(1) or match.group(3)):
            return None
        if match.group(3):
            return int(match.group(3))
        return sre_constants.MAXREPEAT if match.group(2) else int(match.group(1))
    return None


#: An inline flag group turning on PCRE's extended mode, whose comments would hide parentheses from the scan.
_VERBOSE_FLAG = re.compile(r"\(\?[a-zA-Z^-]*x")


def _alternation_in_repeated_group(pattern: str) -> bool:
    """Whether a group containing ``|`` (at any depth) is repeated (quantifier maximum > 1), as written.

    Reads the text itself: escapes (``\\|``) and character classes (``[|]``,
    ``[]|]``, ``[^]a]``) are skipped; groups are matched by their parentheses.
    A ``|`` belongs to every group open around it, so ``(x(a|b))+`` is refused
    as well as ``(a|b)+``.

    Raises:
        UnsafePatternError: the pattern turns on extended mode (``(?x)``),
            whose ``#`` comments could hide a group from this scan.
    """
    stack: list[bool] = []  # per open group: whether a "|" occurs inside it
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\":  # an escaped character (\Q...\E does not compile, so never gets here)
            i += 2
            continue
        if char == "[":
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            if i < n and pattern[i] == "]":  # a leading "]" is literal
                i += 1
            while i < n and pattern[i] != "]":
                i += 2 if pattern[i] == "\\" else 1
            i += 1
            continue
        if char == "(":
            if _VERBOSE_FLAG.match(pattern, i):
                raise UnsafePatternError("the x (extended) flag is not allowed: write the pattern without comments")
            stack.append(False)
        elif char == "|":
            stack[:] = [True] * len(stack)
        elif char == ")" and stack:
            has_alternation = stack.pop()
            high = _quantifier_max(pattern, i + 1)
            if has_alternation and high is not None and high > 1:
                return True
        i += 1
    return False


def check_safe_regex(pattern: str, *, max_length: int = 100) -> str:
    """Return ``pattern`` if it is short, compiles and cannot backtrack catastrophically.

    Args:
        pattern: a regular expression (PCRE-compatible subset, as MongoDB's ``$regex``).
        max_length: longest accepted pattern, in characters (docs/contract.md §4: 100).

    Raises:
        UnsafePatternError: too long, does not compile, or breaks a rule in this module's docstring.
    """
    if len(pattern) > max_length:
        raise UnsafePatternError(f"the pattern is longer than {max_length} characters")
    try:
        re.compile(pattern)
        tree = sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise UnsafePatternError(f"not a valid regular expression: {exc}") from None
    if _alternation_in_repeated_group(pattern):
        raise UnsafePatternError(
            "alternation inside a repeated group, such as (a|b)* or (\\w|\\d)+, is not allowed; "
            "use a character class such as [ab]*"
        )
    _walk(tree.data, _Budget(), in_repeat=False)
    return pattern
