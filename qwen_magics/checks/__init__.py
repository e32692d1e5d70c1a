"""Checks over answers: each scores a Response (and its test case) in [0, 1] and says why.

Users write checks as they read: ``contains("Paris")``, ``regex(r"\\d+")``, ``judge("is it
polite?")``, or any callable ``(response)`` / ``(response, case)`` returning a bool or a score in
[0, 1] (``check(fn, name=..., threshold=...)`` names it and sets its pass mark). Text arguments may
name case columns, ``contains("{expected}")``, filled per case. ``parse_spec`` reads the short
forms the magic's ``--check`` takes (``contains:Paris``, ``json``, ``judge:RUBRIC``).

How an answer's checks add up
    Every check's Result has a ``score`` and ``passed``. The pass/fail checks score 1 or 0. The
    graded ones (``similar``, ``judge``, a callable returning a score) score what they measure and
    pass at their *own* mark: ``similar(ref, threshold=0.8)``, ``judge(rubric, threshold=0.5)``,
    ``check(fn, threshold=...)`` (1 by default for a callable's score). What a check adds to the
    answer is its *credit*: 1 when it passed, its score when it failed. The answer's score is the
    weighted mean of the credits of the checks that did not error, and the answer passes when
    that reaches the comparison's ``threshold`` (1 by default: every check passed). So a
    similarity of 0.93 over a mark of 0.8 passes its answer at the default threshold, while a
    lower ``threshold`` lets near misses (their raw scores) make up for one another. A check
    that raises, or cannot measure (a judge's 429, no usage reported), is *errored*: it neither
    passes nor fails and leaves the weighted mean; the rest go on. ``wilson(passed, n)`` is the
    95% interval of a pass rate.

The modules: ``core`` (Result, Check, Verdict, check, resolve, evaluate, wilson), ``build`` (what
the named checks are made of), ``text`` (the answer's words and JSON), ``measures`` (tokens,
latency, cost), ``similarity``, ``judge``, and ``spec`` (the short forms).
"""

from __future__ import annotations

from .core import Check, Result, Verdict, aevaluate, check, evaluate, fill, resolve, wilson
from .judge import judge
from .measures import cost, latency, max_tokens
from .similarity import similar, similarity
from .spec import parse_spec
from .text import contains, equals, icontains, is_json, matches_schema, max_length, regex, starts_with

__all__ = [
    "Check",
    "Result",
    "Verdict",
    "aevaluate",
    "check",
    "contains",
    "cost",
    "equals",
    "evaluate",
    "fill",
    "icontains",
    "is_json",
    "judge",
    "latency",
    "matches_schema",
    "max_length",
    "max_tokens",
    "parse_spec",
    "regex",
    "resolve",
    "similar",
    "similarity",
    "starts_with",
    "wilson",
]
