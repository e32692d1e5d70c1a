"""What a check is and how an answer's checks add up: Result, Check, Verdict, evaluate, wilson.

A ``Check`` is a name, a weight and a function ``(response, case) -> Result``; ``run`` never
raises (an exception is an errored Result). ``check`` and ``resolve`` make checks from plain
callables, naming a lambda by the expression it returns. ``evaluate`` weighs every check's
``credit`` (1 when it passed, else its score) against the threshold; see the package docstring
for the rule.
"""

from __future__ import annotations

import ast
import functools
import inspect
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, overload

from ..api.response import Response
from ..errors import ParameterError

__all__ = [
    "Case",
    "Check",
    "Result",
    "Verdict",
    "aevaluate",
    "check",
    "evaluate",
    "fill",
    "resolve",
    "wilson",
]

Case = Mapping[str, Any]
EPSILON = 1e-12  # a score "reaches" a mark it misses only by float rounding


@dataclass(frozen=True, slots=True, init=False)
class Result:
    """One check on one answer: ``score`` in [0, 1] (None when it errored), whether it passed, why."""

    name: str
    score: float | None
    passed: bool | None
    reason: str = ""
    errored: bool = False

    def __init__(
        self, name: str, score: float | None, passed: bool | None, reason: str = "", errored: bool = False
    ) -> None:
        # made per answer and check: the slots' own setters are 3x quicker than the frozen
        # dataclass's object.__setattr__ per field, and the Result stays frozen
        _set_name(self, name)
        _set_score(self, score)
        _set_passed(self, passed)
        _set_reason(self, reason)
        _set_errored(self, errored)

    @property
    def credit(self) -> float | None:
        """What this result adds to the answer's score: 1 when it passed (a graded check that reached
        its own pass mark counts in full), else its score; None when it errored."""
        if self.score is None:
            return None
        return 1.0 if self.passed else self.score


_set_name, _set_score, _set_passed, _set_reason, _set_errored = (
    Result.__dict__[slot].__set__ for slot in ("name", "score", "passed", "reason", "errored")
)


@dataclass(frozen=True)
class Check:
    """A named, weighted check. ``run(response, case)`` never raises: an exception is an errored Result."""

    name: str
    fn: Callable[[Response, Case], Result | bool | float]
    weight: float = 1.0
    needs_case: bool = True
    afn: Callable[[Response, Case], Awaitable[Result]] | None = None  # the async twin (a judge's)

    def weighted(self, weight: float) -> Check:
        """The same check counting ``weight`` times in the score (``contains("x").weighted(2)``)."""
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise ParameterError("weight", f"a check's weight is a number >= 0; got {weight!r}")
        return replace(self, weight=float(weight))

    def run(self, response: Response, case: Case | None = None) -> Result:
        return _run_all((self,), response, case)[0]

    async def arun(self, response: Response, case: Case | None = None) -> Result:
        """``run`` inside an event loop: a check that asks a model (``judge``) awaits its answer
        instead of blocking the loop; the others run as ``run`` does."""
        if self.afn is None:
            return self.run(response, case)
        try:
            got = await self.afn(response, _NO_CASE if case is None else case)
        except Exception as exc:
            return Result(self.name, None, None, f"{type(exc).__name__}: {exc}", errored=True)
        return got if type(got) is Result else as_result(self.name, got)


_NO_CASE: Case = MappingProxyType({})


def _run_all(checks: Sequence[Check], response: Response, case: Case | None) -> list[Result]:
    """Each check's Result on one answer, in one loop (``evaluate`` runs it per answer)."""
    given = _NO_CASE if case is None else case
    out = []
    for c in checks:
        try:
            got = c.fn(response, given)
        except Exception as exc:  # a check's own failure is not the answer's
            got = Result(c.name, None, None, f"{type(exc).__name__}: {exc}", errored=True)
        out.append(got if type(got) is Result else as_result(c.name, got))
    return out


