"""Showing a streaming Response: a Thinking block, the Markdown answer and a footer.

``StreamView`` wraps a Response and redraws one display at a bounded rate (at most ``max_rate``
display messages in any second, whatever the token rate); the final render is exact and immediate.
A "waiting" placeholder is drawn before the request goes out, so the first visible change after it is
the first token. In a terminal (no rich front end) the answer is written as plain text as it arrives.
The view knows nothing of HTTP: ``show_answer`` is the one place that asks and then shows.
"""

from __future__ import annotations

import html
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..api.render import footer_text, response_markdown, thinking_html
from ..api.response import Response
from ..errors import APIConnectionError, APIError, ConfigError, QwenError

__all__ = ["StreamView", "error_bundle", "error_title", "is_rich_frontend", "show_answer", "show_error"]

MAX_RATE = 15.0
WAITING = "waiting for the first token…"


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


def error_title(exc: BaseException) -> str:
    """A short heading for an error box."""
    if isinstance(exc, APIError):
        return "Qwen API error"
    if isinstance(exc, APIConnectionError):
        return "Connection error"
    if isinstance(exc, ConfigError):
        return "Configuration needed"
    return "Qwen error"


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
        # One draw a second is kept for the final render, so the steady rate is max_rate - 1.
        self.max_rate = max_rate
        self.interval = 1.0 / max(max_rate - 1, 1.0) if max_rate > 0 else 0.0
        self.rich = is_rich_frontend() if rich is None else rich
        self.header = header
        self.draws = 0
        self.response: Response | None = None
        self._publish = publish
        self._handle: Any = None
        self._shown = False
        self._recent: deque[float] = deque()
        self._printed = 0
        self._printed_reasoning = 0

    # -- what is drawn ------------------------------------------------------------------------
    def bundle(self, response: Response, *, final: bool) -> dict[str, str]:
        text = response.partial_text
        if final:
            status = footer_text(response)
            if self.raw:
                return {"text/plain": f"{text}\n\n[{status}]"}
            parts = [self.header] if self.header else []
            parts.append(response_markdown(response))
            return {"text/markdown": "\n\n".join(parts), "text/plain": f"{text}\n\n[{status}]"}
        reasoning = response.partial_reasoning
        status = self._live_status(response)
        if self.raw:
            return {"text/plain": f"{text}\n\n[{status}]"}
        parts = [self.header] if self.header else []
        if reasoning:
            parts.append(thinking_html(reasoning, open_=not text))
        if text:
            parts.append(text)
        elif not reasoning:
            parts.append(f"*{WAITING}*")
        parts.append(f"<sub>{html.escape(status)}</sub>")
        return {"text/markdown": "\n\n".join(parts), "text/plain": text or reasoning}

    def placeholder(self, model: str) -> dict[str, str]:
        status = f"{model} · {WAITING}"
        if self.raw:
            return {"text/plain": f"[{status}]"}
        parts = [self.header] if self.header else []
        parts.append(f"<sub>{html.escape(status)}</sub>")
        return {"text/markdown": "\n\n".join(parts), "text/plain": f"[{status}]"}

    @staticmethod
    def _live_status(response: Response) -> str:
        return f"{response.model} · {response.phase} · {response.chunks} chunks"

    # -- drawing ------------------------------------------------------------------------------
    def _draw(self, bundle: dict[str, str]) -> None:
        self.draws += 1
        self._recent.append(time.perf_counter())
        update = self._shown
        self._shown = True
        if self._publish is not None:
            self._publish(bundle, update)
            return
        from IPython.display import display

        if self._handle is None:
            self._handle = display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)

    def _may_draw(self, now: float) -> bool:
        """A redraw is due: ``interval`` since the last one, and room left in the last second."""
        recent = self._recent
        if recent and now - recent[-1] < self.interval:
            return False
        while recent and now - recent[0] >= 1.0:
            recent.popleft()
        return len(recent) < self.max_rate - 1

    def waiting(self, model: str) -> None:
        """Draw the placeholder before the request is sent (a rich front end only)."""
        if self.rich:
            self._draw(self.placeholder(model))

    def start(self, response: Response) -> None:
        self.response = response
        if self.rich and not self._shown:
            self._draw(self.bundle(response, final=False))

    def refresh(self, *, force: bool = False) -> None:
        response = self.response
        if response is None:
            return
        if not self.rich:
            self._print_new(response)
            return
        if force or self._may_draw(time.perf_counter()):
            self._draw(self.bundle(response, final=False))

    def finish(self) -> None:
        response = self.response
        if response is None:
            return
        if self.rich:
            self._draw(self.bundle(response, final=True))
        else:
            self._print_new(response)
            sys.stdout.write(f"\n\n[{footer_text(response)}]\n")
            sys.stdout.flush()

    def fail(self, message: str, *, title: str = "Qwen error") -> None:
        """Replace the placeholder with one error box (or print the box in a terminal)."""
        if self.rich and self._shown:
            self._draw(error_bundle(message, title=title))
        else:
            show_error(message, title=title)

    def _print_new(self, response: Response) -> None:
        out = sys.stdout
        reasoning = response.partial_reasoning
        if len(reasoning) > self._printed_reasoning and not response.partial_text:
            if self._printed_reasoning == 0:
                out.write("Thinking: ")
            out.write(reasoning[self._printed_reasoning :])
            self._printed_reasoning = len(reasoning)
        text = response.partial_text
        if len(text) > self._printed:
            if self._printed == 0 and self._printed_reasoning:
                out.write("\n\n")
            out.write(text[self._printed :])
            self._printed = len(text)
        out.flush()

    # -- the loop -----------------------------------------------------------------------------
    def run(self, response: Response) -> Response:
        """Consume the stream, redrawing at a bounded rate. Ctrl-C keeps the partial answer."""
        self.response = response
        first = True
        try:  # the first draw too: a Ctrl-C while it is sent must still close the stream
            self.start(response)
            for event in response:
                if event.type in ("text", "reasoning"):
                    self.refresh(force=first)
                    first = False
        except KeyboardInterrupt:
            _stop(response)
        finally:
            self.finish()
        return response


def _stop(response: Response) -> None:
    """After Ctrl-C: close the connection and settle the Response with what arrived."""
    response.interrupt()
    if response.done:
        return
    try:
        for _ in response:  # the closed connection ends the stream at once
            pass
    except Exception:  # reading a closed stream fails; what arrived is kept
        pass


def show_answer(
    prompt: str | None,
    *,
    model: str,
    raw: bool = False,
    max_rate: float = MAX_RATE,
    rich: bool | None = None,
    notes: list[str] | None = None,
    **params: Any,
) -> Response | None:
    """Ask and show the answer live. Errors become one message box; None when no answer came.

    The placeholder is drawn before the request is sent: ``ask`` returns at the first token, so the
    wait is visible. Ctrl-C before the first token ends the wait and keeps nothing.
    """
    view = StreamView(raw=raw, max_rate=max_rate, rich=rich)
    try:
        view.waiting(model)
        from ..api.client import ask  # httpx loads on the first request, not with the extension

        response = ask(prompt, model=model, **params)
    except KeyboardInterrupt:
        view.fail("stopped before the first token arrived; nothing was kept.", title="Interrupted")
        return None
    except QwenError as exc:
        view.fail(str(exc), title=error_title(exc))
        return None
    response.notes.extend(notes or ())
    return view.run(response)
