"""``%qwen log``: the history as a table, and what the history learns from the notebook.

``log_bundle`` is Markdown with a plain-text twin, like the other ``%qwen`` commands: newest
first, the words searched for in bold (in brackets in plain text), user text escaped.
``notebook_fields`` tells the history which notebook and cell asked: the front end's notebook path
(JupyterLab's ``JPY_SESSION_NAME``, VS Code's ``__vsc_ipynb_file__``), the execution count and the
cell id the front end sent with the request.
"""

from __future__ import annotations

import os
import re
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser
from IPython.utils.process import arg_split

from ..api.render import escape_text, format_cost
from ..errors import QwenError
from ..recall import history, when

__all__ = ["log_bundle", "notebook_fields", "parse_log"]

PROMPT_CHARS, ANSWER_CHARS = 60, 90

_parser = MagicArgumentParser(prog="%qwen log", add_help=False)
_parser.add_argument("-n", type=int, default=20, metavar="N", help="how many answers (newest first)")
_parser.add_argument("-q", nargs="+", metavar="WORDS", help="answers with all these words")
_parser.add_argument("-m", "--model", metavar="MODEL", help="answers of this model")
_parser.add_argument("--since", metavar="WHEN", help="2026-12-01, 30m, 1h, 2d or yesterday")


def parse_log(rest: str) -> Any:
    """The options of ``%qwen log``; a mistake is a UsageError saying what to write."""
    try:
        args = _parser.parse_args(arg_split(rest, posix=True))
    except ValueError as exc:
        raise UsageError(f"%qwen log: could not read the options ({exc}); check the quotes") from None
    if args.n < 1:
        raise UsageError(f"%qwen log -n: how many answers to show, a whole number >= 1; got {args.n}")
    return args


def log_bundle(rest: str) -> dict[str, str]:
    """The ``%qwen log`` table."""
    args = parse_log(rest)
    words = " ".join(args.q) if args.q else None
    where = history.path
    if where is None:
        note = "The history is off (QWEN_HISTORY=off); set QWEN_HISTORY to a file to record answers."
        return {"text/markdown": note, "text/plain": note}
    try:
        rows = history.rows(words, args.model, args.since, args.n)
    except ValueError as exc:  # a bad --since (a ParameterError)
        raise UsageError(f"%qwen log --since: {exc}") from None
    except (QwenError, OSError) as exc:
        raise UsageError(f"%qwen log: {exc}") from None
    if not rows:
        asked = "matching answers" if words or args.model or args.since else "answers"
        note = f"No {asked} in the history ({where})."
        return {"text/markdown": escape_text(note), "text/plain": note}
    terms = words.split() if words else []
    header = ["id", "when", "model", "prompt", "answer", "tokens", "cost / state"]
    md_rows, plain_rows = [], []
    for row in rows:
        prompt = _excerpt(row.get("prompt") or "", terms, PROMPT_CHARS)
        answer = _excerpt(row.get("text") or "", terms, ANSWER_CHARS)
        cells = [str(row["id"]), when(row["time"]), row.get("model") or "?"]
        tokens = "—" if row.get("total_tokens") is None else f"{row['total_tokens']:,}"
        tail = [tokens, _state(row)]
        shown = [_marked(prompt, terms, md=True), _marked(answer, terms, md=True)]
        md_rows.append([*map(_md_cell, cells), *shown, *map(_md_cell, tail)])
        plain_rows.append([*cells, _marked(prompt, terms, md=False), _marked(answer, terms, md=False), *tail])
    md = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    md += ["| " + " | ".join(r) + " |" for r in md_rows]
    widths = [max(len(r[i]) for r in [header, *plain_rows]) for i in range(len(header))]
    plain = [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *plain_rows]
    ]
    more = f"{len(rows)} answer{'s' * (len(rows) != 1)}, newest first, from {where}. "
    hint = "`qwen_magics.history.get(ID)` brings one back; `qwen_magics.history()` is a DataFrame."
    return {
        "text/markdown": "\n".join(md) + "\n\n" + escape_text(more) + hint,
        "text/plain": "\n".join(plain) + "\n\n" + more + hint.replace("`", ""),
    }


def _state(row: dict[str, Any]) -> str:
    if row.get("interrupted"):
        return "interrupted"
    if row.get("incomplete"):
        return "incomplete"
    if row.get("offline"):
        return "offline"
    cost = format_cost(row.get("cost"))
    return cost.replace(" (est.)", "") if cost else "cost unknown"


def _excerpt(text: str, terms: list[str], width: int) -> str:
    """One line of ``text`` about ``width`` long, starting a little before the first word searched for."""
    flat = " ".join(text.split())
    start = 0
    found = _pattern(terms).search(flat) if terms else None
    if found is not None and found.start() > width // 3:
        start = found.start() - width // 4
    piece = flat[start : start + width]
    return ("…" if start else "") + piece + ("…" if start + width < len(flat) else "")


def _pattern(terms: list[str]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True)), re.IGNORECASE)


_MD_SPECIAL = re.compile(r"([\\`*_\[\]|])")


def _md_cell(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", escape_text(text))


def _marked(text: str, terms: list[str], *, md: bool) -> str:
    """``text`` with the words searched for in bold (Markdown) or in brackets (plain text)."""
    pieces, last = [], 0
    for m in _pattern(terms).finditer(text) if terms else ():
        pieces += [(text[last : m.start()], False), (m.group(), True)]
        last = m.end()
    pieces.append((text[last:], False))
    out = []
    for piece, hit in pieces:
        if not piece:
            continue
        if md:
            piece = _md_cell(piece)
            out.append(f"**{piece}**" if hit else piece)
        else:
            out.append(f"[{piece}]" if hit else piece)
    return "".join(out)


def notebook_fields() -> dict[str, Any]:
    """Which notebook and cell are asking, as far as the kernel knows."""
    from IPython import get_ipython

    ip = get_ipython()
    if ip is None:
        return {}
    fields: dict[str, Any] = {"cell": ip.execution_count}
    notebook = ip.user_ns.get("__vsc_ipynb_file__") or os.environ.get("JPY_SESSION_NAME")
    if notebook:
        fields["notebook"] = str(notebook)
    kernel = getattr(ip, "kernel", None)
    try:
        parent = kernel.get_parent() if kernel is not None else None
    except Exception:
        parent = None
    cell_id = ((parent or {}).get("metadata") or {}).get("cellId")
    if cell_id:
        fields["cell_id"] = str(cell_id)
    return fields
