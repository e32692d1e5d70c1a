"""The comparison grid on screen: HTML and text renders, and the live view that redraws them.

Cells sit side by side in a wrapping row, each headed by its settings and closed by its own footer.
Only inline styles, no <style> and no script, so a saved notebook shows the same grid. The live view
redraws one display at most ``MAX_RATE`` times a second, whatever the number of cells and tokens,
and draws the final grid exactly; a terminal gets each cell as text when it finishes.
"""

from __future__ import annotations

import html
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..api.render import footer_text, format_cost, thinking_html
from ..display.live import MAX_RATE, Live, is_rich_frontend
from .diversity import word_diff_html
from .gridspec import describe_setting

if TYPE_CHECKING:
    from ..api.response import Response
    from .compare import Cell, Comparison

__all__ = ["MAX_RATE", "GridView", "cell_text", "grid_html", "grid_text", "live_bundle"]

LIVE_CELL_CHARS = 200  # the tail of each streaming answer a live frame shows
CELL_WIDTH = 300  # px; cells wrap into as many columns as fit
SMALL = "font-size:.82em;opacity:.75"
CELL_STYLE = (
    f"flex:1 1 {CELL_WIDTH}px;min-width:{CELL_WIDTH}px;max-width:640px;box-sizing:border-box;"
    "border:1px solid rgba(128,128,128,.35);border-radius:6px;padding:8px 10px"
)
TEXT_STYLE = "white-space:pre-wrap;overflow-wrap:anywhere;margin:6px 0"
ERROR_STYLE = "border-left:4px solid #d9534f;background:rgba(217,83,79,.08);padding:4px 8px;margin:6px 0"
RULE = "border-top:1px dashed rgba(128,128,128,.35);margin-top:6px;padding-top:4px"


# -- words ----------------------------------------------------------------------------------------
def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def summary_text(c: Comparison) -> str:
    """settings × samples · progress · failures · wall time · total cost."""
    total = len(c.cells) * c.samples
    responses = c.responses
    finished = sum(1 for r in responses if r.done)
    failed = sum(1 for r in responses if r.done and r.error is not None and not r.interrupted)
    parts = [f"{_plural(len(c.cells), 'setting')} × {_plural(c.samples, 'sample')}"]
    if c.interrupted:
        kept = sum(1 for r in responses if r.done and not r.interrupted)
        parts.append(f"interrupted: {kept}/{total} finished")
    else:
        parts.append("done" if finished == total else f"{finished}/{total} done")
    if failed:
        parts.append(f"{failed} failed")
    parts.append(f"{c.wall:.2f}s")
    costs = [r.cost for r in responses if r.cost is not None]
    if costs and any(costs):
        parts.append(f"{format_cost(sum(costs))} total")
    if c.diff:
        parts.append("marked: words not in the first column")
    return " · ".join(parts)


def _status(r: Response) -> str:
    """A live cell's footer while it streams."""
    phase = "waiting for the first token" if r.phase == "waiting" else r.phase
    return f"{r.model} · {phase} · {r.chunks} chunks"


def cell_footer(cell: Cell) -> str:
    """One sample: the usual footer. Several: diversity, mean latency and speed, total cost."""
    responses = cell.responses
    if len(cell.slots) == 1:
        r = cell.slots[0]
        if r is None:
            return f"{cell.model} · queued"
        if not r.done:
            return _status(r)
        if r.error is not None and not r.partial_text and not r.usage.completion_tokens:
            return f"{r.model or cell.model} · failed after {r.elapsed or 0.0:.2f}s"
        return footer_text(r)
    finished = [r for r in responses if r.done and r.error is None]
    parts = [cell.model, f"{len(finished)}/{len(cell.slots)} answered"]
    div = cell.diversity()
    if div is not None:
        parts.append(div.describe())
    if finished:
        parts.append(f"mean {sum(r.elapsed or 0.0 for r in finished) / len(finished):.2f}s")
        speeds = [r.tokens_per_second for r in finished if r.tokens_per_second]
        if speeds:
            parts.append(f"{sum(speeds) / len(speeds):,.0f} tok/s")
    costs = [r.cost for r in responses if r.cost is not None]
    if costs and any(costs):
        parts.append(format_cost(sum(costs)))
    if any(r.offline for r in responses):
        parts.append("offline")
    if cell.failed:
        parts.append(f"{len(cell.failed)} failed")
    return " · ".join(parts)


