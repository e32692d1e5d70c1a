"""Prompt variables: ``{name}`` and ``{expression}`` from the notebook, ``{{``/``}}`` for braces.

A prompt is a template only when every brace in it is either escaped or a field: a Python expression
that uses a name, optionally with ``!r``/``!s``/``!a`` and a ``:format`` spec. Anything else — pasted
code, JSON, a lone brace — means the prompt is sent exactly as written, so braces never crash a cell.
A prompt with no fields is also sent as written (``{{`` stays ``{{``). Values are inserted once:
braces inside a value are not expanded again.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Field", "TemplateError", "fields", "fill", "looks_templated"]

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


def fill(text: str, namespace: Mapping[str, Any]) -> str:
    """Fill the fields of ``text`` from ``namespace``; text that is no template comes back as is."""
    parts = fields(text)
    if parts is None or not any(isinstance(p, Field) for p in parts):
        return text
    out = []
    for part in parts:
        out.append(part if isinstance(part, str) else _value(part, namespace))
    return "".join(out)


def _value(field: Field, namespace: Mapping[str, Any]) -> str:
    try:
        scope = namespace if isinstance(namespace, dict) else dict(namespace)
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
    if field.conversion == "r":
        value = repr(value)
    elif field.conversion == "s":
        value = str(value)
    elif field.conversion == "a":
        value = ascii(value)
    try:
        return format(value, field.spec)
    except (TypeError, ValueError) as exc:
        raise TemplateError(
            field.source, f"prompt variable {{{field.source}}}: bad format {field.spec!r}: {exc}"
        ) from None
