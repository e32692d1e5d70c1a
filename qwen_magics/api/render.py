"""Words and Markdown for a Response: the footer line and the final render. No I/O here."""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING

from ..models import get_model

if TYPE_CHECKING:
    from .response import Response, ToolCall

__all__ = [
    "closing_markdown",
    "escape_text",
    "footer_text",
    "format_cost",
    "response_markdown",
    "thinking_html",
    "tool_call_line",
    "tool_call_markdown",
    "tools_markdown",
]

RESULT_SHOWN = 160  # characters of a tool's result shown before "show all"

# A `$` that no front end reads as TeX. JupyterLab pairs `$...$` twice: in the Markdown source (which
# `\$` escapes) and then, with MathJax, in the rendered page's text (where that backslash is gone):
# an entity defeats the first, an element of its own the second (MathJax math never spans tags).
DOLLAR = "<span>&#36;</span>"
# code spans and fenced or indented code: Markdown shows them as written, `$` included
_CODE = re.compile(
    r"^[ \t>]*(?P<fence>`{3,}|~{3,}).*?(?:^[ \t>]*(?P=fence)[ \t]*$|\Z)"
    r"|(?P<ticks>`+)(?!`).*?(?<!`)(?P=ticks)(?!`)"
    r"|^(?:>[ \t]?)*(?: {4}|\t).*?$",
    re.MULTILINE | re.DOTALL,
)


def escape_text(text: str, *, markdown: bool = False) -> str:
    """``text`` for our own Markdown or HTML, shown as written: every ``$`` is one that never starts
    math, and ``<``/``&`` are escaped. ``markdown=True`` keeps the text's own Markdown (a user's
    prompt in the history) and leaves its code alone. Model answers do not come through here: they
    are Markdown as the model wrote it, and ``$...$`` there is usually math."""
    if not markdown:
        return html.escape(text).replace("$", DOLLAR)
    out, start = [], 0
    for m in _CODE.finditer(text):
        out.append(text[start : m.start()].replace("$", DOLLAR))
        out.append(m.group())
        start = m.end()
    out.append(text[start:].replace("$", DOLLAR))
    return "".join(out)


def format_cost(cost: float | None) -> str:
    if cost is None:
        return ""
    if cost < 0.01:
        return f"≈${cost:.5f} (est.)"
    return f"≈${cost:.4f} (est.)"


def footer_text(r: Response) -> str:
    """model · tokens in / out (reasoning, cached, image) · why it stopped early · ttft · total ·
    tokens/s · cost."""
    u = r.usage
    detail = []
    if u.reasoning_tokens:
        detail.append(f"{u.reasoning_tokens:,} reasoning")
    if u.cached_tokens:
        detail.append(f"{u.cached_tokens:,} cached")
    if u.image_tokens:
        detail.append(f"{u.image_tokens:,} image")
    tokens = f"{u.prompt_tokens:,} in / {u.completion_tokens:,} out"
    if detail:
        tokens += f" ({', '.join(detail)})"
    calls = r.partial_tool_calls if not r.done else r.tool_calls
    if r.steps > 1 or (calls and any(c.result is not None or c.error is not None for c in calls)):
        ran = len(calls)
        tokens += f" · {r.steps} steps, {ran} tool call{'s' if ran != 1 else ''}"
    reported = u.reported
    if not reported:  # stopped before its usage chunk, or a server that sends none: not "0 in / 0 out"
        tokens = "usage not reported"
    parts = [r.model or "?", tokens]
    if r.truncated:  # the answer ends mid-phrase; say why next to the count that shows it
        parts.append(_limit_words(r))
    if r.ttft is not None:
        parts.append(f"first token {r.ttft:.2f}s")
    if r.elapsed is not None:
        parts.append(f"total {r.elapsed:.2f}s")
    tps = r.tokens_per_second
    if tps:
        parts.append(f"{tps:,.0f} tok/s")
    if r.offline:
        parts.append("offline")
    elif not reported:
        parts.append("cost unknown")
    else:
        cost = format_cost(r.cost)
        if cost:
            parts.append(cost)
    parts.extend(r.notes)
    if r.interrupted:
        parts.append("interrupted")
    elif r.incomplete:
        parts.append(f"incomplete: {r.error}" if r.error else "incomplete")
    return " · ".join(parts)


def _limit_words(r: Response) -> str:
    if r.max_tokens is not None:
        return f"stopped at max_tokens ({r.max_tokens:,})"
    info = get_model(r.model or "")
    if info is not None:
        return f"stopped at max_tokens ({info.max_output:,}, {info.name}'s limit)"
    return "stopped at max_tokens"


