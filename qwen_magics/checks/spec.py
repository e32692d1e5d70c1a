"""The short forms the magic's ``--check`` takes: ``parse_spec("contains:Paris")`` is the check.

``KIND:VALUE``, the value being everything after the first colon, taken as written (quotes around
it are dropped); ``json`` takes none; the graded ``similar`` and ``judge`` take an optional pass
mark first, ``similar:0.7:REFERENCE``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ..errors import ParameterError
from .core import Check
from .judge import judge
from .measures import cost, latency, max_tokens
from .similarity import similar
from .text import contains, equals, icontains, is_json, matches_schema, max_length, regex, starts_with

__all__ = ["SPEC_FORMS", "parse_spec"]

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
