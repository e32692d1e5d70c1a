"""Showing a structured answer: the JSON as it streams with a live count of records, then the table.

Drawn through one ``display.live.Live`` output, like the answer: at a bounded rate (``max_rate`` per
second, whatever the token rate), showing the last ``LIVE_CHARS`` of the JSON and redrawn when twice
that much more has arrived (or a second went by), so most bytes go out once, at the end; the final
render replaces it: a DataFrame when the answer is tabular, else pretty JSON, with the footer. A
terminal gets only the final text.
"""

from __future__ import annotations

import html
import json
import sys
from collections.abc import Callable
from typing import Any

from ..api.record import metadata
from ..api.render import escape_text, footer_text, response_plain, thinking_html
from ..api.response import Response
from ..display.live import MAX_RATE, Live, drain, is_rich_frontend, stop
from .jsonextract import count_records
from .records import find_records, to_dataframe

__all__ = ["JSONView"]

LIVE_CHARS = 240  # the tail of the JSON shown while it streams: a few lines
STEP = 800  # a redraw waits for this many more characters, or a second


class JSONView:
    """``run`` each attempt's Response, then ``show_result`` (or ``show_failure``) once."""

    def __init__(
        self,
        *,
        max_rate: float = MAX_RATE,
        rich: bool | None = None,
        publish: Callable[[dict[str, str]], None] | None = None,
    ) -> None:
        self.rich = is_rich_frontend() if rich is None else rich
        target = (lambda bundle, update: publish(bundle)) if publish is not None else None
        self.live = Live(max_rate=max_rate, publish=target, step=STEP, quiet=1.0)
        self.attempts: list[Response] = []  # every answer this view showed, re-asks included

    @property
    def draws(self) -> int:
        return self.live.draws

    def _draw(
        self, bundle: dict[str, str], size: int | None = None, metadata: dict[str, Any] | None = None
    ) -> None:
        self.live.draw(bundle, size=size, metadata=metadata)

    # -- while it streams ---------------------------------------------------------------------
    def live_bundle(
        self, response: Response, *, attempt: int = 1, failures: list[str] | None = None, status: str = ""
    ) -> dict[str, str]:
        text = response.partial_text
        reasoning = response.partial_reasoning
        phase = "JSON" if text else ("thinking" if reasoning else "waiting")
        records = count_records(text)
        bits = [response.model, phase, f"{records} record{'s' * (records != 1)}"]
        if attempt > 1:
            bits.append(f"attempt {attempt}")
        if status:
            bits.append(status)
        line = " · ".join(bits)
        shown = text if len(text) <= LIVE_CHARS else "…" + text[-LIVE_CHARS:]
        parts = []
        if failures:
            parts.append(f"<div style='opacity:.7'>asked again: {escape_text(failures[-1][:200])}</div>")
        if reasoning:
            tail = reasoning if len(reasoning) <= LIVE_CHARS else "…" + reasoning[-LIVE_CHARS:]
            parts.append(thinking_html(tail, open_=not text))
        if text:
            parts.append(f"<pre style='white-space:pre-wrap'>{html.escape(shown, quote=False)}</pre>")
        parts.append(f"<sub>{escape_text(line)}</sub>")
        return {"text/html": "\n".join(parts), "text/plain": f"[{line}]"}

    def run(self, response: Response, *, attempt: int = 1, failures: list[str] | None = None) -> Response:
        """Consume one attempt's stream, redrawing at most ``max_rate`` times a second."""
        self.attempts.append(response)
        if not self.rich:
            drain(response)
            return response
        self._draw(self.live_bundle(response, attempt=attempt, failures=failures))
        try:
            for event in response:
                if event.type not in ("text", "reasoning"):
                    continue
                size = len(response.partial_text) + len(response.partial_reasoning)
                if self.live.due(size):
                    self._draw(self.live_bundle(response, attempt=attempt, failures=failures), size)
        except KeyboardInterrupt:
            stop(response)
        self._draw(self.live_bundle(response, attempt=attempt, failures=failures, status="checking"))
        return response

    # -- the end ------------------------------------------------------------------------------
    def result_bundle(self, response: Response) -> dict[str, str]:
        """The table or the JSON, and as plain text the answer as the model wrote it (whole, where a
        DataFrame's repr is cut at pandas' display limits): the text the record points into."""
        footer = footer_text(response)
        reasoning = response.partial_reasoning
        head = thinking_html(reasoning, open_=False) + "\n" if reasoning else ""
        frame = self._frame(response)
        if frame is not None:
            body = getattr(frame, "_repr_html_", lambda: None)() or frame.to_html()
        else:
            body = f"<pre>{html.escape(self._pretty(response), quote=False)}</pre>"
        html_ = f"{head}{body}\n<sub>{escape_text(footer)}</sub>"
        return {"text/html": html_, "text/plain": response_plain(response)}

    def result_text(self, response: Response) -> str:
        """The result in a terminal: the DataFrame's repr, or the JSON indented."""
        frame = self._frame(response)
        shown = repr(frame) if frame is not None else self._pretty(response)
        return f"{shown}\n\n[{footer_text(response)}]"

    @staticmethod
    def _frame(response: Response) -> Any:
        data = response.data
        found = find_records(data) if data is not None else None
        return to_dataframe(response) if found is not None and found.tabular else None

    @staticmethod
    def _pretty(response: Response) -> str:
        data = response.data
        return json.dumps(data, indent=2, ensure_ascii=False) if data is not None else response.partial_text

    def show_result(self, response: Response) -> None:
        """The table or JSON, with every attempt's record in its metadata (a replay asks again
        as the original did)."""
        if not self.rich:
            sys.stdout.write(self.result_text(response) + "\n")
            sys.stdout.flush()
            return
        bundle = self.result_bundle(response)
        self._draw(bundle, metadata=metadata([*self.attempts[:-1], response], bundle["text/plain"]))

    def show_failure(self, response: Response, message: str) -> None:
        """Keep the answer on screen with what was wrong; the caller reports the error itself."""
        text = response.partial_text
        footer = footer_text(response)
        self._show(
            {
                "text/html": (
                    f"<pre style='white-space:pre-wrap'>{html.escape(text, quote=False)}</pre>\n"
                    f"<sub>{escape_text(footer)} · not usable JSON</sub>"
                ),
                "text/plain": f"{text}\n\n[{footer} · not usable JSON: {message}]",
            }
        )

    def _show(self, bundle: dict[str, str], meta: dict[str, Any] | None = None) -> None:
        if self.rich:
            self._draw(bundle, metadata=meta)
        else:
            sys.stdout.write(bundle["text/plain"] + "\n")
            sys.stdout.flush()

    def asking_again(self, response: Response, attempt: int, failures: list[str]) -> None:
        if self.rich:
            self._draw(self.live_bundle(response, attempt=attempt, failures=failures, status="asking again"))
