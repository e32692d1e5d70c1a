"""How alike two texts are, with no model to download: ``similarity`` and the ``similar`` check.

The measure is the cosine of the two texts' sets of words (runs of letters, digits and ``_``, case
ignored): shared words / sqrt(words in a × words in b). ``similar(reference, threshold)`` is a
graded check: its Result's score is that similarity, and it passes at its own ``threshold``. The
reference's words are found once when the check is made (or once per distinct case value).
"""

from __future__ import annotations

import math
import re
from typing import Any

from ..api.response import Response
from ..errors import ParameterError
from .build import Missing, errored, filler, label, named, pass_mark, show
from .core import EPSILON, Case, Check, Result

__all__ = ["similar", "similarity"]

_WORD = re.compile(r"\w+")
# ASCII text (most answers): one pass lowers it and blanks every character \w does not match
_ASCII_WORDS = str.maketrans(
    {c: (c.lower() if c.isalnum() or c == "_" else " ") for c in map(chr, range(128))}
)


# the same for an answer as bytes, the quickest way through a check's 10,000 answers; its word set
# meets the reference's words encoded alike (a non-ASCII word never equals an ASCII one)
_ASCII_BYTES = bytes(
    (c | 0x20 if chr(c).isalpha() else c) if c < 128 and (chr(c).isalnum() or c == 95) else 32
    for c in range(256)
)


def words(text: str) -> frozenset[str]:
    """The set of ``text``'s words, casefolded: what ``similarity`` compares."""
    if text.isascii():
        return frozenset(text.translate(_ASCII_WORDS).split())
    return frozenset(_WORD.findall(text.casefold()))


def _both(text: str) -> tuple[frozenset[str], frozenset[bytes]]:
    """A reference's words, and the same as UTF-8 bytes for ASCII answers."""
    found = words(text)
    return found, frozenset(w.encode() for w in found)


def _score(answer: str, reference: tuple[frozenset[str], frozenset[bytes]]) -> float:
    if answer.isascii():
        return _cosine(frozenset(answer.encode().translate(_ASCII_BYTES).split()), reference[1])
    return _cosine(frozenset(_WORD.findall(answer.casefold())), reference[0])


def similarity(a: str, b: str) -> float:
    """The cosine of two texts' sets of words (runs of letters and digits, case ignored), in
    [0, 1]: shared words / sqrt(words in a × words in b); 1 for the same words in any order or
    number, 0 for no word shared (two empty texts are alike)."""
    return _cosine(words(a), words(b))


def _cosine(x: frozenset[Any], y: frozenset[Any]) -> float:
    if not x or not y:
        return 1.0 if x == y else 0.0
    return min(1.0, len(x & y) / math.sqrt(len(x) * len(y)))


_BAGS_KEPT = 1024  # a per-case reference's word sets kept (one per distinct value)


def similar(reference: str, threshold: float = 0.8, *, weight: float = 1.0) -> Check:
    """Scores the answer's similarity to ``reference``: the cosine of their sets of words (case,
    order and repeats ignored; no model to download, see ``similarity``). A graded check: it passes
    at ``threshold``, and a pass counts in full toward the answer's score."""
    if not isinstance(reference, str):
        raise ParameterError("similar", f"similar() takes a reference text; got {type(reference).__name__}")
    cut = pass_mark("similar", threshold)
    name = label("similar", reference) if cut == 0.8 else f"similar({show(reference)}, {cut:g})"
    fill = filler(reference)
    under = f", under {cut:g}"
    mark = cut - EPSILON
    if fill is None:
        fixed, to = _both(reference), f" to {show(reference)}{under}"

        def static(response: Response, case: Case) -> Result:
            score = _score(response.text, fixed)
            if score >= mark:
                return Result(name, score, True)
            return Result(name, score, False, f"similarity {score:.2f}{to}")

        return named(name, static, weight, needs_case=False)

    bags: dict[str, tuple[frozenset[str], frozenset[bytes]]] = {}

    def run(response: Response, case: Case) -> Result:
        try:
            shown = fill(case)
        except Missing as exc:
            return errored(name, str(exc))
        bag = bags.get(shown)
        if bag is None:
            if len(bags) >= _BAGS_KEPT:
                bags.clear()
            bag = bags[shown] = _both(shown)
        score = _score(response.text, bag)
        if score >= mark:
            return Result(name, score, True)
        return Result(name, score, False, f"similarity {score:.2f} to {show(shown)}{under}")

    return named(name, run, weight, needs_case=True)
