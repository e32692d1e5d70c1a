"""How different a model's answers are: distinct answers, a diversity figure and a word diff.

Similarity is difflib's ``SequenceMatcher.ratio()`` on the answers' *words* (2·matches / total
words): 1.0 for the same words in the same order, near 0 for unrelated text. Word level keeps it
about what was said rather than about spacing and punctuation; the word diff marks the rendered
Markdown. No I/O here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from itertools import combinations

from ..display.markdown import markdown_html, words

__all__ = ["Diversity", "distinct_answers", "diversity", "similarity", "word_diff_html"]

MARK_STYLE = "background:rgba(255,196,0,.45);color:inherit;border-radius:2px;padding:0 1px"


@dataclass(frozen=True)
class Diversity:
    """``distinct_share``: distinct answers / answers; ``similarity``: mean pairwise word similarity."""

    answers: int
    distinct: int
    distinct_share: float
    similarity: float | None  # None with fewer than two answers

    def describe(self) -> str:
        text = f"{self.distinct} distinct of {self.answers} ({self.distinct_share:.0%})"
        if self.similarity is not None:
            text += f" · similarity {self.similarity:.2f}"
        return text


def _key(text: str) -> str:
    """Answers that differ only in surrounding or repeated white space count as the same."""
    return " ".join(text.split())


def distinct_answers(texts: Sequence[str]) -> list[tuple[str, int]]:
    """The distinct answers with how often each came, most frequent first (ties: first seen)."""
    counts: Counter[str] = Counter()
    first: dict[str, str] = {}
    for text in texts:
        key = _key(text)
        counts[key] += 1
        first.setdefault(key, text)
    return [(first[key], n) for key, n in counts.most_common()]


def similarity(a: str, b: str) -> float:
    """difflib ratio on words: 1.0 identical, 0.0 nothing in common."""
    wa, wb = a.split(), b.split()
    if not wa and not wb:
        return 1.0
    return SequenceMatcher(None, wa, wb, autojunk=False).ratio()


def diversity(texts: Sequence[str]) -> Diversity | None:
    """The figure a cell shows for its samples; None when there is no answer."""
    if not texts:
        return None
    groups = distinct_answers(texts)
    n = len(texts)
    sim: float | None = None
    if n >= 2:
        # identical answers are similar by definition; compare each distinct pair once, weighted
        total = sum(c * (c - 1) / 2 for _, c in groups)
        for (ta, ca), (tb, cb) in combinations(groups, 2):
            total += ca * cb * similarity(ta, tb)
        sim = total / (n * (n - 1) / 2)
    return Diversity(answers=n, distinct=len(groups), distinct_share=len(groups) / n, similarity=sim)


def word_diff_html(text: str, reference: str) -> str:
    """``text`` rendered from Markdown, with the words of its prose that are not in ``reference``'s
    marked (code is compared by neither)."""
    mine, theirs = words(text), words(reference)
    matcher = SequenceMatcher(None, theirs, mine, autojunk=False)
    changed = [False] * len(mine)
    for tag, _i1, _i2, j1, j2 in matcher.get_opcodes():
        if tag in ("replace", "insert"):
            changed[j1:j2] = [True] * (j2 - j1)
    return markdown_html(text, mark=changed, mark_open=f"<mark class='qwen-diff' style='{MARK_STYLE}'>")
