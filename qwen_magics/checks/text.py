"""Checks on what the answer says: contains, icontains, equals, starts_with, regex, max_length, and
the JSON in it (is_json, matches_schema, found as structured output finds it).

Each passes (score 1) or fails (score 0, saying why). A text or pattern naming case columns,
``contains("{expected}")``, is filled per case; one naming none is prepared once (compiled,
casefolded, stripped) when the check is made.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..api.response import Response
from ..errors import ParameterError
from ..structured.jsonextract import Extracted, ExtractionError, extract
from ..structured.records import user_namespace
from ..structured.schema import SchemaMismatch, parse_schema
from .build import FIELD, Missing, columns, errored, filler, label, limit, named, show
from .core import Case, Check, Result

__all__ = [
    "contains",
    "equals",
    "icontains",
    "is_json",
    "matches_schema",
    "max_length",
    "regex",
    "starts_with",
]


def _text_check(
    kind: str,
    text: str,
    weight: float,
    test: Callable[[str, str], bool],
    why: Callable[[str, str], str] | str,
    prepare: Callable[[str], str] | None = None,
) -> Check:
    """A check comparing the answer's text with ``text`` (filled per case when it names columns).
    ``why`` is the failure's reason from (answer, text), or a fixed one taking ``{}`` for the text."""
    if not isinstance(text, str):
        raise ParameterError(kind, f"{kind}() takes text; got {type(text).__name__} {text!r:.40}")
    name = label(kind, text)
    ok = Result(name, 1.0, True)
    fill = filler(text)
    if fill is None:
        wanted = text if prepare is None else prepare(text)
        if isinstance(why, str):  # the reason does not depend on the answer: one failing Result
            no = Result(name, 0.0, False, why.format(show(text)))

            def fixed(response: Response, case: Case) -> Result:
                return ok if test(response.text, wanted) else no

            return named(name, fixed, weight, needs_case=False)
        say = why

        def static(response: Response, case: Case) -> Result:
            answer = response.text
            return ok if test(answer, wanted) else Result(name, 0.0, False, say(answer, text))

        return named(name, static, weight, needs_case=False)

    def reason(answer: str, target: str) -> str:
        return why.format(show(target)) if isinstance(why, str) else why(answer, target)

    def per_case(response: Response, case: Case) -> Result:
        try:
            target = fill(case)
        except Missing as exc:
            return errored(name, str(exc))
        answer = response.text
        wanted = target if prepare is None else prepare(target)
        return ok if test(answer, wanted) else Result(name, 0.0, False, reason(answer, target))

    return named(name, per_case, weight, needs_case=True)


def contains(text: str, *, weight: float = 1.0) -> Check:
    """Scores 1 when the answer contains ``text`` (case-sensitive), else 0."""
    return _text_check("contains", text, weight, lambda a, t: t in a, "does not contain {}")


def icontains(text: str, *, weight: float = 1.0) -> Check:
    """Scores 1 when the answer contains ``text`` ignoring case, else 0."""
    return _text_check(
        "icontains",
        text,
        weight,
        lambda a, t: t in a.casefold(),
        "does not contain {} (ignoring case)",
        prepare=str.casefold,
    )


def equals(text: str, *, weight: float = 1.0) -> Check:
    """Scores 1 when the answer, stripped of surrounding whitespace, is exactly ``text`` (stripped)."""
    return _text_check(
        "equals",
        text,
        weight,
        lambda a, t: a.strip() == t,
        lambda a, t: f"is {show(a.strip())}, not {show(t.strip())}",
        prepare=str.strip,
    )


def starts_with(text: str, *, weight: float = 1.0) -> Check:
    """Scores 1 when the answer, after leading whitespace, begins with ``text``, else 0."""
    return _text_check(
        "starts_with",
        text,
        weight,
        lambda a, t: a.lstrip().startswith(t),
        lambda a, t: f"starts with {show(a.lstrip()[: max(len(t), 10)])}, not {show(t.lstrip())}",
        prepare=str.lstrip,
    )


_COMPILED_KEPT = 1024  # a per-case pattern's compiled forms kept (one per distinct filling)


def regex(pattern: str, *, weight: float = 1.0) -> Check:
    """Scores 1 when ``pattern`` matches somewhere in the answer (``re.search``), else 0.

    ``{column}`` fields are filled with the case's value taken literally (escaped), so
    ``regex(r"^{expected}\\b")`` finds the expected text as written; ``{3}`` stays a quantifier.
    A bad pattern is a ParameterError here, or an errored Result when it holds case fields."""
    if not isinstance(pattern, str):
        raise ParameterError("regex", f"regex() takes a pattern; got {type(pattern).__name__}")
    name = label("regex", pattern)
    ok = Result(name, 1.0, True)
    no = Result(name, 0.0, False, f"does not match {show(pattern)}")
    fields = FIELD.findall(pattern)
    if not fields:
        try:
            search = re.compile(pattern).search
        except re.error as exc:
            raise ParameterError("regex", f"{pattern!r} is not a regular expression: {exc}") from None

        def static(response: Response, case: Case) -> Result:
            return ok if search(response.text) is not None else no

        return named(name, static, weight, needs_case=False)

    cache: dict[str, tuple[re.Pattern[str], Result]] = {}

    def per_case(response: Response, case: Case) -> Result:
        for field in fields:
            if field not in case:
                return errored(name, f"{{{field}}} is not a column of the case ({columns(case)})")
        filled = FIELD.sub(lambda m: re.escape(str(case[m.group(1)])), pattern)
        known = cache.get(filled)
        if known is None:
            try:
                compiled = re.compile(filled)
            except re.error as exc:
                return errored(name, f"{filled!r} is not a regular expression: {exc}")
            if len(cache) >= _COMPILED_KEPT:
                cache.clear()
            known = cache[filled] = (compiled, Result(name, 0.0, False, f"does not match {show(filled)}"))
        return ok if known[0].search(response.text) is not None else known[1]

    return named(name, per_case, weight, needs_case=True)


def max_length(chars: int, *, weight: float = 1.0) -> Check:
    """Scores 1 when the answer has at most ``chars`` characters, else 0."""
    most = int(limit("max_length", chars, whole=True))
    name = label("max_length", most)
    ok = Result(name, 1.0, True)

    def run(response: Response, case: Case) -> Result:
        n = len(response.text)
        return ok if n <= most else Result(name, 0.0, False, f"{n} characters, over {most}")

    return named(name, run, weight, needs_case=False)


# -- the JSON in the answer -------------------------------------------------------------------------
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

    return named(name, run, weight, needs_case=False)


def matches_schema(schema: Any, *, weight: float = 1.0) -> Check:
    """Scores 1 when the answer's JSON follows ``schema``, in any of structured output's forms: a
    short form (``"name, age int"``), a JSON Schema dict or a Pydantic model; 0 with the mismatch."""
    sch = parse_schema(schema, user_namespace() if isinstance(schema, str) else None)
    shown = schema if isinstance(schema, str) else getattr(schema, "__name__", None) or sch.name
    name = f"matches_schema({show(shown) if isinstance(shown, str) and shown is schema else shown})"
    ok = Result(name, 1.0, True)
    validate = sch.validate

    def run(response: Response, case: Case) -> Result:
        found, why = _find_json(response.text)
        if found is None:
            return Result(name, 0.0, False, f"not JSON: {why}")
        try:
            validate(found.value)
        except SchemaMismatch as exc:
            return Result(name, 0.0, False, f"does not follow the schema: {exc}")
        return ok

    return named(name, run, weight, needs_case=False)
