"""The comparison grid on screen: HTML and text renders, and the live view that redraws them.

Cells sit in rows on shared columns (the grid's last parameter across), each headed by its settings
and closed by its own footer; the summary line closes the grid. What stays (the final grid, and so a
saved notebook) has only inline styles, no <style> and no script, so a notebook opened cold shows
the same grid. The live view sends each answer about once: finished rows are frozen into outputs of
their own, and the open rows are redrawn as each cell's tail, at most once a second and never more
than ``MAX_RATE`` times; the final draw is exact. A terminal gets each cell as text when it finishes.
"""

from __future__ import annotations

import functools
import html
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..api.record import metadata
from ..api.render import escape_text, footer_text, format_cost, thinking_html
from ..api.replay import when
from ..display.live import MAX_RATE, Live, is_rich_frontend
from ..display.markdown import markdown_html
from ..display.widget import show_widget
from .diversity import word_diff_html
from .evaluation import best_row, summary_rows
from .gridspec import describe_setting

if TYPE_CHECKING:
    from ..api.response import Response
    from .compare import Cell, Comparison

__all__ = ["MAX_RATE", "GridView", "cell_text", "grid_html", "grid_rows", "grid_text"]

LIVE_CELL_CHARS = 90  # the tail of each answer a live frame shows: two or three lines of a card
# Live frames send at most this share of the text that arrived (their bytes against its characters)
# plus LIVE_FREE bytes (a small grid's few frames), but one goes out at least every LIVE_WAIT
# seconds, so a slow stream still moves.
LIVE_SHARE, LIVE_FREE, LIVE_WAIT = 0.25, 1000, 3.0
MAX_COLUMNS = 4
STYLES = {
    "cell": "min-width:0;border:1px solid rgba(128,128,128,.35);border-radius:6px;padding:6px 8px",
    "small": "font-size:.82em;opacity:.75",
    "text": "white-space:pre-wrap;overflow-wrap:anywhere;margin:4px 0",
    "answer": "overflow-wrap:anywhere;margin:4px 0",
    "error": "border-left:4px solid #d9534f;background:rgba(217,83,79,.08);padding:4px 8px;margin:4px 0",
    "line": "border-top:1px dashed rgba(128,128,128,.35);margin-top:6px;padding-top:4px",
    "pass": "color:#2e7d32",
    "fail": "color:#c62828",
}
BEST = "background:rgba(92,184,92,.18);font-weight:600"
Look = dict[str, str]  # the attributes of each kind of element, and the <style> a live frame carries


def row_style(columns: int) -> str:
    """Every row of a grid on the same columns: ``columns`` of them, fewer (at least 180px each) in a
    narrow window, so a row that wraps keeps its cells as wide as the rows above."""
    share = f"{100 / columns:.4g}%"
    return (
        f"display:grid;grid-template-columns:repeat(auto-fill,minmax(max(180px,calc({share} - 8px)),1fr));"
        "gap:8px;align-items:start;margin:6px 0"
    )


@functools.cache
def style(columns: int, *, live: bool) -> Look:
    """The grid that stays (final, saved): inline styles, which a notebook opened cold still shows.
    A live frame: class names and one <style>, a fraction of the bytes; outputs drawn while the cell
    runs are trusted, so the front end keeps the <style>, and the final draw replaces every frame."""
    styles = {"row": row_style(columns), **STYLES}
    if not live:
        saved = {k: f"style='{v}'" for k, v in styles.items()}
        return saved | {"cell": f"class='qwen-cell' {saved['cell']}", "css": ""}
    classes = {k: f"class='qwen-g{k[0]}'" for k in styles}  # short: a frame repeats them per cell
    return classes | {"css": "\n".join(f".qwen-g{k[0]}{{{v}}}" for k, v in styles.items())}


def _stylesheet(look: Look, body: str) -> str:
    """A live frame's <style>: the rules of the classes its body uses."""
    rules = [rule for rule in look["css"].split("\n") if f"'{rule[1:8]}'" in body]
    return f"<style>{''.join(rules)}</style>"


# -- words ----------------------------------------------------------------------------------------
def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def shape(c: Comparison) -> str:
    """ "8 settings", or with variants and cases "2 variants × 4 settings × 3 cases"."""
    variants = len({cell.variant for cell in c.cells if cell.variant})
    cases = len({cell.case_index for cell in c.cells if cell.case_index is not None})
    if not variants and not cases:
        return _plural(len(c.cells), "setting")
    parts = [_plural(variants, "variant")] if variants else []
    parts.append(_plural(len({cell.setting for cell in c.cells}), "setting"))
    if cases:
        parts.append(_plural(cases, "case"))
    return " × ".join(parts)


