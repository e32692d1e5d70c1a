"""Showing a structured answer: the JSON as it streams with a live count of records, then the table.

Like ``display.answer.StreamView``, one display is redrawn at a bounded rate (``max_rate`` per second,
whatever the token rate) and the final render replaces it: a DataFrame when the answer is tabular,
else pretty JSON, with the footer. A terminal gets only the final text.
"""

from __future__ import annotations

import html
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from ..api.render import footer_text, thinking_html
from ..api.response import Response
from ..display.answer import is_rich_frontend
from .jsonextract import count_records
from .records import find_records, to_dataframe

__all__ = ["JSONView"]

MAX_RATE = 15.0
LIVE_CHARS = 4000  # the tail of a long answer shown while it streams


class JSONView:
    """``run`` each attempt's Response, then ``show_result`` (or ``show_failure``) once."""

    def __init__(
        self,
        *,
        max_rate: float = MAX_RATE,
        rich: bool | None = None,
        publish: Callable[[dict[str, str]], None] | None = None,
    ) -> None:
        self.interval = 1.0 / max_rate if max_rate > 0 else 0.0
        self.rich = is_rich_frontend() if rich is None else rich
        self.draws = 0
        self._publish = publish
        self._handle: Any = None
        self._last = float("-inf")

    def _draw(self, bundle: dict[str, str]) -> None:
        self.draws += 1
        self._last = time.perf_counter()
        if self._publish is not None:
            self._publish(bundle)
            return
        from IPython.display import display

        if self._handle is None:
            self._handle = display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)

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
            parts.append(f"<div style='opacity:.7'>asked again: {html.escape(failures[-1][:200])}</div>")
        if reasoning:
            parts.append(thinking_html(reasoning, open_=not text))
        if text:
            parts.append(f"<pre style='white-space:pre-wrap'>{html.escape(shown)}</pre>")
        parts.append(f"<sub>{html.escape(line)}</sub>")
        return {"text/html": "\n".join(parts), "text/plain": f"{shown}\n\n[{line}]"}

    def run(self, response: Response, *, attempt: int = 1, failures: list[str] | None = None) -> Response:
        """Consume one attempt's stream, redrawing at most ``max_rate`` times a second."""
        if not self.rich:
            _drain(response)
            return response
        self._draw(self.live_bundle(response, attempt=attempt, failures=failures))
        try:
            for event in response:
                if event.type in ("text", "reasoning") and (
                    time.perf_counter() - self._last >= self.interval
                ):
                    self._draw(self.live_bundle(response, attempt=attempt, failures=failures))
        except KeyboardInterrupt:
            response.interrupt()
            _drain(response)
        self._draw(self.live_bundle(response, attempt=attempt, failures=failures, status="checking"))
        return response

    # -- the end ------------------------------------------------------------------------------
    def result_bundle(self, response: Response) -> dict[str, str]:
        footer = footer_text(response)
        reasoning = response.partial_reasoning
        head = thinking_html(reasoning, open_=False) + "\n" if reasoning else ""
        data = response.data
        found = find_records(data) if data is not None else None
        if found is not None and found.tabular:
            frame = to_dataframe(response)
            table = getattr(frame, "_repr_html_", lambda: None)() or frame.to_html()
            return {
                "text/html": f"{head}{table}\n<sub>{html.escape(footer)}</sub>",
                "text/plain": f"{frame!r}\n\n[{footer}]",
            }
        pretty = json.dumps(data, indent=2, ensure_ascii=False) if data is not None else response.partial_text
        return {
            "text/html": f"{head}<pre>{html.escape(pretty)}</pre>\n<sub>{html.escape(footer)}</sub>",
            "text/plain": f"{pretty}\n\n[{footer}]",
        }

    def show_result(self, response: Response) -> None:
        self._show(self.result_bundle(response))

    def show_failure(self, response: Response, message: str) -> None:
        """Keep the answer on screen with what was wrong; the caller reports the error itself."""
        text = response.partial_text
        footer = footer_text(response)
        self._show(
            {
                "text/html": (
                    f"<pre style='white-space:pre-wrap'>{html.escape(text)}</pre>\n"
                    f"<sub>{html.escape(footer)} · not usable JSON</sub>"
                ),
                "text/plain": f"{text}\n\n[{footer} · not usable JSON: {message}]",
            }
        )

    def _show(self, bundle: dict[str, str]) -> None:
        if self.rich:
            self._draw(bundle)
        else:
            sys.stdout.write(bundle["text/plain"] + "\n")
            sys.stdout.flush()

    def asking_again(self, response: Response, attempt: int, failures: list[str]) -> None:
        if self.rich:
            self._draw(self.live_bundle(response, attempt=attempt, failures=failures, status="asking again"))


def _drain(response: Response) -> None:
    """Read a stream to its end; after Ctrl-C, the closed connection ends it at once."""
    try:
        for _ in response:
            pass
    except KeyboardInterrupt:
        response.interrupt()
    except Exception:  # reading a closed stream may fail; what arrived is kept
        if not response.done:
            response.interrupt()
