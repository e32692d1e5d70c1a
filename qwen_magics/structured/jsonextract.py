"""Finding the JSON in a model's answer, and saying how it was found.

JSON mode answers are JSON; a thinking or prose answer wraps it in a fenced block, in sentences, or
breaks it (a trailing comma, single quotes, a cut-off end). ``extract`` takes the whole text when it
is JSON. Otherwise the longest complete value wins, be it a fenced block's content or a balanced
object/array in the prose (so a citation like "[1]" does not win over the answer; a fence wins a
tie), unless a broken span is longer and looks like JSON: then ``json-repair`` reads that span (a
cut-off answer is repaired rather than losing all but its first record). The path taken is recorded.
``count_records`` counts finished records in partial JSON for live views.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

__all__ = ["Extracted", "ExtractionError", "count_records", "extract"]

Path = Literal["json", "fenced", "balanced", "repaired"]

_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_OPEN = re.compile(r"```[ \t]*([\w+-]*)[^\n`]*\n\s*")
_CLOSE = re.compile(r"\s*(?:```|\Z)")
_THINK = re.compile(r"^\s*<think>.*?(?:</think>|\Z)", re.DOTALL)
_KEY = re.compile(r"[\"']\s*:")
_JSON_LANGS = ("json", "jsonc", "json5", "")
_DECODER = json.JSONDecoder()

try:  # orjson reads a whole-JSON answer several times faster (batch merges read thousands)
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - orjson comes with the data extra
    from json import loads as _fast_loads  # type: ignore[assignment]


class ExtractionError(ValueError):
    """No JSON value could be found or repaired in the text."""


class Extracted(NamedTuple):  # a tuple: made for every answer a batch merges, at a tuple's cost
    value: Any
    path: Path


@dataclass
class _Scan:
    best: tuple[Any, int] | None = None  # the longest complete object/array and its length
    broken: list[tuple[int, int]] | None = None  # (start, end) of bracketed spans that do not parse
    cut: int | None = None  # start of a structure still open at the end of the text


def extract(text: str) -> Extracted:
    """The JSON value in ``text``, and which path found it: json, fenced, balanced or repaired."""
    body = (_THINK.sub("", text, count=1) if "<think>" in text else text).strip()
    if not body:
        raise ExtractionError("the answer is empty")
    try:
        return Extracted(_fast_loads(body), "json")
    except ValueError:
        try:
            return Extracted(json.loads(body), "json")  # what orjson refuses: NaN, huge integers
        except ValueError:
            pass
    if "{" not in body and "[" not in body and "`" not in body:  # no object, array or fence to find
        raise ExtractionError(f"no JSON object or array in the answer: {_preview(body)}")
    best: tuple[int, int, Any, Path] | None = None
    for value, length, rank in _fenced(body):
        if best is None or (length, rank) > best[:2]:
            best = (length, rank, value, "fenced")
    scan = _scan(body)
    if scan.best is not None and (best is None or scan.best[1] > best[0]):
        best = (scan.best[1], 0, scan.best[0], "balanced")
    longest = best[0] if best else 0
    spans = [(start, len(body)) for start in [scan.cut] if start is not None]
    spans += sorted(scan.broken or [], key=lambda se: se[0] - se[1])
    for start, end in spans:
        if end - start > longest and (best is None or _KEY.search(body, start, end)):
            repaired = _repair(body[start:end])
            if repaired is not None:
                return Extracted(repaired, "repaired")
    if best is not None:
        return Extracted(best[2], best[3])
    for span in _fence_bodies(body):
        repaired = _repair(span)
        if repaired is not None:
            return Extracted(repaired, "repaired")
    raise ExtractionError(f"no JSON object or array in the answer: {_preview(body)}")


def _fenced(text: str) -> Iterator[tuple[Any, int, int]]:
    """(value, length, rank) of each fence whose content is one JSON value; json-labelled rank 2.
    Fences pair up: a closing fence never opens the next block."""
    pos = 0
    while (m := _OPEN.search(text, pos)) is not None:
        try:
            value, end = _DECODER.raw_decode(text, m.end())
        except ValueError:
            end = -1
        close = _CLOSE.match(text, end) if end >= 0 else None
        if close is not None:
            yield value, end - m.end(), 2 if m.group(1).lower() in _JSON_LANGS else 1
            pos = close.end()
        else:
            after = text.find("```", m.end())
            if after < 0:
                return
            pos = after + 3


def _fence_bodies(text: str) -> list[str]:
    """The raw content of fenced blocks (closed or not), json-labelled first, for repair."""
    blocks = [(lang.lower(), body.strip()) for lang, body in _FENCE.findall(text)]
    return [b for lang, b in blocks if lang in _JSON_LANGS] + [
        b for lang, b in blocks if lang not in _JSON_LANGS
    ]


def _scan(text: str) -> _Scan:
    """Top-level bracketed spans, left to right: complete values, broken spans, a cut-off end.
    A span is read whole, so values nested in it never compete with it."""
    scan = _Scan(broken=[])
    i = 0
    while True:
        start = _next_bracket(text, i)
        if start < 0:
            return scan
        try:
            value, end = _DECODER.raw_decode(text, start)
        except ValueError:
            close = _span_end(text, start)
            if close is None:
                scan.cut = start
                return scan
            assert scan.broken is not None
            scan.broken.append((start, close))
            i = close
            continue
        if scan.best is None or end - start > scan.best[1]:
            scan.best = (value, end - start)
        i = end


def _span_end(text: str, start: int) -> int | None:
    """The index after the bracket that closes the one at ``start`` (None: open to the end)."""
    depth = 0
    in_string = escaped = False
    for i in range(start, len(text)):
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


def _next_bracket(text: str, start: int) -> int:
    a, b = text.find("{", start), text.find("[", start)
    if a < 0:
        return b
    if b < 0:
        return a
    return min(a, b)


def _repair(span: str) -> Any:
    """json-repair's reading of almost-JSON, when it yields an object or array with content."""
    if not span.strip():
        return None
    import json_repair

    try:
        value = json_repair.loads(span)
    except Exception:  # json-repair promises not to raise, but it parses hostile text
        return None
    return value if isinstance(value, (dict, list)) and value else None


def _preview(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[: limit - 1] + "…")


def count_records(partial: str) -> int:
    """Finished records in partial JSON: objects closed directly inside the top array, or inside an
    array that is a member of the top object (``{"items": [{...}, ...]}``)."""
    stack: list[str] = []
    in_string = escaped = False
    count = 0
    for ch in partial:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append(ch)
        elif ch in "}]" and stack:
            opened = stack.pop()
            if (
                opened == "{"
                and stack
                and stack[-1] == "["
                and (len(stack) == 1 or (len(stack) == 2 and stack[0] == "{"))
            ):
                count += 1
    return count