# -- HTML -----------------------------------------------------------------------------------------
def _answer_html(text: str, reference: str | None) -> str:
    body = word_diff_html(text, reference) if reference else html.escape(text)
    return f"<div style='{TEXT_STYLE}'>{body}</div>"


def _error_html(r: Response) -> str:
    what = "stopped" if r.interrupted else "failed"
    return f"<div style='{ERROR_STYLE}'><b>{what}</b>: {html.escape(str(r.error))}</div>"


def _tail(text: str) -> str:
    """What a live frame shows of a streaming answer: its last ``LIVE_CELL_CHARS``."""
    return text if len(text) <= LIVE_CELL_CHARS else "…" + text[-LIVE_CELL_CHARS:]


def _one_sample_html(r: Response | None, reference: str | None) -> str:
    if r is None:
        return f"<div style='{TEXT_STYLE};{SMALL}'><i>queued…</i></div>"
    text = r.partial_text if r.done else _tail(r.partial_text)
    reasoning = r.partial_reasoning if r.done else _tail(r.partial_reasoning)
    out = []
    if reasoning:
        out.append(thinking_html(reasoning, open_=not text and not r.done))
    if text:
        out.append(_answer_html(text, reference))
    elif not r.done and not reasoning:
        out.append(f"<div style='{TEXT_STYLE};{SMALL}'><i>waiting for the first token…</i></div>")
    if r.done and r.error is not None:
        out.append(_error_html(r))
    return "".join(out)


def _samples_html(cell: Cell, reference: str | None) -> str:
    """The distinct answers with their counts, then what is still streaming or went wrong."""
    out = []
    for text, count in cell.distinct():
        out.append(
            f"<div style='{RULE}'><span style='{SMALL}'>×{count}</span>{_answer_html(text, reference)}</div>"
        )
    failures: dict[str, int] = {}
    for i, r in enumerate(cell.slots):
        if r is None or (r.done and r.error is None):
            continue
        if r.done and not r.partial_text:  # the same failure of several samples is shown once
            key = _error_html(r)
            failures[key] = failures.get(key, 0) + 1
            continue
        state = "streaming" if not r.done else ("stopped" if r.interrupted else "failed")
        error = _error_html(r) if r.done else ""
        out.append(
            f"<div style='{RULE}'><span style='{SMALL}'>sample {i + 1} · {state}</span>"
            f"{_answer_html(r.partial_text if r.done else _tail(r.partial_text), reference)}{error}</div>"
        )
    for box, count in failures.items():
        out.append(f"<div style='{RULE}'><span style='{SMALL}'>×{count}</span>{box}</div>")
    queued = sum(r is None for r in cell.slots)
    if queued:
        out.append(f"<div style='{RULE};{SMALL}'><i>{_plural(queued, 'sample')} queued…</i></div>")
    return "".join(out)


def cell_html(cell: Cell, comparison: Comparison, reference: str | None) -> str:
    head = f"<div style='font-weight:600'>{html.escape(cell.label)}</div>"
    detail = cell.describe(comparison.shared)
    if detail and detail != cell.label:
        head += f"<div style='{SMALL}'>{html.escape(detail)}</div>"
    if comparison.samples == 1:
        body = _one_sample_html(cell.slots[0], reference)
    else:
        body = _samples_html(cell, reference)
    foot = f"<div style='{SMALL};margin-top:4px'>{html.escape(cell_footer(cell))}</div>"
    return f"<div class='qwen-cell' style='{CELL_STYLE}'>{head}{body}{foot}</div>"


def grid_html(c: Comparison) -> str:
    """The whole grid: a summary line, the settings every cell shares, then the cells."""
    reference = c.reference() if c.diff and len(c.cells) > 1 else None
    cells = "".join(cell_html(cell, c, reference if i else None) for i, cell in enumerate(c.cells))
    lines = [html.escape(summary_text(c))]
    if c.shared:
        lines.append(
            "every cell: " + html.escape(", ".join(describe_setting(k, v) for k, v in c.shared.items()))
        )
    head = "".join(f"<div style='{SMALL}'>{line}</div>" for line in lines)
    return (
        f"<div class='qwen-compare'>{head}"
        f"<div style='display:flex;flex-wrap:wrap;gap:8px;align-items:flex-start;margin-top:6px'>"
        f"{cells}</div></div>"
    )


