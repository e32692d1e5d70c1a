"""``%qwen What is the capital of France?`` reaches the magic as typed.

IPython reads a line that ends in ``word?`` or ``word??`` as a help request (``HelpEnd`` in
``IPython.core.inputtransformer2``) before any magic runs: the question is never sent and the user
reads "Object `France` not found.". ``keep_questions`` is a cleanup transformer (the public
``shell.input_transformers_cleanup`` list, which runs before IPython's token transformers, HelpEnd
among them): it turns such a ``%qwen`` line into the very call IPython makes for a line magic, with
the question mark inside the argument. Every other line is left to IPython, ``%qwen?`` and
``%%qwen?`` included, so they still show the help; so are lines inside a string and the body of a
``%%`` cell. A cell is transformed before it runs, so the hook serves the cells after the one with
``%load_ext``.
"""

from __future__ import annotations

import re
import tokenize
from typing import Any

from IPython.core.inputtransformer2 import make_tokens_by_line

__all__ = ["install", "keep_questions", "uninstall"]

_QUESTION = re.compile(r"(?P<indent>[ \t]*)%qwen[ \t]+(?P<args>.*?\S)\s*\Z")


def keep_questions(lines: list[str]) -> list[str]:
    """The cell's lines, each ``%qwen ... word?`` line made a ``run_line_magic`` call."""
    if not lines or lines[0].lstrip().startswith("%%"):
        return lines  # a cell magic owns its body
    questions = {}
    for i, line in enumerate(lines):
        m = _QUESTION.match(line)
        if m and m["args"].endswith("?") and m["args"].rstrip("?").strip():
            questions[i] = m
    if not questions:
        return lines
    out = list(lines)
    for row in _statement_rows(lines) & questions.keys():
        m = questions[row]
        out[row] = f"{m['indent']}get_ipython().run_line_magic('qwen', {m['args']!r})\n"
    return out


def _statement_rows(lines: list[str]) -> set[int]:
    """The rows (0-based) where a statement starts with ``%qwen``: not a line inside a string."""
    rows = set()
    for tokens in make_tokens_by_line(lines):
        code = [t for t in tokens if t.type not in (tokenize.INDENT, tokenize.DEDENT)]
        if len(code) > 1 and code[0].string == "%" and code[1].string == "qwen":
            rows.add(code[0].start[0] - 1)
    return rows


def install(shell: Any) -> None:
    if keep_questions not in shell.input_transformers_cleanup:
        shell.input_transformers_cleanup.append(keep_questions)


def uninstall(shell: Any) -> None:
    while keep_questions in shell.input_transformers_cleanup:
        shell.input_transformers_cleanup.remove(keep_questions)
