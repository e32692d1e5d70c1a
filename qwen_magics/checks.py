"""Checks over answers: each scores a Response (and its test case) in [0, 1] and says why.

A check is a ``Check``: a name, a weight and a function ``(response, case) -> Result``. Users write
them as they read: ``contains("Paris")``, ``regex(r"\\d+")``, ``judge("is it polite?")``, or any
callable ``(response)`` / ``(response, case)`` returning a bool or a score in [0, 1]. Text
arguments may name case columns, ``contains("{expected}")``, filled per case. ``parse_spec`` reads
the short forms the magic's ``--check`` takes (``contains:Paris``, ``json``, ``judge:RUBRIC``).

``evaluate(checks, response, case, threshold)`` runs them all: a check that raises is *errored*
(not failed) and the rest go on; the weighted mean of the scored checks is the answer's score, and
it passes when that reaches ``threshold``. ``wilson(passed, n)`` is the 95% interval of a pass rate.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from .api.response import Response
from .errors import ParameterError
from .structured.jsonextract import Extracted, ExtractionError, extract
from .structured.records import user_namespace
from .structured.schema import SchemaMismatch, parse_schema

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

Case = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
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
    afn: Callable[[Response, Case], Awaitable[Result]] | None = None  # the async twin (a judge's)

    def weighted(self, weight: float) -> Check:
        """The same check counting ``weight`` times in the score (``contains("x").weighted(2)``)."""
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise ParameterError("weight", f"a check's weight is a number >= 0; got {weight!r}")
        return replace(self, weight=float(weight))

    def run(self, response: Response, case: Case | None = None) -> Result:
        try:
            got = self.fn(response, _NO_CASE if case is None else case)
        except Exception as exc:  # a check's own failure is not the answer's
            return Result(self.name, None, None, f"{type(exc).__name__}: {exc}", errored=True)
        return got if type(got) is Result else _as_result(self.name, got)

    async def arun(self, response: Response, case: Case | None = None) -> Result:
        """``run`` inside an event loop: a check that asks a model (``judge``) awaits its answer
        instead of blocking the loop; the others run as ``run`` does."""
        if self.afn is None:
            return self.run(response, case)
        try:
            got = await self.afn(response, _NO_CASE if case is None else case)
        except Exception as exc:
            return Result(self.name, None, None, f"{type(exc).__name__}: {exc}", errored=True)
        return got if type(got) is Result else _as_result(self.name, got)


_NO_CASE: Case = MappingProxyType({})


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
    if case is None or not len(case) or "{" not in text:  # len: a DataFrame row has no truth value
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
    return _verdict(checks, [c.run(response, case) for c in checks], threshold)


async def aevaluate(
    checks: Sequence[Check], response: Response, case: Case | None = None, threshold: float = 1.0
) -> Verdict:
    """``evaluate`` inside an event loop: an answer's judges ask their models concurrently."""
    import asyncio

    results = await asyncio.gather(*(c.arun(response, case) for c in checks))
    return _verdict(checks, list(results), threshold)


def _verdict(checks: Sequence[Check], results: list[Result], threshold: float) -> Verdict:
    total = weighted = 0.0
    for c, r in zip(checks, results, strict=True):
        if r.score is not None:
            total += c.weight
            weighted += c.weight * r.score
    if total == 0:
        return Verdict(results, None, None)
    score = weighted / total
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


# -- the named checks ----------------------------------------------------------------------------
# Each returns a Check whose passing Result is made once (a pass says nothing more), so 10,000
# answers cost a few microseconds each; a failing Result says why. Text arguments holding
# ``{column}`` fields are filled per case; without such fields the text is used as written.

_FIELD = re.compile(r"(?<!\{)\{([^\W\d]\w*)\}(?!\})")
_WORD = re.compile(r"\w+")


