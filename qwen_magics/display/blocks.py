"""Where a streaming Markdown answer may be cut into outputs of its own without changing its render.

A cut goes where a top-level block has ended: after a blank line, outside a code fence or a ``$$``
math block. A block that opens with a list item or an indented line may go on after a blank line
(the list's next item, a continuation line), so it is cut only at the start of a complete line
that is neither indented nor the next item of that list. Every other block is cut as soon as its
blank line arrives, so the frozen part keeps up with the stream. No I/O here.
"""

from __future__ import annotations

import re

__all__ = ["settled"]

_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_ITEM = re.compile(r" {0,3}(?:[-*+]|\d{1,9}[.)])(?:[ \t]|$)")
_MATH = re.compile(r" {0,3}\$\$")


def settled(text: str, start: int = 0) -> int:
    """The last cut in ``text`` at or after ``start`` (``start`` itself when there is none).

    ``start`` must be a cut already (0, or a value this function returned for a prefix of ``text``).
    Only complete lines are looked at, so the open last line never moves a cut.
    """
    cut = start
    fence = ""  # the open fence's marker
    math = False
    blank = False  # the previous line was blank
    waits = False  # the open block may go on after a blank line (a list, an indented block)
    first = True  # the next non-blank line opens a block
    pos = start
    end = text.rfind("\n") + 1  # lines before this are complete
    while pos < end:
        nl = text.index("\n", pos)
        line = text[pos:nl]
        if fence:
            stripped = line.strip()
            if stripped == fence[0] * len(stripped) and len(stripped) >= len(fence):
                fence = ""
        elif math:
            if _MATH.match(line):
                math = False
        elif not line.strip():
            if not first and not waits:
                cut = nl + 1  # the block is over: nothing after a blank line can join it
                first = True
            blank = True
        else:
            item = bool(_ITEM.match(line))
            if blank and not first and not line[0].isspace() and not item:
                cut = pos
                first = True
            if first:
                waits = item or line[0].isspace()
                first = False
            blank = False
            opened = _FENCE.match(line)
            if opened:
                fence = opened.group(1)
            elif _MATH.match(line) and line.strip().count("$$") == 1:
                math = True
        pos = nl + 1
    return cut
