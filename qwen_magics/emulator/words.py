"""Words for the offline model: its tokenizer and the prompt's content words and numbers."""

from __future__ import annotations

import re

__all__ = ["count_tokens", "split_pieces"]

_L = "A-Za-z\u00c0-\u024f\u0370-\u03ff\u0400-\u04ff"
# One match = one token (with its leading blank); the matches of any text join back to it.
_PIECE = re.compile(
    rf"\n+[ \t]*|[ \t]+(?=\s|\Z)"
    rf"|[ \t]*(?:`[^`\n]+`|\d+(?:\.\d+)?%?|[{_L}][{_L}0-9]*(?:['-][{_L}0-9]+)*|\S)|\s"
)


def _set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_STOPWORDS = _set(
    "a an the of to in on at by for from with and or but is are was were be been it its this that these "
    "those me my i you your we our do does did can could would should will may might please what how why "
    "which who when where tell about give show some any many much few explain describe write list make "
    "into than then so as short simple brief more most very just like there their they them json object name "
    "names helpful assistant respond reply format using only valid output answer question user"
)
_NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8}
_NUMBERS |= {"nine": 9, "ten": 10, "dozen": 12, "couple": 2, "few": 3, "several": 4}


def split_pieces(text: str) -> list[str]:
    """The tokens of a text, each with its leading space or newline; they join back to it."""
    return _PIECE.findall(text)


def count_tokens(text: str) -> int:
    return len(_PIECE.findall(text))


def _words(text: str) -> list[str]:
    return [t for t in (p.strip() for p in _PIECE.findall(text)) if t]


def _stem(word: str) -> str:
    w = word.lower().strip("`")
    w = w[:-2] if w.endswith("'s") else w
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 4 and w.endswith(("ches", "shes", "xes", "sses")):
        return w[:-2]
    return w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w


def _content(prompt: str) -> list[str]:
    """The prompt's content words, in order, once each."""
    skip = _STOPWORDS | _NUMBERS.keys()
    return list(
        dict.fromkeys(w for w in _words(prompt) if w[0].isalpha() and len(w) > 1 and w.lower() not in skip)
    )


def _number(prompt: str) -> int | None:
    for w in _words(prompt.lower()):
        n = int(w) if w.isdigit() else _NUMBERS.get(w)
        if n is not None and 0 < n <= 20:
            return n
    return None