def as_result(name: str, got: Result | bool | float | Any, mark: float = 1.0) -> Result:
    """A callable's answer as a Result: a bool passes or fails; a score in [0, 1] passes at ``mark``."""
    if isinstance(got, Result):
        return got
    if isinstance(got, bool):
        return Result(name, 1.0 if got else 0.0, got, "" if got else "returned False")
    if isinstance(got, (int, float)) and math.isfinite(got) and 0 <= got <= 1:
        if got >= mark - EPSILON:
            return Result(name, float(got), True)
        return Result(name, float(got), False, f"scored {got:.2f}, under {mark:g}")
    return Result(name, None, None, f"returned {got!r}, not a bool or a score in [0, 1]", errored=True)


# -- checks from callables --------------------------------------------------------------------------
@overload
def check(
    fn: Callable[..., Any], /, *, name: str | None = None, weight: float = 1.0, threshold: float = 1.0
) -> Check: ...


@overload
def check(
    fn: str | None = None, /, *, name: str | None = None, weight: float = 1.0, threshold: float = 1.0
) -> Callable[[Callable[..., Any]], Check]: ...


def check(
    fn: Callable[..., Any] | str | None = None,
    /,
    *,
    name: str | None = None,
    weight: float = 1.0,
    threshold: float = 1.0,
) -> Check | Callable[[Callable[..., Any]], Check]:
    """A callable ``(response)`` or ``(response, case)`` as a check: ``check(fn, name="short")``, or
    as a decorator, ``@check("short")`` / ``@check``. It returns a bool or a score in [0, 1]; a
    score passes at ``threshold`` (its own pass mark, 1 by default: any lower score is partial
    credit). Without a name, a function's name or a lambda's expression (``"Paris" in r.text``)."""
    if isinstance(fn, str):
        if name is not None:
            raise ParameterError("check", "give the check's name once: check('name') or check(name='name')")
        name = fn
    elif fn is not None:
        return from_callable(fn, name=name, weight=weight, threshold=threshold)
    given = name

    def wrap(f: Callable[..., Any]) -> Check:
        return from_callable(f, name=given, weight=weight, threshold=threshold)

    return wrap


def from_callable(
    fn: Callable[..., Any],
    *,
    name: str | None = None,
    weight: float = 1.0,
    threshold: float = 1.0,
    position: int = 1,
) -> Check:
    """``fn`` as a Check named ``name``, or after itself (``check {position}`` when nothing says)."""
    if isinstance(fn, Check) or not callable(fn):
        raise ParameterError(
            "check", f"check() takes a function (response) or (response, case); got {type(fn).__name__}"
        )
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ParameterError("check", f"a check's name is a non-empty text; got {name!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise ParameterError("check", f"a check's threshold is a score in [0, 1]; got {threshold!r}")
    try:
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]
    except (TypeError, ValueError):  # a builtin without a signature: give it the response alone
        params = []
    label = name or callable_name(fn) or f"check {position}"
    mark = float(threshold)
    if len(params) >= 2:
        made = Check(label, lambda r, c: as_result(label, fn(r, c), mark))
    else:
        made = Check(label, lambda r, c: as_result(label, fn(r), mark), needs_case=False)
    return made if weight == 1 else made.weighted(weight)


def callable_name(fn: Callable[..., Any]) -> str | None:
    """A function's name; a lambda's returned expression from its source, shortened; else None."""
    own = getattr(fn, "__name__", None)
    if isinstance(fn, functools.partial):
        own = getattr(fn.func, "__name__", None)
    elif own is None and not inspect.isroutine(fn):
        own = type(fn).__name__  # a callable object
    if own != "<lambda>":
        return own
    body = _lambda_source(fn)
    if body is None:
        return None
    text = " ".join(body.split())
    return text if len(text) <= 40 else text[:39] + "…"