def _show(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _label(kind: str, *args: Any) -> str:
    return f"{kind}({', '.join(_show(a) if isinstance(a, str) else repr(a) for a in args)})"


def _new(
    name: str,
    fn: Callable[[Response, Case], Result],
    weight: float,
    needs_case: bool,
    afn: Callable[[Response, Case], Awaitable[Result]] | None = None,
) -> Check:
    made = Check(name, fn, 1.0, needs_case, afn)
    return made if weight == 1 else made.weighted(weight)


class _Missing(Exception):
    """A ``{column}`` the case does not have: the check is errored, naming it."""


def _columns(case: Case) -> str:
    names = case.keys() if hasattr(case, "keys") else case  # a DataFrame row (a Series) too
    return f"the case's columns are {', '.join(map(str, names))}" if len(case) else "there is no case"


def _filler(text: str) -> Callable[[Case], str] | None:
    """None when ``text`` names no case column; else a function filling it from a case."""
    names = _FIELD.findall(text)
    if not names:
        return None
    if text == f"{{{names[0]}}}":  # the whole text is one column: its value, as fill gives it
        (only,) = names

        def column(case: Case) -> str:
            if only not in case:
                raise _Missing(f"{{{only}}} is not a column of the case ({_columns(case)})")
            return format(case[only])

        return column

    def filled(case: Case) -> str:
        for name in names:
            if name not in case:
                raise _Missing(f"{{{name}}} is not a column of the case ({_columns(case)})")
        try:
            return fill(text, case)
        except (KeyError, IndexError, ValueError) as exc:
            raise _Missing(f"cannot fill {_show(text)} from the case: {exc}") from None

    return filled


def _errored(name: str, reason: str) -> Result:
    return Result(name, None, None, reason, errored=True)


def _text_check(
    kind: str,
    text: str,
    weight: float,
    test: Callable[[str, str], bool],
    why: Callable[[str, str], str],
    prepare: Callable[[str], str] = str,
) -> Check:
    """A check comparing the answer's text with ``text`` (filled per case when it names columns)."""
    if not isinstance(text, str):
        raise ParameterError(kind, f"{kind}() takes text; got {type(text).__name__} {text!r:.40}")
    name = _label(kind, text)
    ok = Result(name, 1.0, True)
    filler = _filler(text)
    if filler is None:
        wanted = prepare(text)

        def static(response: Response, case: Case) -> Result:
            answer = response.text
            return ok if test(answer, wanted) else Result(name, 0.0, False, why(answer, text))

        return _new(name, static, weight, needs_case=False)

    def per_case(response: Response, case: Case) -> Result:
        try:
            target = filler(case)
        except _Missing as exc:
            return _errored(name, str(exc))
        answer = response.text
        return ok if test(answer, prepare(target)) else Result(name, 0.0, False, why(answer, target))

    return _new(name, per_case, weight, needs_case=True)


def contains(text: str, *, weight: float = 1.0) -> Check:
    """Scores 1 when the answer contains ``text`` (case-sensitive), else 0."""
    return _text_check(
        "contains", text, weight, lambda a, t: t in a, lambda a, t: f"does not contain {_show(t)}"
    )


def icontains(text: str, *, weight: float = 1.0) -> Check:
    """Scores 1 when the answer contains ``text`` ignoring case, else 0."""
    return _text_check(
        "icontains",
        text,
        weight,
        lambda a, t: t in a.casefold(),
        lambda a, t: f"does not contain {_show(t)} (ignoring case)",
        prepare=str.casefold,
    )


def equals(text: str, *, weight: float = 1.0) -> Check:
    """Scores 1 when the answer, stripped of surrounding whitespace, is exactly ``text`` (stripped)."""
    return _text_check(
        "equals",
        text,
        weight,
        lambda a, t: a.strip() == t,
        lambda a, t: f"is {_show(a.strip())}, not {_show(t.strip())}",
        prepare=str.strip,
    )


def starts_with(text: str, *, weight: float = 1.0) -> Check:
    """Scores 1 when the answer, after leading whitespace, begins with ``text``, else 0."""
    return _text_check(
        "starts_with",
        text,
        weight,
        lambda a, t: a.lstrip().startswith(t),
        lambda a, t: f"starts with {_show(a.lstrip()[: max(len(t), 10)])}, not {_show(t.lstrip())}",
        prepare=str.lstrip,
    )


def regex(pattern: str, *, weight: float = 1.0) -> Check:
    """Scores 1 when ``pattern`` matches somewhere in the answer (``re.search``), else 0.

    ``{column}`` fields are filled with the case's value taken literally (escaped), so
    ``regex(r"^{expected}\\b")`` finds the expected text as written; ``{3}`` stays a quantifier.
    A bad pattern is a ParameterError here, or an errored Result when it holds case fields."""
    if not isinstance(pattern, str):
        raise ParameterError("regex", f"regex() takes a pattern; got {type(pattern).__name__}")
    name = _label("regex", pattern)
    ok = Result(name, 1.0, True)
    no = Result(name, 0.0, False, f"does not match {_show(pattern)}")
    if not _FIELD.search(pattern):
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise ParameterError("regex", f"{pattern!r} is not a regular expression: {exc}") from None
        search = compiled.search

        def static(response: Response, case: Case) -> Result:
            return ok if search(response.text) is not None else no

        return _new(name, static, weight, needs_case=False)

    cache: dict[str, re.Pattern[str]] = {}

    def per_case(response: Response, case: Case) -> Result:
        missing = [n for n in _FIELD.findall(pattern) if n not in case]
        if missing:
            return _errored(name, f"{{{missing[0]}}} is not a column of the case ({_columns(case)})")
        filled = _FIELD.sub(lambda m: re.escape(str(case[m.group(1)])), pattern)
        compiled = cache.get(filled)
        if compiled is None:
            try:
                compiled = cache[filled] = re.compile(filled)
            except re.error as exc:
                return _errored(name, f"{filled!r} is not a regular expression: {exc}")
        if compiled.search(response.text) is not None:
            return ok
        return Result(name, 0.0, False, f"does not match {_show(filled)}")

    return _new(name, per_case, weight, needs_case=True)


_last_found: tuple[str, Extracted | None, str] = ("", None, "the answer is empty")


def _find_json(text: str) -> tuple[Extracted | None, str]:
    """``extract``'s finding (or why there is none), remembered for the last text: ``is_json`` and
    ``matches_schema`` on one answer read it once."""
    global _last_found
    last = _last_found
    if last[0] == text:
        return last[1], last[2]
    try:
        found, why = extract(text), ""
    except ExtractionError as exc:
        found, why = None, str(exc)
    _last_found = (text, found, why)
    return found, why


def is_json(*, weight: float = 1.0) -> Check:
    """Scores 1 when the answer holds one well-formed JSON value, found as structured output finds
    it (the whole text, a fenced block, or JSON inside prose); 0 when there is none or it is broken."""
    name = "is_json()"
    ok = Result(name, 1.0, True)
    broken = Result(name, 0.0, False, "the JSON is malformed (only a repair could read it)")

    def run(response: Response, case: Case) -> Result:
        found, why = _find_json(response.text)
        if found is None:
            return Result(name, 0.0, False, f"not JSON: {why}")
        return broken if found.path == "repaired" else ok

    return _new(name, run, weight, needs_case=False)


def matches_schema(schema: Any, *, weight: float = 1.0) -> Check:
    """Scores 1 when the answer's JSON follows ``schema``, in any of structured output's forms: a
    short form (``"name, age int"``), a JSON Schema dict or a Pydantic model; 0 with the mismatch."""
    sch = parse_schema(schema, user_namespace() if isinstance(schema, str) else None)
    shown = schema if isinstance(schema, str) else getattr(schema, "__name__", None) or sch.name
    name = f"matches_schema({_show(shown) if isinstance(shown, str) and shown is schema else shown})"
    ok = Result(name, 1.0, True)

    def run(response: Response, case: Case) -> Result:
        found, why = _find_json(response.text)
        if found is None:
            return Result(name, 0.0, False, f"not JSON: {why}")
        try:
            sch.validate(found.value)
        except SchemaMismatch as exc:
            return Result(name, 0.0, False, f"does not follow the schema: {exc}")
        return ok

    return _new(name, run, weight, needs_case=False)


def _limit(kind: str, value: Any, *, whole: bool) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ParameterError(kind, f"{kind}() takes a number >= 0; got {value!r}")
    if whole and not float(value).is_integer():
        raise ParameterError(kind, f"{kind}() takes a whole number; got {value!r}")
    return int(value) if whole else float(value)


def max_length(chars: int, *, weight: float = 1.0) -> Check:
    """Scores 1 when the answer has at most ``chars`` characters, else 0."""
    limit = _limit("max_length", chars, whole=True)
    name = _label("max_length", int(limit))
    ok = Result(name, 1.0, True)

    def run(response: Response, case: Case) -> Result:
        n = len(response.text)
        return ok if n <= limit else Result(name, 0.0, False, f"{n} characters, over {int(limit)}")

    return _new(name, run, weight, needs_case=False)


def max_tokens(n: int, *, weight: float = 1.0) -> Check:
    """Scores 1 when the answer used at most ``n`` completion tokens (the server's usage, reasoning
    included); errored when the server reported no usage."""
    limit = _limit("max_tokens", n, whole=True)
    name = _label("max_tokens", int(limit))
    ok = Result(name, 1.0, True)

    def run(response: Response, case: Case) -> Result:
        usage = response.usage
        if not usage.reported:
            return _errored(name, "the server reported no usage, so the tokens are unknown")
        used = usage.completion_tokens
        return (
            ok if used <= limit else Result(name, 0.0, False, f"{used} completion tokens, over {int(limit)}")
        )

    return _new(name, run, weight, needs_case=False)


def latency(seconds: float, *, weight: float = 1.0) -> Check:
    """Scores 1 when the whole answer took at most ``seconds`` (its total elapsed time), else 0."""
    limit = _limit("latency", seconds, whole=False)
    name = _label("latency", limit)
    ok = Result(name, 1.0, True)

    def run(response: Response, case: Case) -> Result:
        took = response.elapsed
        if took is None:
            return _errored(name, "the answer has no elapsed time")
        return ok if took <= limit else Result(name, 0.0, False, f"took {took:.2f} s, over {limit:g} s")

    return _new(name, run, weight, needs_case=False)


def cost(usd: float, *, weight: float = 1.0) -> Check:
    """Scores 1 when the answer's estimated cost (the package's price table) is at most ``usd``;
    errored when the cost is unknown (a model not in the table, offline, or no usage reported)."""
    limit = _limit("cost", usd, whole=False)
    name = _label("cost", limit)
    ok = Result(name, 1.0, True)

    def run(response: Response, case: Case) -> Result:
        spent = response.cost
        if spent is None:
            return _errored(name, f"the cost of {response.model or 'this answer'} is unknown")
        return ok if spent <= limit else Result(name, 0.0, False, f"cost ${spent:.6f}, over ${limit:g}")

    return _new(name, run, weight, needs_case=False)


def _bag(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(text.casefold()))


def similarity(a: str, b: str) -> float:
    """The cosine of two texts' sets of words (runs of letters and digits, case ignored), in
    [0, 1]: shared words / sqrt(words in a × words in b); 1 for the same words in any order or
    number, 0 for no word shared (two empty texts are alike)."""
    return _cosine(_bag(a), _bag(b))


def _cosine(x: frozenset[str], y: frozenset[str]) -> float:
    if not x or not y:
        return 1.0 if x == y else 0.0
    return min(1.0, len(x & y) / math.sqrt(len(x) * len(y)))


def similar(reference: str, threshold: float = 0.8, *, weight: float = 1.0) -> Check:
    """Scores the answer's similarity to ``reference``: the cosine of their sets of words (case,
    order and repeats ignored; no model to download, see ``similarity``); passes at ``threshold``."""
    if not isinstance(reference, str):
        raise ParameterError("similar", f"similar() takes a reference text; got {type(reference).__name__}")
    cut = _limit("similar", threshold, whole=False)
    if cut > 1:
        raise ParameterError("similar", f"the threshold is a similarity in [0, 1]; got {threshold!r}")
    name = _label("similar", reference) if cut == 0.8 else f"similar({_show(reference)}, {cut:g})"
    filler = _filler(reference)
    under = f", under {cut:g}"
    if filler is None:
        fixed, to = _bag(reference), f" to {_show(reference)}{under}"

        def static(response: Response, case: Case) -> Result:
            score = _cosine(_bag(response.text), fixed)
            if score >= cut - 1e-12:
                return Result(name, score, True)
            return Result(name, score, False, f"similarity {score:.2f}{to}")

        return _new(name, static, weight, needs_case=False)

    def run(response: Response, case: Case) -> Result:
        try:
            shown = filler(case)
        except _Missing as exc:
            return _errored(name, str(exc))
        score = _cosine(_bag(response.text), _bag(shown))
        if score >= cut - 1e-12:
            return Result(name, score, True)
        return Result(name, score, False, f"similarity {score:.2f} to {_show(shown)}{under}")

    return _new(name, run, weight, needs_case=filler is not None)


JUDGE_SYSTEM = (
    "You grade an answer against a rubric. Give a score from 0 (does not meet the rubric at all) "
    "to 1 (fully meets it), and the reason in one short line."
)
JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "grade",
    "properties": {
        "score": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "description": "0 to 1: how well the answer meets the rubric",
        },
        "reason": {"type": "string", "description": "why, in one short line"},
    },
    "required": ["score", "reason"],
    "additionalProperties": False,
}


