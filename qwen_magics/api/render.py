"""Words and Markdown for a Response: the footer line and the final render. No I/O here."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from ..models import get_model

if TYPE_CHECKING:
    from .response import Response

__all__ = ["closing_markdown", "footer_text", "format_cost", "response_markdown", "thinking_html"]


def format_cost(cost: float | None) -> str:
    if cost is None:
        return ""
    if cost < 0.01:
        return f"≈${cost:.5f} (est.)"
    return f"≈${cost:.4f} (est.)"


def footer_text(r: Response) -> str:
    """model · tokens in / out (reasoning, cached) · why it stopped early · ttft · total · tokens/s · cost."""
    u = r.usage
    detail = []
    if u.reasoning_tokens:
        detail.append(f"{u.reasoning_tokens:,} reasoning")
    if u.cached_tokens:
        detail.append(f"{u.cached_tokens:,} cached")
    tokens = f"{u.prompt_tokens:,} in / {u.completion_tokens:,} out"
    if detail:
        tokens += f" ({', '.join(detail)})"
    reported = bool(u.total_tokens or u.prompt_tokens or u.completion_tokens)
    if not reported:  # a stream stopped before its usage chunk: say so rather than "0 in / 0 out"
        tokens = "tokens not reported"
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
    elif reported:
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
    body = html.escape(reasoning)
    return (
        f"<details{attr} class='qwen-thinking'><summary>Thinking</summary>"
        f"<div style='white-space:pre-wrap;opacity:.75;font-size:.9em'>{body}</div></details>"
    )


def closing_markdown(r: Response) -> str:
    """What ends a render: the Interrupted or Incomplete mark when there is one, then the footer."""
    out = []
    if r.done and r.interrupted:
        out.append("**⏹ Interrupted:** the answer above is partial.")
    elif r.done and r.incomplete:
        out.append(f"**⚠ Incomplete:** {html.escape(str(r.error or 'the stream ended early'))}")
    out.append(f"<sub>{html.escape(footer_text(r))}</sub>")
    return "\n\n".join(out)


def response_markdown(r: Response) -> str:
    """The final render: Thinking block (folded), the answer, the footer."""
    out = []
    reasoning = r.reasoning if r.done else r.partial_reasoning
    if reasoning:
        out.append(thinking_html(reasoning, open_=False))
    out.append(r.text if r.done else r.partial_text)
    out.append(closing_markdown(r))
    return "\n\n".join(out)
