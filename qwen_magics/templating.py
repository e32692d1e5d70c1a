"""Prompt variables: ``{name}`` and ``{expression}`` from the notebook, ``{{``/``}}`` for braces.

A prompt is a template only when every brace in it is either escaped or a field: a Python expression
that uses a name, optionally with ``!r``/``!s``/``!a`` and a ``:format`` spec. Anything else — pasted
code, JSON, a lone brace — means the prompt is sent exactly as written, so braces never crash a cell.
A prompt with no fields is also sent as written (``{{`` stays ``{{``). Values are inserted once:
braces inside a value are not expanded again.

Some values are sent as what they show rather than as their ``str``: a DataFrame or Series is the
whole table (``str(df)`` is pandas' display, which drops rows to ``...``), as Markdown, or as CSV or
JSON records with ``{df:csv}`` / ``{df:json}``; its index is kept unless it is a plain range. A
picture (a Figure, a PIL or IPython Image, ``qwen_magics.image(...)``) becomes an image part at its
place: ``fill_content`` then gives the list of content parts a message takes. When a ``budget`` of
characters is given and a table overflows it, the error says how many of its rows fit.
"""

from __future__ import annotations

import ast
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import images

__all__ = [
    "Content",
    "Field",
    "Table",
    "TemplateError",
    "fields",
    "fill",
    "fill_content",
    "format_content",
    "format_value",
    "looks_templated",
    "table",
]

Content = str | list[dict[str, Any]]  # a message's content: text, or text and image parts

_SPEC = re.compile(r"(?P<expr>.+?)(?:!(?P<conv>[rsa]))?(?::(?P<spec>[^{}]*))?", re.DOTALL)
_LOOKS_LIKE_FIELD = re.compile(r"(?<!\{)\{\s*[A-Za-z_][\w.]*\s*\}(?!\})")


