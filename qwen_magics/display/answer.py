"""Showing a streaming Response: a Thinking block, the Markdown answer and a footer.

``StreamView`` wraps a Response and draws it through one ``Live`` output, so it never sends more
than ``max_rate`` display messages in any second, whatever the token rate, and the final render is
exact and immediate. Each byte goes to the browser about once: finished top-level Markdown blocks
are frozen into outputs of their own (``blocks.settled`` says where a cut keeps the render) and only
the open tail is redrawn; the Thinking block is drawn folded, in full, once the answer starts. The
frozen outputs hold Markdown alone: the final output's plain text is the whole answer (reasoning,
text, footer), and the record that lets a saved notebook replay the answer points into it. A
"waiting" placeholder is drawn before the request goes out, so the first visible change after it is
the first token. In a terminal (no rich front end) the answer is written as plain text as it arrives.
Drawn into a widget (``publish``), there is one output, redrawn whole when it has grown enough.
A tool loop's calls are drawn as they finish: each in an output of its own (below the reasoning
that led to it, folded), name and arguments, the result shortened and its time; a terminal prints
one line per call.
The view knows nothing of HTTP: ``show_answer`` is the one place that asks and then shows.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from ..api.params import Prompt
from ..api.record import metadata
from ..api.render import (
    closing_markdown,
    escape_text,
    footer_text,
    response_markdown,
    response_plain,
    thinking_html,
    tool_call_line,
    tool_call_markdown,
    tools_markdown,
)
from ..api.response import Response
from ..errors import APIConnectionError, APIError, ConfigError, QwenError
from .blocks import settled
from .live import MAX_RATE, Live, is_rich_frontend, stop

__all__ = ["StreamView", "error_bundle", "error_title", "is_rich_frontend", "show_answer", "show_error"]

WAITING = "waiting for the first token…"
LIVE_REASONING = 1500  # the tail of the reasoning shown while the model thinks
GROWTH, QUIET = 1.0, 0.5  # a tail redraw waits for twice the text, or half a second


def error_bundle(message: str, *, title: str = "Qwen error") -> dict[str, str]:
    """One clear box that says what went wrong and what to do; no traceback."""
    box = (
        "<div style='border-left:4px solid #d9534f;background:#fdf3f3;padding:6px 10px;"
        f"color:#5a1e1e'><b>{escape_text(title)}</b><br>{escape_text(message)}</div>"
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


def _md(markdown: str, plain: str) -> dict[str, str]:
    return {"text/markdown": markdown, "text/plain": plain}


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
        self.rich = is_rich_frontend() if rich is None else rich
        self.header = header
        self.response: Response | None = None
        self.live = Live(max_rate=max_rate, publish=publish, growth=GROWTH, quiet=QUIET)
        self._freezing = self.live.can_freeze and not raw
        self._frozen = 0  # characters of the answer already in outputs of their own
        self._opened = False  # the header and the folded Thinking block have their own output
        self._printed = 0
        self._printed_reasoning = 0
        self._thought = 0  # characters of the reasoning already frozen above a tool call
        self._headed = False  # the header is in a frozen output
        self._calls_shown = 0  # tool calls already drawn (frozen, or printed)
        self._rethink = False  # a terminal: the next step's reasoning gets its own "Thinking:"

    @property
    def draws(self) -> int:
        return self.live.draws

    # -- what is drawn ------------------------------------------------------------------------
    def bundle(self, response: Response, *, final: bool) -> dict[str, str]:
        """The whole answer in one output (a widget target, or --raw)."""
        text = response.partial_text
        calls = "".join(f"[tool] {tool_call_line(c)}\n" for c in response.partial_tool_calls)
        if final:
            status = footer_text(response)
            if self.raw:
                return {"text/plain": f"{calls}{text}\n\n[{status}]"}
            parts = [self.header] if self.header else []
            parts.append(response_markdown(response))
            return _md("\n\n".join(parts), response_plain(response))
        reasoning = response.partial_reasoning
        status = self._live_status(response)
        if self.raw:
            return {"text/plain": f"{calls}{text}\n\n[{status}]"}
        parts = [self.header] if self.header else []
        if reasoning:
            parts.append(thinking_html(reasoning, open_=not text))
        if response.partial_tool_calls:
            parts.append(tools_markdown(response.partial_tool_calls))
        if text:
            parts.append(text)
        elif not reasoning:
            parts.append(f"*{WAITING}*")
        parts.append(f"<sub>{escape_text(status)}</sub>")
        return _md("\n\n".join(parts), text or reasoning)

    def _tail(self, response: Response) -> tuple[dict[str, str], int]:
        """The open output while streaming (frozen outputs above it): its bundle and its size."""
        text = response.partial_text[self._frozen :]
        status = f"<sub>{escape_text(self._live_status(response))}</sub>"
        if self._opened or response.partial_text:
            # Markdown alone: this frame is replaced, and the final one carries the plain text
            return {"text/markdown": f"{text}\n\n{status}"}, len(text)
        parts = [self.header] if self.header and not self._headed else []
        reasoning = response.partial_reasoning[self._thought :]
        if reasoning:
            shown = reasoning if len(reasoning) <= LIVE_REASONING else "…" + reasoning[-LIVE_REASONING:]
            parts.append(thinking_html(shown, open_=True))
        else:
            parts.append(f"*{WAITING}*")
        parts.append(status)
        return _md("\n\n".join(parts), reasoning[-LIVE_REASONING:]), len(reasoning)

    def _opening(self, response: Response) -> dict[str, str] | None:
        """The header and the whole reasoning, folded: drawn once, when the answer starts."""
        parts = [self.header] if self.header and not self._headed else []
        reasoning = response.partial_reasoning[self._thought :]
        if reasoning:
            parts.append(thinking_html(reasoning, open_=False))
        return {"text/markdown": "\n\n".join(parts)} if parts else None  # the final output has the plain

    def placeholder(self, model: str) -> dict[str, str]:
        status = f"{model} · {WAITING}"
        if self.raw:
            return {"text/plain": f"[{status}]"}
        parts = [self.header] if self.header else []
        parts.append(f"<sub>{escape_text(status)}</sub>")
        return _md("\n\n".join(parts), f"[{status}]")

    @staticmethod
    def _live_status(response: Response) -> str:
        calls = response.partial_tool_calls
        running = [c for c in calls if c.result is None and c.error is None]
        if running and not response.partial_text:
            doing = "calling " + ", ".join(dict.fromkeys(c.name for c in running)) + "…"
            return f"{response.model} · step {response.steps} · {doing}"
        return f"{response.model} · {response.phase} · {response.chunks} chunks"

    def tool_done(self, response: Response) -> None:
        """Calls finished: each is drawn once, in an output of its own, under the reasoning (folded)
        that led to it; a terminal prints a line each."""
        calls = response.partial_tool_calls
        done = [c for c in calls[self._calls_shown :] if c.result is not None or c.error is not None]
        if not done:
            return
        if not self.rich:
            self._print_new(response)
            for call in done:
                sys.stdout.write(f"\n[tool] {tool_call_line(call)}")
            sys.stdout.write("\n")
            sys.stdout.flush()
            self._printed_reasoning = len(response.partial_reasoning)
            self._calls_shown += len(done)
            self._rethink = True
            return
        if not self._freezing:
            self._calls_shown += len(done)
            self.refresh(force=True)
            return
        parts = [self.header] if self.header and not self._headed else []
        reasoning = response.partial_reasoning[self._thought :]
        if reasoning:
            parts.append(thinking_html(reasoning, open_=False))
        parts.extend(tool_call_markdown(c) for c in done)
        self.live.freeze({"text/markdown": "\n\n".join(parts)})  # the final output has the plain
        self._headed = True
        self._thought = len(response.partial_reasoning)
        self._calls_shown += len(done)

    # -- drawing ------------------------------------------------------------------------------
    def waiting(self, model: str) -> None:
        """Draw the placeholder before the request is sent (a rich front end only)."""
        if self.rich:
            self.live.draw(self.placeholder(model))

    def start(self, response: Response) -> None:
        self.response = response
        if self.rich and not self.live.shown:
            self.refresh(force=True)

    def refresh(self, *, force: bool = False) -> None:
        response = self.response
        if response is None:
            return
        if not self.rich:
            self._print_new(response)
            return
        live = self.live
        if not self._freezing:
            size = len(response.partial_text) + len(response.partial_reasoning)
            if force or live.due(size):
                live.draw(self.bundle(response, final=False), size=size)
            return
        if not force and not live.due():
            return
        text = response.partial_text
        if text and not self._opened:  # the answer started: the Thinking block folds, in full
            self._opened = True
            opening = self._opening(response)
            if opening is not None:
                live.freeze(opening)
                return
        cut = settled(text, self._frozen)
        if cut > self._frozen:
            block = text[self._frozen : cut].rstrip("\n")
            self._frozen = cut
            live.freeze({"text/markdown": block})  # its plain text is in the final output, whole
            return
        bundle, size = self._tail(response)
        if force or live.due(size):
            live.draw(bundle, size=size)

    def finish(self) -> None:
        response = self.response
        if response is None:
            return
        if not self.rich:
            self._print_new(response)
            sys.stdout.write(f"\n\n[{footer_text(response)}]\n")
            sys.stdout.flush()
            return
        if not self._freezing:
            bundle = self.bundle(response, final=True)
            # the saved notebook keeps the answer (by spans of the plain text): it can replay itself
            self.live.draw(bundle, metadata=metadata([response], bundle["text/plain"]))
            return
        if not self._opened:
            self._opened = True
            opening = self._opening(response)
            if opening is not None:
                self.live.freeze(opening)
        rest = response.partial_text[self._frozen :]
        closing = closing_markdown(response)
        markdown = f"{rest}\n\n{closing}" if rest else closing
        plain = response_plain(response)  # the whole answer: the frozen outputs hold Markdown alone
        self.live.draw(_md(markdown, plain), metadata=metadata([response], plain))

    def fail(self, message: str, *, title: str = "Qwen error") -> None:
        """Replace the placeholder with one error box (or print the box in a terminal)."""
        if self.rich and self.live.shown:
            self.live.draw(error_bundle(message, title=title))
        else:
            show_error(message, title=title)

    def _print_new(self, response: Response) -> None:
        out = sys.stdout
        reasoning = response.partial_reasoning
        if len(reasoning) > self._printed_reasoning and not response.partial_text:
            if self._printed_reasoning == 0 or self._rethink:
                out.write("Thinking: ")
                self._rethink = False
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
                elif event.type == "tool_start":
                    self.refresh(force=True)
                elif event.type == "tool_result":
                    self.tool_done(response)
        except KeyboardInterrupt:
            stop(response)
        finally:
            self.finish()
        return response


def show_answer(
    prompt: Prompt | None,
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
