"""The pieces the named checks are made of: their labels, case-column fields, limits and errors.

Each named check is a ``Check`` whose passing Result is made once (a pass says nothing more), so
10,000 answers cost a few microseconds each; a failing Result says why. Text arguments holding
``{column}`` fields are filled per case (``filler``); without such fields the text is used as
written and everything derived from it is prepared once, when the check is made.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable
from typing import Any

from ..api.response import Response
from ..errors import ParameterError
from .core import Case, Check, Result, fill

__all__ = ["FIELD", "Missing", "columns", "errored", "filler", "label", "limit", "named", "pass_mark", "show"]

FIELD = re.compile(r"(?<!\{)\{([^\W\d]\w*)\}(?!\})")


def show(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def label(kind: str, *args: Any) -> str:
    return f"{kind}({', '.join(show(a) if isinstance(a, str) else repr(a) for a in args)})"


def named(
    name: str,
    fn: Callable[[Response, Case], Result],
    weight: float,
    needs_case: bool,
    afn: Callable[[Response, Case], Awaitable[Result]] | None = None,
) -> Check:
    made = Check(name, fn, 1.0, needs_case, afn)
    return made if weight == 1 else made.weighted(weight)


class Missing(Exception):
    """A ``{column}`` the case does not have: the check is errored, naming it."""


def columns(case: Case) -> str:
    names = case.keys() if hasattr(case, "keys") else case  # a DataFrame row (a Series) too
    return f"the case's columns are {', '.join(map(str, names))}" if len(case) else "there is no case"


def filler(text: str) -> Callable[[Case], str] | None:
    """None when ``text`` names no case column; else a function filling it from a case."""
    names = FIELD.findall(text)
    if not names:
        return None
    if text == f"{{{names[0]}}}":  # the whole text is one column: its value, as fill gives it
        (only,) = names

        def column(case: Case) -> str:
            if only not in case:
                raise Missing(f"{{{only}}} is not a column of the case ({columns(case)})")
            return format(case[only])

        return column

    def filled(case: Case) -> str:
        for name in names:
            if name not in case:
                raise Missing(f"{{{name}}} is not a column of the case ({columns(case)})")
        try:
            return fill(text, case)
        except (KeyError, IndexError, ValueError) as exc:
            raise Missing(f"cannot fill {show(text)} from the case: {exc}") from None

    return filled


def errored(name: str, reason: str) -> Result:
    return Result(name, None, None, reason, errored=True)


def limit(kind: str, value: Any, *, whole: bool) -> float:
    """A check's number, refused unless it is finite and >= 0 (and whole when ``whole``)."""
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


def pass_mark(kind: str, value: Any) -> float:
    """A graded check's own pass mark: a score in [0, 1]."""
    cut = limit(kind, value, whole=False)
    if cut > 1:
        raise ParameterError(kind, f"the threshold is a score in [0, 1]; got {value!r}")
    return cut