def judge(
    rubric: str,
    model: str | None = None,
    threshold: float = 0.5,
    *,
    weight: float = 1.0,
    retries: int = 1,
    client: Any = None,
) -> Check:
    """Scores the answer as a Qwen model grades it against ``rubric``: structured output asks for
    ``{"score": 0..1, "reason": "one line"}`` at temperature 0, thinking off where the model allows;
    passes when the score reaches ``threshold``. ``model``: the judge (None: the configured model);
    ``retries``: re-asks for unusable JSON; ``client``: a ``Client`` (for ``run``) or ``AsyncClient``
    (for ``arun``) whose connections, retries and backoff to use.
    A judge that cannot answer (a 429 after the retries, no connection) makes the Result errored."""
    from .api.client import AsyncClient, Client, ask
    from .errors import QwenError
    from .structured.ask import Attempts, Plan, plan
    from .structured.ask import arun as arun_plan

    if not isinstance(rubric, str) or not rubric.strip():
        raise ParameterError(
            "judge", f"judge() takes a rubric, the text the answer is graded on; got {rubric!r}"
        )
    cut = _limit("judge", threshold, whole=False)
    if cut > 1:
        raise ParameterError("judge", f"the threshold is a score in [0, 1]; got {threshold!r}")
    name = _label("judge", rubric)
    if model is not None or cut != 0.5:
        name = (
            name[:-1]
            + (f", model={model!r}" if model is not None else "")
            + (f", {cut:g})" if cut != 0.5 else ")")
        )
    filler = _filler(rubric)
    send = client.ask if isinstance(client, Client) else ask
    shared = client if isinstance(client, AsyncClient) else None

    def question(response: Response, case: Case) -> Plan:
        wanted = rubric if filler is None else filler(case)
        return plan(
            _judge_prompt(wanted, response),
            schema=JUDGE_SCHEMA,
            model=model,
            temperature=0,
            system=JUDGE_SYSTEM,
        )

    def grade(graded: Response) -> Result:
        data = graded.data if isinstance(graded.data, dict) else {}
        score = float(data.get("score", 0.0))
        reason = " ".join(str(data.get("reason") or "").split())[:200]
        return Result(name, score, score >= cut - 1e-12, reason)

    def run(response: Response, case: Case) -> Result:
        try:
            attempts = Attempts(question(response, case), retries)
            while True:
                graded = send(attempts.prompt, **attempts.kw).complete()
                if attempts.take(graded):
                    return grade(graded)
        except _Missing as exc:
            return _errored(name, str(exc))
        except QwenError as exc:
            return _errored(name, f"the judge could not grade: {exc}")

    async def arun(response: Response, case: Case) -> Result:
        try:
            return grade(await arun_plan(question(response, case), retries, shared))
        except _Missing as exc:
            return _errored(name, str(exc))
        except QwenError as exc:
            return _errored(name, f"the judge could not grade: {exc}")

    return _new(name, run, weight, filler is not None, arun)


