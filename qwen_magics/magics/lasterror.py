"""The notebook's last error as a prompt: ``%qwen explain`` and ``%%qwen --error``.

IPython keeps the last exception it showed in ``sys.last_value`` (with ``sys.last_traceback``). The
prompt gets its type and message, its traceback as IPython drew it but without the terminal's colour
codes (and without IPython's own frame), and the source of the cell that failed, read back from the
cache IPython compiles cells into. A traceback longer than ``MAX_TRACEBACK`` keeps its end, where the
error is.
"""

from __future__ import annotations

import linecache
import re
import sys
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_QUESTION", "LastError", "last_error", "with_error"]

DEFAULT_QUESTION = "Why did this fail, and how do I fix it?"
MAX_TRACEBACK = 12_000  # characters
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


@dataclass(frozen=True)
class LastError:
    type: str
    message: str
    traceback: str
    cell: str | None  # the source of the cell that failed, when IPython still has it

    def text(self) -> str:
        """The error as the prompt shows it."""
        out = []
        if self.cell:
            out.append(f"The cell that failed:\n```python\n{self.cell.rstrip()}\n```")
        out.append(f"The error: {self.type}: {self.message}" if self.message else f"The error: {self.type}")
        if self.traceback:
            out.append(f"The traceback:\n```\n{self.traceback.rstrip()}\n```")
        return "\n\n".join(out)


def last_error(shell: Any) -> LastError | None:
    """The last exception the shell showed, or None when there was none."""
    value = getattr(sys, "last_value", None)
    if value is None:
        return None
    tb = getattr(sys, "last_traceback", None) or value.__traceback__
    return LastError(
        type=type(value).__name__,
        message=str(value),
        traceback=_traceback(shell, value, tb),
        cell=_cell_source(shell, value, tb),
    )


def _traceback(shell: Any, value: BaseException, tb: Any) -> str:
    lines: list[str] = []
    formatter = getattr(shell, "SyntaxTB" if isinstance(value, SyntaxError) else "InteractiveTB", None)
    if formatter is not None:
        try:
            offset = 0 if isinstance(value, SyntaxError) else 1  # IPython's run_code frame
            lines = formatter.structured_traceback(type(value), value, tb, tb_offset=offset)
        except Exception:
            lines = []
    if not lines:
        import traceback

        lines = traceback.format_exception(type(value), value, tb)
    text = _ANSI.sub("", "\n".join(lines)).strip("\n")
    if len(text) > MAX_TRACEBACK:
        text = "… (the start cut)\n" + text[-MAX_TRACEBACK:]
    return text


def _is_cell(shell: Any, filename: str) -> bool:
    compiler = getattr(shell, "compile", None)
    known = getattr(compiler, "_filename_map", None)
    if isinstance(known, dict) and filename in known:
        return True
    return filename.startswith("<ipython-input-") or "/ipykernel_" in filename


def _cell_source(shell: Any, value: BaseException, tb: Any) -> str | None:
    """The cell the error came from: the first of its frames in a cell (the one that was run)."""
    names = []
    if isinstance(value, SyntaxError) and value.filename:
        names.append(value.filename)
    while tb is not None:
        names.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    for name in names:
        if _is_cell(shell, name):
            source = "".join(linecache.getlines(name))
            if source.strip():
                return source
    return None


def with_error(prompt: Any, error: LastError) -> Any:
    """The prompt (text, or text and picture parts) followed by the error."""
    if isinstance(prompt, list):
        return [*prompt, {"type": "text", "text": "\n\n" + error.text()}]
    return f"{prompt}\n\n{error.text()}" if prompt.strip() else error.text()
