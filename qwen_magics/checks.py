"""Checks over answers: each scores a Response (and its test case) in [0, 1] and says why.

A check is a ``Check``: a name, a weight and a function ``(response, case) -> Result``. Users write
them as they read: ``contains("Paris")``, ``regex(r"\\d+")``, ``judge("is it polite?")``, or any
callable ``(response)`` / ``(response, case)`` returning a bool or a score in [0, 1]. Text
arguments may name case columns, ``contains("{expected}")``, filled per case.

``evaluate(checks, response, case, threshold)`` runs them all: a check that raises is *errored*
(not failed) and the rest go on; the weighted mean of the scored checks is the answer's score, and
it passes when that reaches ``threshold``. ``wilson(passed, n)`` is the 95% interval of a pass rate.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .api.response import Response
from .errors import ParameterError

__all__ = ["Check", "Result", "Verdict", "check", "evaluate", "fill", "parse_spec", "resolve", "wilson"]

Case = Mapping[str, Any]


@dataclass(frozen=True)
class Result:
    """One check on one answer: ``score`` in [0, 1] (None when it errored), whether it passed, why."""

    name: str
    score: float | None
    passed: bool | None
    reason: str = ""
    errored: bool = False


@dataclass(frozen=True)
class Check:
    """A named, weighted check. ``run(response, case)`` never raises: an exception is an errored Result."""

    name: str
    fn: Callable[[Response, Case], Result | bool | float]
    weight: float = 1.0
    needs_case: bool = True

    def weighted(self, weight: float) -> Check:
        """The same check counting ``weight`` times in the score (``contains("x").weighted(2)``)."""
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise ParameterError("weight", f"a check's weight is a number >= 0; got {weight!r}")
        return Check(self.name, self.fn, float(weight), self.needs_case)

    def run(self, response: Response, case: Case | None = None) -> Result:
        try:
            got = self.fn(response, case or {})
        except Exception as exc:  # a check's own failure is not the answer's
            return Result(self.name, None, None, f"{type(exc).__name__}: {exc}", errored=True)
        return _as_result(self.name, got)


def _as_result(name: str, got: Result | bool | float | Any) -> Result:
    if isinstance(got, Result):
        return got
    if isinstance(got, bool):
        return Result(name, 1.0 if got else 0.0, got, "" if got else "returned False")
    if isinstance(got, (int, float)) and math.isfinite(got) and 0 <= got <= 1:
        return Result(name, float(got), got >= 1.0, "")
    return Result(name, None, None, f"returned {got!r}, not a bool or a score in [0, 1]", errored=True)


def check(name: str, *, weight: float = 1.0) -> Callable[[Callable[..., Any]], Check]:
    """Make a function a named check: ``@check("short")`` over ``def short(response): ...``."""

    def wrap(fn: Callable[..., Any]) -> Check:
        return _from_callable(fn, name=name, weight=weight)

    return wrap


def _from_callable(fn: Callable[..., Any], *, name: str | None = None, weight: float = 1.0) -> Check:
    try:
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]
    except (TypeError, ValueError):  # a builtin without a signature: give it the response alone
        params = []
    takes_case = len(params) >= 2
    label = name or getattr(fn, "__name__", None) or type(fn).__name__
    if takes_case:
        return Check(label, lambda r, c: fn(r, c), weight)
    return Check(label, lambda r, c: fn(r), weight, needs_case=False)


def resolve(spec: Check | Callable[..., Any] | Sequence[Any] | None) -> list[Check]:
    """The checks a user gave: one, a list, or None (no checks). Callables become checks."""
    if spec is None:
        return []
    items = [spec] if isinstance(spec, Check) or callable(spec) else list(spec)
    out = []
    for item in items:
        if isinstance(item, Check):
            out.append(item)
        elif callable(item):
            out.append(_from_callable(item))
        else:
            raise ParameterError(
                "checks", f"a check is a qwen_magics.checks check or a callable; got {type(item).__name__}"
            )
    return out


def fill(text: str, case: Case | None) -> str:
    """``text`` with ``{column}`` fields from the case (``{{`` and ``}}`` for braces); a field the case
    lacks raises, naming it and the columns there are."""
    if not case or "{" not in text:
        return text
    try:
        return text.format_map(dict(case))
    except KeyError as exc:
        raise KeyError(f"{exc.args[0]!r} is not a column of the case ({', '.join(map(str, case))})") from None


@dataclass(frozen=True)
class Verdict:
    """Every check's Result on one answer, the weighted score and whether it reaches the threshold."""

    results: list[Result] = field(default_factory=list)
    score: float | None = None
    passed: bool | None = None

    @property
    def errored(self) -> list[Result]:
        return [r for r in self.results if r.errored]

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if r.passed is False]


def evaluate(
    checks: Sequence[Check], response: Response, case: Case | None = None, threshold: float = 1.0
) -> Verdict:
    """Run every check on ``response``; the score is the weighted mean over checks that did not
    error (None when all errored or there are none)."""
    results = [c.run(response, case) for c in checks]
    weights = [(c.weight, r.score) for c, r in zip(checks, results, strict=True) if r.score is not None]
    total = sum(w for w, _ in weights)
    if not weights or total == 0:
        return Verdict(results, None, None)
    score = sum(w * s for w, s in weights if s is not None) / total
    return Verdict(results, score, score >= threshold - 1e-12)


def wilson(passed: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval (95% by default) of ``passed`` out of ``n``; (0, 1) when n is 0."""
    if n <= 0:
        return (0.0, 1.0)
    p = passed / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


# TEMPORARY (branch grid): the least of the magic's short forms, ``contains:TEXT``, so ``--check``
# works here; the named checks' own ``parse_spec`` replaces this whole function at the merge.
def parse_spec(spec: str) -> Check:
    """A check from its short form as the magic's ``--check`` takes it: ``contains:TEXT``."""
    name, sep, arg = spec.partition(":")
    if name.strip() == "contains" and sep and arg:

        def contains(response: Response, case: Case) -> Result:
            wanted = fill(arg, case)
            found = wanted in response.text
            return Result(
                f"contains:{arg}",
                1.0 if found else 0.0,
                found,
                "" if found else f"no {wanted!r} in the answer",
            )

        return Check(f"contains:{arg}", contains)
    raise ParameterError("checks", f"unknown check {spec!r}; write e.g. contains:Paris")