def _judge_prompt(rubric: str, response: Response) -> str:
    asked = [m.get("content") for m in response.messages if m.get("role") == "user"]
    question = asked[-1] if asked and isinstance(asked[-1], str) else None
    parts = [f"Rubric: {rubric}"]
    if question:
        parts.append(f"Question:\n{question}")
    parts.append(f"Answer:\n{response.text}")
    return "\n\n".join(parts)


# -- the short forms the magic's --check takes -----------------------------------------------------
SPEC_FORMS = (
    "contains:TEXT, icontains:TEXT, regex:PATTERN, equals:TEXT, starts_with:TEXT, json, "
    "schema:FIELDS, max_length:CHARS, max_tokens:N, latency:SECONDS, cost:USD, "
    "similar:[THRESHOLD:]REFERENCE, judge:[THRESHOLD:]RUBRIC"
)
_TEXT_FORMS: dict[str, Callable[..., Check]] = {
    "contains": contains,
    "icontains": icontains,
    "regex": regex,
    "equals": equals,
    "starts_with": starts_with,
}
_NUMBER_FORMS: dict[str, tuple[Callable[..., Check], bool]] = {
    "max_length": (max_length, True),
    "max_tokens": (max_tokens, True),
    "latency": (latency, False),
    "cost": (cost, False),
}
_ALIASES = {"is_json": "json", "matches_schema": "schema", "startswith": "starts_with"}