def thinking_html(reasoning: str, *, open_: bool) -> str:
    """A collapsible Thinking block, open while the model thinks, folded once the answer starts."""
    attr = " open" if open_ else ""
    body = escape_text(reasoning)
    return (
        f"<details{attr} class='qwen-thinking'><summary>Thinking</summary>"
        f"<div style='white-space:pre-wrap;opacity:.75;font-size:.9em'>{body}</div></details>"
    )


def _args_text(call: ToolCall) -> str:
    args = call.args
    if isinstance(args, dict):
        return ", ".join(f"{k}={v!r}" for k, v in args.items())
    return call.arguments


def _short(text: str, most: int = RESULT_SHOWN) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= most else flat[: most - 1] + "…"


def tool_call_line(call: ToolCall) -> str:
    """One call in plain text: ``get_weather(city='Paris') → rain · 0.01s`` (a terminal's line)."""
    head = f"{call.name}({_args_text(call)})"
    seconds = f" · {call.seconds:.2f}s" if call.seconds is not None else ""
    if call.error is not None:
        return f"{head} ✗ {call.error}{seconds}"
    if call.result is None:
        return f"{head} …"
    return f"{head} → {_short(call.result)}{seconds}"


def tool_call_markdown(call: ToolCall) -> str:
    """One call as a block: name and arguments, the result shortened (all of it one click away),
    or the error sent back, and how long the function ran."""
    head = f"<code>{escape_text(call.name)}({escape_text(_args_text(call))})</code>"
    seconds = f" <sub>{call.seconds:.2f}s</sub>" if call.seconds is not None else ""
    if call.error is not None:
        return f"<div class='qwen-tool'><b>tool</b> {head} ✗ <i>{escape_text(call.error)}</i>{seconds}</div>"
    if call.result is None:
        return f"<div class='qwen-tool'><b>tool</b> {head} …</div>"
    short = escape_text(_short(call.result))
    if len(" ".join(call.result.split())) <= RESULT_SHOWN:
        return f"<div class='qwen-tool'><b>tool</b> {head} → {short}{seconds}</div>"
    whole = escape_text(call.result)
    return (
        f"<details class='qwen-tool'><summary><b>tool</b> {head} → {short}{seconds}</summary>"
        f"<div style='white-space:pre-wrap;font-size:.9em'>{whole}</div></details>"
    )


def tools_markdown(calls: list[ToolCall]) -> str:
    return "\n".join(tool_call_markdown(c) for c in calls)


def closing_markdown(r: Response) -> str:
    """What ends a render: the Interrupted or Incomplete mark when there is one, then the footer.

    The mark says what is on screen: a partial answer, or only the reasoning of a model stopped while
    it was still thinking. Words, no symbol: U+23F9 (stop) is in none of the fonts a plain Linux
    desktop ships, and a browser there draws a box for it."""
    out = []
    if r.done and (r.interrupted or r.incomplete):
        if r.partial_text:
            kept = "the answer above is partial."
        elif r.partial_reasoning:
            kept = "no answer yet; the reasoning so far is kept in Thinking, above."
        else:
            kept = "nothing arrived."
        if r.interrupted:
            if not r.partial_text and r.partial_reasoning:
                kept = "stopped while the model was still thinking: " + kept
            out.append(f"**Interrupted:** {kept}")
        else:
            why = escape_text(str(r.error or "the stream ended early")).rstrip(".")
            out.append(f"**Incomplete:** {why}. {kept[0].upper()}{kept[1:]}")
    out.append(f"<sub>{escape_text(footer_text(r))}</sub>")
    return "\n\n".join(out)


def response_markdown(r: Response) -> str:
    """The final render: Thinking block (folded), the answer, the footer."""
    out = []
    reasoning = r.reasoning if r.done else r.partial_reasoning
    if reasoning:
        out.append(thinking_html(reasoning, open_=False))
    calls = r.tool_calls if r.done else r.partial_tool_calls
    if calls:
        out.append(tools_markdown(calls))
    out.append(r.text if r.done else r.partial_text)
    out.append(closing_markdown(r))
    return "\n\n".join(out)


def response_plain(r: Response) -> str:
    """The final render as plain text (a front end without Markdown, and the text a record's spans
    point into): the reasoning, a tool loop's calls, the answer, the footer."""
    reasoning = r.reasoning if r.done else r.partial_reasoning
    text = r.text if r.done else r.partial_text
    head = f"Thinking: {reasoning}\n\n" if reasoning else ""
    calls = r.tool_calls if r.done else r.partial_tool_calls
    if calls:  # a tool loop's calls, a line each, before the answer they led to
        head += "".join(f"[tool] {tool_call_line(c)}\n" for c in calls) + "\n"
    return f"{head}{text}\n\n[{footer_text(r)}]"
