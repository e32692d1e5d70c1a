"""Where a streaming Markdown answer may be cut into outputs of its own without changing its render.

A cut goes at the start of a line that opens a new top-level block: after a blank line, outside a
code fence or a ``$$`` math block, not indented (so not a list item's or a code block's
continuation), and not the next item of the list the previous block holds (a list stays one list).
Everything before a cut renders the same on its own as it does with what follows. No I/O here.
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
    list_block = False  # the block the next cut would close opens with a list item
    first = True  # the next non-blank line opens a block
    pos = start
    end = text.rfind("\n") + 1  # lines before this are complete
    while pos < end:
        nl = text.index("\n", pos)
        line = text[pos:nl]
        if fence:
            stripped = line.strip()
            if (
                stripped.startswith(fence)
                and stripped == fence[0] * len(stripped)
                and len(stripped) >= len(fence)
            ):
                fence = ""
        elif math:
            if _MATH.match(line):
                math = False
        elif not line.strip():
            blank = True
        else:
            item = bool(_ITEM.match(line))
            if blank and not first and not line[0].isspace() and not (item and list_block):
                cut = pos
                first = True
            if first:
                list_block = item
                first = False
            blank = False
            opened = _FENCE.match(line)
            if opened:
                fence = opened.group(1)
            elif _MATH.match(line) and line.strip().count("$$") == 1:
                math = True
        pos = nl + 1
    return cut