class TemplateError(Exception):
    """A field that cannot be filled: an undefined name, or an expression that failed."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Field:
    source: str  # the text between the braces
    expr: str
    conversion: str | None
    spec: str


def _closing(text: str, start: int) -> int:
    """Index of the ``}`` closing the field opened at ``start``, or -1."""
    depth = 0
    i = start + 1
    n = len(text)
    while i < n:
        c = text[i]
        if c in "'\"":
            end = text.find(c, i + 1)
            if end < 0:
                return -1
            i = end
        elif c in "([{":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif c == "}":
            if depth == 0:
                return i
            depth -= 1
        elif c == "\n":
            return -1
        i += 1
    return -1


def _field(source: str) -> Field | None:
    """The field in ``{source}``, or None when it is not an expression using a name."""
    candidates: list[tuple[str, str | None, str]] = [(source, None, "")]
    match = _SPEC.fullmatch(source)
    if match and (match["conv"] or match["spec"] is not None):
        candidates.append((match["expr"], match["conv"], match["spec"] or ""))
    for expr, conv, spec in candidates:
        expr = expr.strip()
        if not expr:
            continue
        try:
            tree = ast.parse(expr, mode="eval")
        except SyntaxError:
            continue
        if any(isinstance(node, ast.Name) for node in ast.walk(tree)):
            return Field(source, expr, conv, spec)
    return None


def fields(text: str) -> list[str | Field] | None:
    """Literal pieces and fields of a template; None when ``text`` is not one."""
    parts: list[str | Field] = []
    buf: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "{":
            if text.startswith("{{", i):
                buf.append("{")
                i += 2
                continue
            end = _closing(text, i)
            field = _field(text[i + 1 : end]) if end > 0 else None
            if field is None:
                return None
            parts.append("".join(buf))
            buf = []
            parts.append(field)
            i = end + 1
        elif c == "}":
            if not text.startswith("}}", i):
                return None
            buf.append("}")
            i += 2
        else:
            buf.append(c)
            i += 1
    parts.append("".join(buf))
    return parts


def looks_templated(text: str) -> bool:
    """True when ``text`` has a ``{name}`` that was not filled because the prompt is no template."""
    return bool(_LOOKS_LIKE_FIELD.search(text))


def fill(text: str, namespace: Mapping[str, Any], *, budget: int | None = None) -> str:
    """Fill the fields of ``text`` from ``namespace``; text that is no template comes back as is.
    A picture has no place in text: it raises, saying where pictures go."""
    content = fill_content(text, namespace, budget=budget)
    if isinstance(content, list):
        raise TemplateError(
            next((p.source for p in fields(text) or [] if isinstance(p, Field)), ""),
            "a picture goes in the prompt, not here (the system prompt and other options are text)",
        )
    return content


def fill_content(
    text: str,
    namespace: Mapping[str, Any],
    *,
    budget: int | None = None,
    output: Callable[[Any], Any] | None = None,
) -> Content:
    """``fill``, where a picture becomes an image part: the text when there is none, else the list of
    text and image parts in order. ``budget``: the characters the text may take. ``output``: what an
    earlier cell's output (``{Out[3]}``, ``{_}``, ``{_3}``) shows, for one that is no table, picture
    or string (IPython's text/markdown or text/plain, rather than the object's ``str``)."""
    parts = fields(text)
    if parts is None or not any(isinstance(p, Field) for p in parts):
        return text
    scope = namespace if isinstance(namespace, dict) else dict(namespace)
    pieces: list[tuple[str | Field, Any]] = []
    for part in parts:
        if isinstance(part, str):
            pieces.append((part, part))
        elif output is not None and _is_output(part):
            pieces.append((part, _value(part, scope, output)))
        else:
            pieces.append((part, _value(part, scope)))
    if budget is not None:
        _check_budget(pieces, budget)
    return _join([value for _, value in pieces])


def format_value(value: Any, spec: str = "", conversion: str | None = None) -> str | dict[str, Any]:
    """A value as a prompt shows it: a table's whole text, a picture's image part, else ``format``."""
    if conversion is None:
        found = table(value, spec)
        if found is not None:
            return found.text
        if not spec:
            picture = images.part(value)
            if picture is not None:
                return picture
    if conversion == "r":
        value = repr(value)
    elif conversion == "s":
        value = str(value)
    elif conversion == "a":
        value = ascii(value)
    return format(value, spec)


def format_content(template: Content, values: Mapping[str, Any]) -> Content:
    """``template.format_map(values)``, where a value that is a picture becomes an image part and a
    table its whole text (``apply``'s rows, ``compare``'s cases); a list template's text parts are
    filled and its pictures kept."""
    if isinstance(template, list):
        out: list[Any] = []
        for p in template:
            out.append(format_content(p["text"], values) if p.get("type") == "text" else p)
        return _join(out)
    formatter = string.Formatter()
    pieces: list[Any] = []
    for literal, name, spec, conversion in formatter.parse(template):
        pieces.append(literal)
        if name is None:
            continue
        value, _ = formatter.get_field(name, (), values)
        pieces.append(format_value(value, spec or "", conversion))
    return _join(pieces)


def _join(values: list[Any]) -> Content:
    values = [p for v in values for p in (v if isinstance(v, list) else [v])]
    if not any(isinstance(v, dict) for v in values):
        return "".join(v.text if isinstance(v, Table) else v for v in values)
    out: list[dict[str, Any]] = []
    for v in values:
        if isinstance(v, dict):
            out.append(v)
            continue
        text = v.text if isinstance(v, Table) else v
        if not text:
            continue
        if out and out[-1].get("type") == "text":
            out[-1] = {"type": "text", "text": out[-1]["text"] + text}
        else:
            out.append({"type": "text", "text": text})
    return out


_OUTPUT_NAME = re.compile(r"Out|_{1,3}|_\d+")


def _is_output(field: Field) -> bool:
    """``{Out[3]}``, ``{_}``, ``{__}``, ``{_3}``: an earlier output, as written with no format."""
    if field.conversion is not None or field.spec:
        return False
    tree = ast.parse(field.expr, mode="eval").body
    if isinstance(tree, ast.Subscript):
        tree = tree.value
    return isinstance(tree, ast.Name) and bool(_OUTPUT_NAME.fullmatch(tree.id))


def _value(field: Field, scope: dict[str, Any], output: Callable[[Any], Any] | None = None) -> Any:
    try:
        value = eval(field.expr, scope)  # the user's own expression, in the user's own namespace
    except NameError as exc:
        name = getattr(exc, "name", None) or field.expr
        raise TemplateError(
            field.source,
            f"prompt variable {{{field.source}}}: {name!r} is not defined. Define it first, or write "
            f"{{{{{field.source}}}}} to send the braces as written.",
        ) from None
    except Exception as exc:
        raise TemplateError(
            field.source, f"prompt variable {{{field.source}}} failed: {type(exc).__name__}: {exc}"
        ) from None
    if field.conversion is None:
        try:
            found = table(value, field.spec)
        except ValueError as exc:
            raise TemplateError(field.source, f"prompt variable {{{field.source}}}: {exc}") from None
        if found is not None:
            return found
    try:
        if output is not None and not isinstance(value, str):
            picture = images.part(value)
            if picture is not None:
                return picture
            value = output(value)  # an earlier output as the notebook showed it
        return format_value(value, field.spec, field.conversion)
    except (TypeError, ValueError) as exc:
        raise TemplateError(
            field.source, f"prompt variable {{{field.source}}}: bad format {field.spec!r}: {exc}"
        ) from None
    except Exception as exc:  # a figure that cannot be drawn, a picture that cannot be read
        raise TemplateError(
            field.source, f"prompt variable {{{field.source}}} failed: {type(exc).__name__}: {exc}"
        ) from None


# -- tables ------------------------------------------------------------------------------------
TABLE_FORMATS = ("markdown", "csv", "json")


@dataclass(frozen=True)
class Table:
    """A DataFrame's text in a prompt: ``head`` (the header) and each row's length, so an error can
    say how many rows fit."""

    text: str
    head: int
    rows: list[int] = field(default_factory=list)

    def rows_within(self, chars: int) -> int:
        """How many of the first rows fit in ``chars`` characters, the header included."""
        used, n = self.head, 0
        for size in self.rows:
            if used + size > chars:
                break
            used += size
            n += 1
        return n


def _is_frame(value: Any) -> bool:
    return (type(value).__module__ or "").startswith("pandas") and type(value).__name__ in (
        "DataFrame",
        "Series",
    )


def table(value: Any, spec: str = "") -> Table | None:
    """A DataFrame's or Series' whole text in the format ``spec`` names (Markdown by default, ``csv``,
    ``json`` records); None for any other value."""
    if not _is_frame(value):
        return None
    fmt = spec.strip().lower()
    fmt = {"": "markdown", "md": "markdown", "records": "json"}.get(fmt, fmt)
    if fmt not in TABLE_FORMATS:
        raise ValueError(f"a table is sent as markdown (the default), csv or json; got the format {spec!r}")
    frame = value
    if value.ndim == 1:
        frame = value.to_frame(name=value.name if value.name is not None else "value")
    index = frame.index
    plain = type(index).__name__ == "RangeIndex" and index.start == 0 and index.step == 1
    if not plain or index.name is not None:
        frame = frame.reset_index()
    if fmt == "csv":
        lines = frame.to_csv(index=False).splitlines(keepends=True)
        return Table("".join(lines).rstrip("\r\n"), len(lines[0]), [len(line) for line in lines[1:]])
    if fmt == "json":
        if frame.empty:
            return Table("[]", 2)
        records = frame.to_json(orient="records", lines=True, force_ascii=False, date_format="iso")
        rows = records.strip().split("\n")
        return Table("[" + ",".join(rows) + "]", 2, [len(r) + 1 for r in rows])
    return _markdown(frame)


def _cell(value: Any) -> str:
    text = "" if value is None or (isinstance(value, float) and value != value) else str(value)
    return text.replace("|", "\\|").replace("\r\n", "<br>").replace("\n", "<br>")


def _markdown(frame: Any) -> Table:
    names = [" / ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in frame.columns]
    head = "| " + " | ".join(_cell(n) for n in names) + " |\n|" + "|".join("---" for _ in names) + "|\n"
    rows = ["| " + " | ".join(_cell(v) for v in row) + " |\n" for row in frame.itertuples(index=False)]
    return Table((head + "".join(rows)).rstrip("\n"), len(head), [len(r) for r in rows])


def _check_budget(pieces: list[tuple[str | Field, Any]], budget: int) -> None:
    """A table that takes the prompt over ``budget``: how many of its rows fit, nothing sent."""
    sizes = [len(v.text) if isinstance(v, Table) else len(v) if isinstance(v, str) else 0 for _, v in pieces]
    total = sum(sizes)
    tables = [(size, f, v) for (f, v), size in zip(pieces, sizes, strict=True) if isinstance(v, Table)]
    if total <= budget or not tables:
        return
    size, where, biggest = max(tables, key=lambda t: t[0])
    assert isinstance(where, Field)
    fit = biggest.rows_within(budget - (total - size))
    expr = where.expr
    raise TemplateError(
        where.source,
        f"prompt variable {{{where.source}}}: the table's {len(biggest.rows):,} rows make the prompt "
        f"{total:,} characters, more than QwenMagics.max_prompt_chars ({budget:,} left for the prompt); "
        f"{fit:,} rows fit. Send part of it, {{{expr}.head({fit})}} or {{{expr}.sample({fit})}}, or "
        "raise the limit (%qwen config max_prompt_chars=none: no limit); nothing was sent",
    )