def summary_text(c: Comparison) -> str:
    """settings × samples · progress · failures · wall time · total cost."""
    total = len(c.cells) * c.samples
    responses = c.responses
    finished = sum(1 for r in responses if r.done)
    failed = sum(1 for r in responses if r.done and r.error is not None and not r.interrupted)
    parts = [f"{shape(c)} × {_plural(c.samples, 'sample')}"]
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
    replayed = [r for r in responses if r.replayed]
    if replayed:
        first = min(r.recorded_at or 0.0 for r in replayed)
        some = "" if len(replayed) == total else f"{len(replayed)} "
        parts.append(f"{some}replayed, recorded {when(first)}")
    if c.diff:
        parts.append("marked: words not in the first column")
    return " · ".join(parts)


def _status(r: Response) -> str:
    """A live cell's footer while it streams: its phase (the model is in the cell's label, or in
    "every cell" above the grid; its tail shows how far it got)."""
    return "waiting for the first token" if r.phase == "waiting" else r.phase


def cell_footer(cell: Cell) -> str:
    """One sample: the usual footer. Several: diversity, mean latency and speed, total cost."""
    responses = cell.responses
    if len(cell.slots) == 1:
        r = cell.slots[0]
        if r is None:
            return "queued"
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
def grid_rows(cells: list[Cell]) -> list[range]:
    """The grid's rows: the last parameter of a cross product across, else up to 4 cells a row.

    The rows are fixed, not left to the browser's wrapping: a finished row is drawn once, into an
    output of its own, and only the rows still streaming are redrawn (a narrow window wraps a row).
    """
    n = len(cells)
    if n <= MAX_COLUMNS:
        return [range(n)]
    first = cells[0].settings
    varying = [k for k in first if len({repr(c.settings.get(k)) for c in cells}) > 1]
    across = 0
    if len(varying) >= 2:  # the cross product's last parameter changes fastest
        outer = varying[:-1]
        across = next(
            (i for i, c in enumerate(cells) if any(c.settings.get(k) != first[k] for k in outer)), n
        )
    if not 2 <= across <= MAX_COLUMNS or n % across:
        across = -(-n // -(-n // MAX_COLUMNS))  # as few rows as 4 across allows, evenly filled
    return [range(i, min(i + across, n)) for i in range(0, n, across)]


def _answer_html(text: str, reference: str | None, look: Look) -> str:
    """The answer rendered from Markdown (its words marked against ``reference``); a live frame's
    tail as plain text, since a tail cut from a code block or a list would not render alike."""
    if look["css"]:
        return f"<div {look['text']}>{html.escape(text, quote=False)}</div>"
    body = word_diff_html(text, reference) if reference else markdown_html(text)
    return f"<div {look['answer']}>{body}</div>"


def _error_html(r: Response, look: Look) -> str:
    what = "stopped" if r.interrupted else "failed"
    return f"<div {look['error']}><b>{what}</b>: {html.escape(str(r.error), quote=False)}</div>"


def _tail(text: str, look: Look) -> str:
    """All of an answer, or what a live frame shows of it: its last ``LIVE_CELL_CHARS``."""
    if not look["css"] or len(text) <= LIVE_CELL_CHARS:
        return text
    tail = text[-LIVE_CELL_CHARS:]
    space = tail.find(" ", 0, 24)  # start at a word
    return "…" + tail[space + 1 :]


def _note(words: str, look: Look) -> str:
    return f"<div {look['small']}><i>{words}</i></div>"


def _one_sample_html(r: Response | None, reference: str | None, look: Look) -> str:
    if r is None:
        return ""  # the footer says queued
    text = _tail(r.partial_text, look)
    reasoning = _tail(r.partial_reasoning, look)
    out = []
    if reasoning:
        out.append(thinking_html(reasoning, open_=not text and not r.done))
    if text:
        out.append(_answer_html(text, reference, look))
    if r.done and r.error is not None:
        out.append(_error_html(r, look))
    return "".join(out)


def _samples_html(cell: Cell, reference: str | None, look: Look) -> str:
    """The distinct answers with their counts, then what is still streaming or went wrong."""
    out = []
    for text, count in cell.distinct():
        body = _answer_html(_tail(text, look), reference, look)
        out.append(f"<div {look['line']}><span {look['small']}>×{count}</span>{body}</div>")
    failures: dict[str, int] = {}
    for i, r in enumerate(cell.slots):
        if r is None or (r.done and r.error is None):
            continue
        if r.done and not r.partial_text:  # the same failure of several samples is shown once
            key = _error_html(r, look)
            failures[key] = failures.get(key, 0) + 1
            continue
        state = "streaming" if not r.done else ("stopped" if r.interrupted else "failed")
        error = _error_html(r, look) if r.done else ""
        out.append(
            f"<div {look['line']}><span {look['small']}>sample {i + 1} · {state}</span>"
            f"{_answer_html(_tail(r.partial_text, look), reference, look)}{error}</div>"
        )
    for box, count in failures.items():
        out.append(f"<div {look['line']}><span {look['small']}>×{count}</span>{box}</div>")
    queued = sum(r is None for r in cell.slots)
    if queued:
        out.append(f"<div {look['line']}>{_note(f'{queued} queued…', look)}</div>")
    return "".join(out)


def marks_text(cell: Cell, names: list[str]) -> str:
    """What the checks made of a cell: ✓/✗ (⚠ errored) per check and the score; with samples, how
    many passed and the mean score."""
    verdicts = [v for v in cell.verdicts if v is not None]
    if not verdicts:
        return ""
    if len(cell.verdicts) == 1:
        v = verdicts[0]
        marks = [
            f"{'⚠' if r.errored else '✓' if r.passed else '✗'} {name}"
            for name, r in zip(names, v.results, strict=False)
        ]
        score = f"score {v.score:.2f}" if v.score is not None else "no score"
        return " · ".join([*marks, score])
    judged = [v for v in verdicts if v.passed is not None]
    scores = [v.score for v in judged if v.score is not None]
    parts = [f"{sum(1 for v in judged if v.passed)}/{len(cell.verdicts)} passed"]
    if scores:
        parts.append(f"mean score {sum(scores) / len(scores):.2f}")
    errored = sum(1 for v in verdicts if v.errored)
    if errored:
        parts.append(f"⚠ {errored} errored")
    return " · ".join(parts)


def _marks_html(cell: Cell, comparison: Comparison, look: Look) -> str:
    words = marks_text(cell, comparison.check_names)
    if not words:
        return ""
    verdicts = [v for v in cell.verdicts if v is not None]
    ok = all(v.passed for v in verdicts)
    return f"<div {look['pass' if ok else 'fail']}>{escape_text(words)}</div>"


def _percent(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f}%"


def summary_table(c: Comparison) -> list[list[str]]:
    """The evaluation's summary as rows of text, a header first: variant, setting, pass rate (its
    Wilson 95% interval with more than one answer), mean score, mean latency, total cost."""
    rows = summary_rows(c)
    variants = any(r.variant for r in rows)
    out = [[*(["variant"] if variants else []), "setting", "pass rate", "mean score", "latency", "cost"]]
    for r in rows:
        rate = f"{_percent(r.pass_rate)} ({r.passed}/{r.n})"
        if r.interval is not None:
            rate += f" [{_percent(r.interval[0])}–{_percent(r.interval[1])}]"
        out.append(
            [
                *([r.variant] if variants else []),
                r.setting,
                rate,
                "–" if r.mean_score is None else f"{r.mean_score:.2f}",
                "–" if r.mean_latency is None else f"{r.mean_latency:.2f}s",
                format_cost(r.total_cost) if r.total_cost else "–",
            ]
        )
    return out


def _summary_html(c: Comparison, look: Look) -> str:
    """The summary table, its best row highlighted, and the failures folded below it."""
    table = summary_table(c)
    best = best_row(summary_rows(c))
    cell = "style='padding:2px 8px;text-align:left'"
    head = "".join(f"<th {cell}>{html.escape(h, quote=False)}</th>" for h in table[0])
    body = []
    for i, row in enumerate(table[1:]):
        mark = f" style='{BEST}' title='best'" if i == best else ""
        cells = "".join(f"<td {cell}>{html.escape(v, quote=False)}</td>" for v in row)
        body.append(f"<tr{mark}>{cells}</tr>")
    out = f"<table style='border-collapse:collapse;margin:6px 0'><tr>{head}</tr>{''.join(body)}</table>"
    failed = _failure_lines(c)
    if failed:
        items = "".join(f"<li>{html.escape(line, quote=False)}</li>" for line in failed[:50])
        more = f"<li>… {len(failed) - 50} more: c.failures()</li>" if len(failed) > 50 else ""
        out += (
            f"<details><summary {look['small']}>{_plural(len(failed), 'failed check')}</summary>"
            f"<ul style='margin:2px 0'>{items}{more}</ul></details>"
        )
    return out


def _failure_lines(c: Comparison) -> list[str]:
    lines = []
    for cell in c.cells:
        for i, v in enumerate(cell.verdicts):
            for name, r in zip(c.check_names, v.results if v else [], strict=False):
                if r.errored or r.passed is False:
                    where = cell.label + (f" #{i + 1}" if len(cell.verdicts) > 1 else "")
                    what = "errored" if r.errored else "failed"
                    lines.append(f"{where}: {name} {what}" + (f": {r.reason}" if r.reason else ""))
    return lines


def cell_html(cell: Cell, comparison: Comparison, reference: str | None, look: Look) -> str:
    """One cell: its settings, its answers (in a live frame only their tails) and its footer."""
    head = f"<b>{html.escape(cell.label, quote=False)}</b>"
    detail = cell.describe(comparison.shared)
    if detail and detail != cell.label:
        head += f"<div {look['small']}>{html.escape(detail, quote=False)}</div>"
    if comparison.samples == 1:
        body = _one_sample_html(cell.slots[0], reference, look)
    else:
        body = _samples_html(cell, reference, look)
    foot = f"<div {look['small']}>{escape_text(cell_footer(cell))}</div>"
    return f"<div {look['cell']}>{head}{body}{_marks_html(cell, comparison, look)}{foot}</div>"


def grid_part_html(
    c: Comparison, rows: list[range], *, columns: int, first: bool, last: bool, live: bool
) -> str:
    """Some rows of the grid, on the grid's ``columns``: the first part opens with the settings every
    cell shares, the last closes with the summary; ``live`` draws a frame."""
    reference = c.reference() if c.diff and len(c.cells) > 1 else None
    look = style(max(columns, 1), live=live)  # every part of a grid on the grid's columns
    out = []
    if first and c.shared:
        shared = ", ".join(describe_setting(k, v) for k, v in c.shared.items())
        out.append(f"<div {look['small']}>every cell: {html.escape(shared, quote=False)}</div>")
    for row in rows:
        cells = (cell_html(c.cells[i], c, reference if i else None, look) for i in row)
        out.append(f"<div {look['row']}>{''.join(cells)}</div>")
    if last:
        out.append(f"<div {look['small']}>{escape_text(summary_text(c))}</div>")
        if c.checks and not live:  # the summary comes with the final draw: frames stay small
            out.append(_summary_html(c, look))
    body = "".join(out)
    return f"<div class='qwen-compare'>{_stylesheet(look, body) if live else ''}{body}</div>"


def grid_html(c: Comparison) -> str:
    """The whole grid: the settings every cell shares, the rows of cells, then the summary line."""
    rows = grid_rows(c.cells)
    return grid_part_html(c, rows, columns=len(rows[0]), first=True, last=True, live=False)


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
    if cell.verdicts and cell.done:
        lines.append(marks_text(cell, cell_check_names(cell)))
    lines.append(f"[{cell_footer(cell)}]")
    return "\n".join(lines)


def cell_check_names(cell: Cell) -> list[str]:
    verdict = next((v for v in cell.verdicts if v is not None and v.results), None)
    return [r.name for r in verdict.results] if verdict else []


def grid_text(c: Comparison) -> str:
    """The whole grid as plain text: the shared settings, every cell, the summary."""
    parts = []
    if c.shared:
        parts.append("every cell: " + ", ".join(describe_setting(k, v) for k, v in c.shared.items()))
    parts.extend(cell_text(cell) for cell in c.cells)
    parts.append(summary_text(c))
    if c.checks:
        parts.append("\n".join(" | ".join(row) for row in summary_table(c)))
    return "\n\n".join(parts)


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


class GridView:
    """Draws a Comparison while it runs; ``live`` while the cell that ran ``compare`` is current.

    In a notebook each finished leading row is frozen: drawn once, whole, into an output of its own,
    and the live output below redraws only the rows still open, each cell as the tail of its answer.
    A frame is due once a second after the first, when the live frames so far stay within
    ``LIVE_SHARE`` of the text that arrived and ``LIVE_FREE`` (a frame re-sends each open cell's
    tail), and at least
    every ``LIVE_WAIT`` seconds; the final draw is exact and immediate. A widget target (the panel)
    is one output: every row is redrawn there.
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
        # the first frame shows every cell queued: the first text waits for the beat
        self.output = Live(max_rate=max_rate, publish=publish, quiet=1.0, eager=False)
        self.live = False
        self.rows = grid_rows(comparison.cells)
        self._frozen: list[tuple[int, int]] = []  # the rows of each frozen output, [start, stop)
        self._open = 0  # the first row of the live output
        self._finished = False
        self._toggle: Any = None  # the display handle of the diff toggle
        self._drawn = -1
        self._live_bytes = 0  # what the live frames sent so far
        self._frame_cost = 0  # the last one's size: the next will be about as large
        self._framed = time.perf_counter()  # when the last live frame went out
        self._printed: set[int] = set()
        comparison.view = self

    @property
    def draws(self) -> int:
        return self.output.draws

    def _size(self) -> int:
        return sum(len(r.partial_text) + len(r.partial_reasoning) for r in self.comparison.responses)

    def _bundle(self, start: int, stop: int, *, final: bool) -> dict[str, str]:
        """Rows [start, stop): whole when ``final``, else a live frame (tails; the summary as text).
        A frozen part is HTML alone: the closing output's plain text is the whole grid, which the
        records of its answers point into, so each answer is sent about once."""
        c, rows = self.comparison, self.rows[start:stop]
        first, last = start == 0, stop == len(self.rows)
        columns = len(self.rows[0])
        html_ = grid_part_html(c, rows, columns=columns, first=first, last=last, live=not final)
        if final and not last:
            return {"text/html": html_}
        return {"text/html": html_, "text/plain": grid_text(c) if final else summary_text(c)}

    def start(self) -> None:
        c = self.comparison
        if not self.rich:
            sys.stdout.write(summary_text(c) + "\n")
            sys.stdout.flush()
            return
        if self.output.publish is None and len(c.cells) > 1:
            c.diff_toggle = diff_toggle(c)
            if c.diff_toggle is not None:  # where it cannot be drawn, nothing: the grid says it all
                self._toggle = show_widget(c.diff_toggle, text="")
        self.output.draw(self._bundle(0, len(self.rows), final=False), size=self._size())
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
            self._retire_toggle()

        shell.events.register("pre_run_cell", next_cell)

    def _retire_toggle(self) -> None:
        """The grid's cell is no longer the current one: its toggle leaves the page and the notebook
        (a saved widget shows "model not found" once the kernel is gone); ``show_diff`` still works,
        and the summary line says when words are marked."""
        toggle, self.comparison.diff_toggle = self.comparison.diff_toggle, None
        if toggle is None or self._toggle is None:
            return
        self._toggle.update({"text/plain": ""}, raw=True)
        toggle.close()

    def refresh(self, version: int) -> None:
        """Freeze the rows that finished, or redraw the open ones within the rate when they grew."""
        if version == self._drawn:
            return
        if not self.rich:
            self._print_finished()
            self._drawn = version
            return
        live, end, size = self.output, len(self.rows), self._size()
        if not live.due(size):
            return
        self._drawn = version
        done = self._open
        while done < end - 1 and all(self.comparison.cells[i].done for i in self.rows[done]):
            done += 1  # the last row stays open: the final draw closes the grid with its summary
        if done > self._open and live.can_freeze:  # on a frame's beat, so rows that finish together
            live.freeze(self._bundle(self._open, done, final=True))  # freeze together
            self._frozen.append((self._open, done))
            self._open = done
        elif live.can_freeze:  # a live frame re-sends every open cell: within its share of the text
            waited = time.perf_counter() - self._framed
            over = self._live_bytes + self._frame_cost > LIVE_SHARE * size + LIVE_FREE
            if over and waited < LIVE_WAIT:
                self._drawn = -1  # due again on the next beat
                return
        frame = self._bundle(self._open, end, final=False)
        self._frame_cost = len(frame["text/html"])
        self._live_bytes += self._frame_cost
        self._framed = time.perf_counter()
        live.draw(frame, size=size)

    def redraw(self, *, frozen: bool = True) -> None:
        """Draw the open output now (final once the run ended) and, with ``frozen``, the frozen
        ones again too (the diff toggled)."""
        if not self.output.shown:
            return
        if frozen:
            self.output.redraw_frozen([self._bundle(a, b, final=True) for a, b in self._frozen])
        # the closing output carries every sample's record: the saved notebook replays the grid
        bundle = self._bundle(self._open, len(self.rows), final=self._finished)
        record = metadata(self.comparison.responses, bundle["text/plain"]) if self._finished else None
        self.output.draw(bundle, metadata=record)

    def finish(self) -> None:
        self._finished = True
        if self.rich:
            self.redraw(frozen=False)
            return
        self._print_finished()
        sys.stdout.write(summary_text(self.comparison) + "\n")
        if self.comparison.checks:
            sys.stdout.write("\n".join(" | ".join(row) for row in summary_table(self.comparison)) + "\n")
        sys.stdout.flush()

    def _print_finished(self) -> None:
        for i, cell in enumerate(self.comparison.cells):
            if i not in self._printed and cell.done:
                self._printed.add(i)
                sys.stdout.write("\n" + cell_text(cell) + "\n")
        sys.stdout.flush()
