"""Markdown to HTML, for answers shown inside HTML (the comparison grid), through markdown-it-py.

A ``%%qwen`` answer is sent as text/markdown and the front end renders it; a grid cell is part of an
HTML output, so its answer is rendered here, the CommonMark way (markdown-it-py, what Jupyter's own
tooling uses), with raw HTML in an answer shown as text, never run. ``words`` and ``mark`` let a
word diff highlight words of the rendered text: the words are those of the answer's prose (text,
not code), in order.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.token import Token

__all__ = ["markdown_html", "words"]

_PIECES = re.compile(r"\s+|[^\s]+")


@functools.cache
def _parser() -> MarkdownIt:
    from markdown_it import MarkdownIt  # here: only a grid with answers needs it

    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table").enable("strikethrough")
    md.add_render_rule("text", _render_text)
    return md


def _text_tokens(tokens: list[Token]) -> list[Token]:
    return [child for t in tokens if t.type == "inline" for child in t.children or [] if child.type == "text"]


def words(text: str) -> list[str]:
    """The words of the answer's prose, in reading order (what ``mark`` flags)."""
    return [
        p for t in _text_tokens(_parser().parse(text)) for p in _PIECES.findall(t.content) if not p.isspace()
    ]


def markdown_html(text: str, *, mark: Sequence[bool] | None = None, mark_open: str = "<mark>") -> str:
    """``text`` rendered; with ``mark``, the i-th word of ``words(text)`` is wrapped when mark[i]."""
    md = _parser()
    tokens = md.parse(text)
    if mark is not None:
        w = 0
        for t in _text_tokens(tokens):
            n = sum(1 for p in _PIECES.findall(t.content) if not p.isspace())
            t.meta = {"mark": mark[w : w + n], "open": mark_open}
            w += n
    out = md.renderer.render(tokens, md.options, {})
    return out.replace(">\n<", "><").strip()  # the newlines between tags only cost bytes


def _render_text(self: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    flags = (token.meta or {}).get("mark")
    if not flags:
        return html.escape(token.content, quote=False)
    out, w = [], 0
    for piece in _PIECES.findall(token.content):
        if piece.isspace():
            out.append(piece)
            continue
        escaped = html.escape(piece, quote=False)
        out.append(f"{token.meta['open']}{escaped}</mark>" if w < len(flags) and flags[w] else escaped)
        w += 1
    return "".join(out)