# -- text -----------------------------------------------------------------------------------------
def cell_text(cell: Cell) -> str:
    lines = [f"── {cell.label} ──"]
    if len(cell.slots) == 1:
        r = cell.slots[0]
        if r is not None and r.partial_text:
            lines.append(r.partial_text)
        if r is not None and r.done and r.error is not None:
            lines.append(f"({'stopped' if r.interrupted else 'failed'}: {r.error})")
    else:
        for text, count in cell.distinct():
            lines.append(f"×{count} {text}")
        for r in cell.failed:
            lines.append(f"({'stopped' if r.interrupted else 'failed'}: {r.error})")
    lines.append(f"[{cell_footer(cell)}]")
    return "\n".join(lines)


def grid_text(c: Comparison) -> str:
    return "\n\n".join([summary_text(c), *(cell_text(cell) for cell in c.cells)])


# -- the live view --------------------------------------------------------------------------------
def diff_toggle(comparison: Comparison) -> Any:
    """An ipywidgets ToggleButton for the word diff, or None without ipywidgets."""
    try:
        import ipywidgets
    except ImportError:
        return None
    toggle = ipywidgets.ToggleButton(
        value=comparison.diff,
        description="Highlight differences",
        tooltip="mark the words that differ from the first column",
        icon="highlighter",
    )

    def changed(change: dict[str, Any]) -> None:
        comparison.show_diff(bool(change["new"]))

    toggle.observe(changed, names="value")
    return toggle


def live_bundle(c: Comparison) -> dict[str, str]:
    """A frame while the grid streams: each cell's tail, and the summary as the plain fallback."""
    return {"text/html": grid_html(c), "text/plain": summary_text(c)}


class GridView:
    """Draws a Comparison while it runs; ``live`` while the cell that ran ``compare`` is current.

    Live frames go through one ``Live`` output, which redraws the whole grid only when its text grew
    by as much again or a second went by (each frame re-sends every cell's tail); the final draw
    is exact and immediate.
    """

    def __init__(
        self,
        comparison: Comparison,
        *,
        max_rate: float = MAX_RATE,
        rich: bool | None = None,
        publish: Callable[[dict[str, str], bool], None] | None = None,
    ) -> None:
        self.comparison = comparison
        self.rich = (is_rich_frontend() if rich is None else rich) or publish is not None
        # publish(bundle, update) draws elsewhere (the parameter panel)
        self.output = Live(max_rate=max_rate, publish=publish, growth=1.0, quiet=1.0)
        self.live = False
        self._drawn = -1
        self._printed: set[int] = set()
        comparison.view = self

    @property
    def draws(self) -> int:
        return self.output.draws

    def _size(self) -> int:
        return sum(len(r.partial_text) + len(r.partial_reasoning) for r in self.comparison.responses)

    def start(self) -> None:
        c = self.comparison
        if not self.rich:
            sys.stdout.write(summary_text(c) + "\n")
            sys.stdout.flush()
            return
        if self.output.publish is None:
            from IPython.display import display

            if len(c.cells) > 1:
                c.diff_toggle = diff_toggle(c)
                if c.diff_toggle is not None:
                    display(c.diff_toggle)
        self.output.draw(live_bundle(c), size=self._size())
        if self.output.publish is None:
            self._until_next_cell()

    def _until_next_cell(self) -> None:
        """The grid on screen stands for the returned Comparison until the next cell runs."""
        from IPython import get_ipython

        shell = get_ipython()
        if shell is None:
            return
        self.live = True

        def next_cell(*_: Any) -> None:
            self.live = False
            shell.events.unregister("pre_run_cell", next_cell)

        shell.events.register("pre_run_cell", next_cell)

    def refresh(self, version: int) -> None:
        """Redraw if something changed, within the rate and only when the grid grew enough."""
        if version == self._drawn:
            return
        if not self.rich:
            self._print_finished()
            self._drawn = version
            return
        size = self._size()
        if not self.output.due(size):
            return
        self._drawn = version
        self.output.draw(live_bundle(self.comparison), size=size)

    def redraw(self) -> None:
        """The exact grid, now (the end of a run, or the diff toggled)."""
        if self.output.shown:
            self.output.draw(self.comparison.bundle())

    def finish(self) -> None:
        if self.rich:
            self.redraw()
            return
        self._print_finished()
        sys.stdout.write(summary_text(self.comparison) + "\n")
        sys.stdout.flush()

    def _print_finished(self) -> None:
        for i, cell in enumerate(self.comparison.cells):
            if i not in self._printed and cell.done:
                self._printed.add(i)
                sys.stdout.write("\n" + cell_text(cell) + "\n")
        sys.stdout.flush()