def parse_spec(text: str) -> Check:
    """A check from its short form, as ``%%qwen --check`` takes it: ``contains:Paris``, ``json``,
    ``schema:name, age int``, ``max_tokens:100``, ``similar:0.7:REFERENCE``, ``judge:RUBRIC``...
    (the text after the first colon is the argument, taken as written). Raises ParameterError."""
    if not isinstance(text, str):
        raise ParameterError("check", f"a check's short form is text; got {type(text).__name__}")
    head, colon, value = text.strip().partition(":")
    kind = head.strip().lower().replace("-", "_")
    kind = _ALIASES.get(kind, kind)
    value = _unquote(value)
    given = bool(colon)

    def bad(why: str) -> ParameterError:
        return ParameterError("check", f"{why} in --check {text!r}; the forms are {SPEC_FORMS}")

    if kind == "json":
        if value:
            raise bad("json takes no value")
        return is_json()
    if kind not in _TEXT_FORMS and kind not in _NUMBER_FORMS and kind not in ("schema", "similar", "judge"):
        raise bad(f"unknown check {head.strip()!r}")
    if not given or not value:
        raise bad(f"{kind} needs a value after ':'")
    if kind in _TEXT_FORMS:
        return _TEXT_FORMS[kind](value)
    if kind == "schema":
        return matches_schema(value)
    if kind in _NUMBER_FORMS:
        make, whole = _NUMBER_FORMS[kind]
        try:
            number = float(value)
        except ValueError:
            raise bad(f"{kind} needs a number, not {value!r}") from None
        if not math.isfinite(number) or number < 0 or (whole and not number.is_integer()):
            raise bad(f"{kind} needs a {'whole ' if whole else ''}number >= 0, not {value!r}")
        return make(int(number) if whole else number)
    first, sep, rest = value.partition(":")
    threshold: float | None = None
    if sep and rest.strip():
        try:
            threshold = float(first)
        except ValueError:
            threshold = None
        if threshold is not None and not 0 <= threshold <= 1:
            raise bad(f"the threshold {first!r} is not in [0, 1]")
    argument = rest.strip() if threshold is not None else value
    if kind == "similar":
        return similar(argument) if threshold is None else similar(argument, threshold)
    return judge(argument) if threshold is None else judge(argument, threshold=threshold)


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value