def _lambda_source(fn: Callable[..., Any]) -> str | None:
    code = getattr(fn, "__code__", None)
    if code is None:
        return None
    try:
        lines, _ = inspect.findsource(code)
    except (OSError, TypeError, IndexError):  # made by exec or eval, or the file changed
        return None
    source = "".join(lines)
    tree = _parsed(source)
    if tree is None:
        return None
    found = [n for n in ast.walk(tree) if isinstance(n, ast.Lambda) and n.lineno == code.co_firstlineno]
    if not found:
        return None
    if len(found) > 1:  # several lambdas start on that line: the one whose body holds this code
        spots = {
            (line, col) for line, _, col, _ in code.co_positions() if line is not None and col is not None
        }

        def holds(node: ast.Lambda) -> tuple[int, int]:
            b = node.body
            start, end = (b.lineno, b.col_offset), (b.end_lineno or b.lineno, b.end_col_offset or 0)
            inside = sum(1 for spot in spots if start <= spot < end)
            return inside, -(end[0] - start[0]) * 10_000 - (end[1] - start[1])

        found.sort(key=holds, reverse=True)
    return ast.get_source_segment(source, found[0].body)


@functools.lru_cache(maxsize=16)
def _parsed(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError):
        return None


def resolve(spec: Check | Callable[..., Any] | Sequence[Any] | None) -> list[Check]:
    """The checks a user gave: one, a list, or None (no checks). Callables become checks."""
    if spec is None:
        return []
    items = [spec] if isinstance(spec, Check) or callable(spec) else list(spec)
    out = []
    for i, item in enumerate(items):
        if isinstance(item, Check):
            out.append(item)
        elif callable(item):
            out.append(from_callable(item, position=i + 1))
        else:
            raise ParameterError(
                "checks", f"a check is a qwen_magics.checks check or a callable; got {type(item).__name__}"
            )
    return out


def fill(text: str, case: Case | None) -> str:
    """``text`` with ``{column}`` fields from the case (``{{`` and ``}}`` for braces); a field the case
    lacks raises, naming it and the columns there are."""
    if case is None or not len(case) or "{" not in text:  # len: a DataFrame row has no truth value
        return text
    try:
        return text.format_map(dict(case))
    except KeyError as exc:
        raise KeyError(f"{exc.args[0]!r} is not a column of the case ({', '.join(map(str, case))})") from None


# -- an answer's verdict ----------------------------------------------------------------------------
@dataclass(slots=True)
class Verdict:
    """Every check's Result on one answer, the weighted score and whether it reaches the threshold
    (one per answer, never shared, so not frozen: that would triple the cost of making it)."""

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
    """Run every check on ``response``; the score is the weighted mean of their credits (1 for a
    check that passed, else its score) over checks that did not error (None when all errored or
    there are none), and the answer passes when it reaches ``threshold``."""
    return _verdict(checks, _run_all(checks, response, case), threshold)


async def aevaluate(
    checks: Sequence[Check], response: Response, case: Case | None = None, threshold: float = 1.0
) -> Verdict:
    """``evaluate`` inside an event loop: an answer's judges ask their models concurrently."""
    import asyncio

    results = await asyncio.gather(*(c.arun(response, case) for c in checks))
    return _verdict(checks, list(results), threshold)


def _verdict(checks: Sequence[Check], results: list[Result], threshold: float) -> Verdict:
    total = weighted = 0.0
    for c, r in zip(checks, results):  # noqa: B905  (one result per check, made above)
        score = r.score
        if score is not None:
            w = c.weight
            total += w
            weighted += w if r.passed else w * score  # Result.credit, inline: this runs per answer
    if total == 0:
        return Verdict(results, None, None)
    score = weighted / total
    return Verdict(results, score, score >= threshold - EPSILON)


def wilson(passed: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval (95% by default) of ``passed`` out of ``n``; (0, 1) when n is 0."""
    if n <= 0:
        return (0.0, 1.0)
    p = passed / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))
