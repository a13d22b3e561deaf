"""Refuse regular expressions that a backtracking engine could take exponential or high-polynomial time on.

Spec §4: the embedded server evaluates ``$regex`` with a backtracking engine
that no ``maxTimeMS`` interrupts (``(a+)+$`` against three 192-character names
stalled it for over 20 s), so risky patterns are refused with 422 *before*
they reach the database. The check reads the pattern's syntax tree as
Python's own ``re`` parser builds it (``re._parser``, formerly
``sre_parse``), not its text, so spelling tricks (``(?:a+){2,}``, ``(a|aa)*``
written with groups or flags) are seen for what they are.

Refused:

- a quantifier inside a repeated group (``(a+)+``, ``(a*)*``, ``(ab?)+``): nested quantifiers;
- alternation inside a repeated group (``(a|aa)*``; ``(a|b)*`` compiles to a
  character class and is accepted);
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


def check_safe_regex(pattern: str, *, max_length: int = 100) -> str:
    """Return ``pattern`` if it is short, compiles and cannot backtrack catastrophically.

    Args:
        pattern: a regular expression (PCRE-compatible subset, as MongoDB's ``$regex``).
        max_length: longest accepted pattern, in characters (spec §4: 100).

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
    _walk(tree.data, _Budget(), in_repeat=False)
    return pattern
