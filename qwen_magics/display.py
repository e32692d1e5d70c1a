"""Showing a streaming Response: a Thinking block, the Markdown answer and a footer.

``StreamView`` wraps a Response and redraws one display at a bounded rate (``max_rate`` per
second, whatever the token rate); the final render is exact and immediate. It knows nothing of HTTP.
In a terminal (no rich front end) the answer is written as plain text as it arrives.
"""

from __future__ import annotations

import html
import sys
import time
from collections.abc import Callable
from typing import Any

from .render import footer_text, thinking_html
from .stream import Response

__all__ = ["StreamView", "error_bundle", "is_rich_frontend", "show_error"]

MAX_RATE = 15.0


def is_rich_frontend() -> bool:
    """True inside a Jupyter kernel (display messages reach a browser), False in terminal IPython."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ != "TerminalInteractiveShell"


def error_bundle(message: str, *, title: str = "Qwen error") -> dict[str, str]:
    """One clear box that says what went wrong and what to do; no traceback."""
    box = (
        "<div style='border-left:4px solid #d9534f;background:#fdf3f3;padding:6px 10px;"
        f"color:#5a1e1e'><b>{html.escape(title)}</b><br>{html.escape(message)}</div>"
    )
    return {"text/html": box, "text/plain": f"{title}: {message}"}


def show_error(message: str, *, title: str = "Qwen error") -> None:
    from IPython.display import display

    display(error_bundle(message, title=title), raw=True)


class StreamView:
    """Live view of one Response. ``view.run(response)`` consumes it and returns it."""

    def __init__(
        self,
        *,
        raw: bool = False,
        max_rate: float = MAX_RATE,
        rich: bool | None = None,
        publish: Callable[[dict[str, str], bool], None] | None = None,
        header: str = "",
    ) -> None:
        self.raw = raw
        self.interval = 1.0 / max_rate if max_rate > 0 else 0.0
        self.rich = is_rich_frontend() if rich is None else rich
        self.header = header
        self.draws = 0
        self.response: Response | None = None
        self._publish = publish
        self._handle: Any = None
        self._last = 0.0
        self._printed = 0
        self._printed_reasoning = 0

    # -- what is drawn ------------------------------------------------------------------------
    def bundle(self, response: Response, *, final: bool) -> dict[str, str]:
        text = response.partial_text
        reasoning = "".join(response._reasoning)
        status = footer_text(response) if final else self._live_status(response)
        if self.raw:
            plain = f"{text}\n\n[{status}]" if status else text
            return {"text/plain": plain}
        parts = []
        if self.header:
            parts.append(self.header)
        if reasoning:
            parts.append(thinking_html(reasoning, open_=not text and not final))
        if text:
            parts.append(text)
        elif not final and not reasoning:
            parts.append("*…waiting for the first token…*")
        if status:
            parts.append(f"<sub>{html.escape(status)}</sub>")
        return {"text/markdown": "\n\n".join(parts), "text/plain": text or reasoning}

    @staticmethod
    def _live_status(response: Response) -> str:
        n = len(response._text) + len(response._reasoning)
        phase = "answering" if response._text else ("thinking" if response._reasoning else "waiting")
        return f"{response.model} · {phase} · {n} chunks"

    # -- drawing ------------------------------------------------------------------------------
    def _draw(self, bundle: dict[str, str], *, update: bool) -> None:
        self.draws += 1
        if self._publish is not None:
            self._publish(bundle, update)
            return
        from IPython.display import display

        if self._handle is None:
            self._handle = display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)

    def start(self, response: Response) -> None:
        self.response = response
        if self.rich:
            self._draw(self.bundle(response, final=False), update=False)

    def refresh(self, *, force: bool = False) -> None:
        response = self.response
        if response is None:
            return
        if not self.rich:
            self._print_new(response)
            return
        now = time.perf_counter()
        if force or now - self._last >= self.interval:
            self._last = now
            self._draw(self.bundle(response, final=False), update=True)

    def finish(self) -> None:
        response = self.response
        if response is None:
            return
        if self.rich:
            self._draw(self.bundle(response, final=True), update=True)
        else:
            self._print_new(response)
            sys.stdout.write(f"\n\n[{footer_text(response)}]\n")
            sys.stdout.flush()

    def _print_new(self, response: Response) -> None:
        out = sys.stdout
        reasoning = "".join(response._reasoning)
        if len(reasoning) > self._printed_reasoning and not response._text:
            if self._printed_reasoning == 0:
                out.write("Thinking: ")
            out.write(reasoning[self._printed_reasoning:])
            self._printed_reasoning = len(reasoning)
        text = response.partial_text
        if len(text) > self._printed:
            if self._printed == 0 and self._printed_reasoning:
                out.write("\n\n")
            out.write(text[self._printed:])
            self._printed = len(text)
        out.flush()

    # -- the loop -----------------------------------------------------------------------------
    def run(self, response: Response) -> Response:
        """Consume the stream, redrawing at a bounded rate. Ctrl-C keeps the partial answer."""
        self.start(response)
        first = True
        try:
            for event in response:
                if event.type in ("text", "reasoning"):
                    self.refresh(force=first)
                    first = False
        except KeyboardInterrupt:
            pass  # Response.__iter__ closed the connection and marked the answer interrupted
        finally:
            self.finish()
        return response
