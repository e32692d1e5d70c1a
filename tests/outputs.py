"""What a front end ends up showing of captured display messages."""

from __future__ import annotations

import json
from typing import Any


def rendered(outputs: list[Any]) -> list[dict[str, str]]:
    """Each output's last bundle, in the order the outputs opened (updates applied by display id)."""
    order: list[Any] = []
    last: dict[Any, dict[str, str]] = {}
    for o in outputs:
        key = (o.transient or {}).get("display_id") or id(o)
        if key not in last:
            order.append(key)
        last[key] = o.data
    return [last[k] for k in order]


def rendered_markdown(outputs: list[Any]) -> str:
    """The Markdown of every output as finally shown, one after the other."""
    return "\n\n".join(b.get("text/markdown", "") for b in rendered(outputs))


def sent_bytes(outputs: list[Any]) -> int:
    """The bytes of every display message's data and metadata, as JSON: what went to the browser
    (the metadata holds the records a saved notebook replays from)."""
    return sum(len(json.dumps([o.data, o.metadata], ensure_ascii=False).encode()) for o in outputs)


def run(ip: Any, source: str) -> Any:
    """A cell as a user runs it (IPython's input transformers first; errors shown, not raised): what
    it showed."""
    from IPython.utils.capture import capture_output

    with capture_output() as cap:
        ip.run_cell(source)
    return cap


def magic(ip: Any, line: str, body: str | None = None) -> Any:
    """``%qwen line`` (or ``%%qwen line`` with ``body``) called as the magic itself, not through a
    cell's transformers: what it showed. Its errors raise."""
    from IPython.utils.capture import capture_output

    with capture_output() as cap:
        if body is None:
            ip.run_line_magic("qwen", line)
        else:
            ip.run_cell_magic("qwen", line, body)
    return cap
