"""The parameter panel's Compare tab: collect 2 to 6 of the panel's settings, run them side by side.

A user sets the controls, presses "Add current settings", changes a knob, adds again, and presses
Compare. The grid is ``comparison.compare``'s own, drawn into the tab through its ``publish`` hook;
the comparison (``acompare``) runs on the panel's Background, which draws it too, and the panel's
Stop button cancels it there.

The tab judges the answers too: ``checks`` takes the short forms of the magic's ``--check``, one a
line (a form's own text may hold commas: ``schema:name, age int``), read by ``checks.parse_spec``
as the magic reads them, and ``threshold`` is compare's. A line it cannot read is one line of error
under the field, and Compare sends nothing until it is fixed; the grid then shows each cell's marks
and the summary, and the panel's code view the cell that runs the same comparison.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from ..api.response import Response
from ..checks import Check, parse_spec
from ..comparison.compare import Comparison, acompare
from ..display.answer import error_bundle
from ..errors import ParameterError
from .text import cell_prompt, compare_code, summary

if TYPE_CHECKING:
    from ..runner import Background
    from .panel import Panel

__all__ = ["MAX_SETTINGS", "MIN_SETTINGS", "CompareMode"]

MIN_SETTINGS, MAX_SETTINGS = 2, 6
MAX_SAMPLES = 10
CHECK_EXAMPLES = (
    "contains:Paris",
    "icontains:paris",
    r"regex:\d{4}",
    "json",
    "max_length:200",
    "similar:0.7:REFERENCE",
    "judge:RUBRIC",
)


def _say(text: str, *, warn: bool = False) -> str:
    style = "color:#a94442" if warn else "opacity:.75"
    return f"<div style='{style}'>{'⚠ ' if warn else ''}{html.escape(text)}</div>"


_FIX_CHECKS = _say("fix the checks above, then press Compare", warn=True)


class CompareMode:
    """The Compare tab of a Panel. ``settings`` is the list to compare; ``comparison`` the last."""

    def __init__(self, panel: Panel) -> None:
        self.panel = panel
        self.settings: list[dict[str, Any]] = []
        self.comparison: Comparison | None = None
        self.answers: list[Response] = []  # every comparison's, for the records the notebook keeps
        self.add_button = W.Button(
            description="Add current settings",
            icon="plus",
            tooltip="add the panel's settings to the list",
            layout=W.Layout(width="auto", flex="0 0 auto"),
        )
        self.clear_button = W.Button(description="Clear", icon="trash", tooltip="empty the list")
        self.samples = W.BoundedIntText(
            value=1,
            min=1,
            max=MAX_SAMPLES,
            description="samples",
            tooltip="answers per setting: shows how much each setting varies",
            style={"description_width": "60px"},
            layout=W.Layout(width="140px"),
        )
        self.run_button = W.Button(
            description="Compare", icon="columns", button_style="primary", tooltip="run the list side by side"
        )
        self.diff = W.ToggleButton(
            description="Highlight differences",
            icon="highlighter",
            tooltip="mark the words that differ from the first column",
            layout=W.Layout(width="auto", flex="0 0 auto"),
        )
        self.checks = W.Textarea(
            description="checks",
            placeholder="optional, one a line: " + "  ".join(CHECK_EXAMPLES),
            tooltip="judge each answer, one check a line as %%qwen --check takes it: "
            + ", ".join(CHECK_EXAMPLES)
            + ", equals:, starts_with:, schema:FIELDS, max_tokens:N, latency:SECONDS, cost:USD",
            continuous_update=False,  # read when the field is left, not at every key
            style={"description_width": "60px"},
            layout=W.Layout(width="auto", flex="1 1 auto", height="48px"),
        )
        self.threshold = W.BoundedFloatText(
            value=1.0,
            min=0.0,
            max=1.0,
            step=0.05,
            description="pass at",
            tooltip="the weighted score an answer needs to pass, 0 to 1 (1: every check)",
            style={"description_width": "60px"},
            layout=W.Layout(width="140px", flex="0 0 auto"),
        )
        self.check_note = W.HTML()
        self.list_view = W.HTML()
        self.note = W.HTML()
        self.output = W.Output(layout=W.Layout(width="auto"))
        self.widget = W.VBox(
            [
                W.HTML(
                    _say(
                        f"Set the controls and add them here, {MIN_SETTINGS} to {MAX_SETTINGS} times; "
                        "Compare runs the prompt with each, side by side."
                    )
                ),
                W.HBox(
                    [self.add_button, self.clear_button, self.samples, self.run_button, self.diff],
                    layout=W.Layout(flex_flow="row wrap"),
                ),
                W.HBox([self.checks, self.threshold], layout=W.Layout(align_items="flex-start")),
                self.check_note,
                self.list_view,
                self.note,
                self.output,
            ]
        )
        self.output.add_class("qwen-compare-output")
        self.run_button.add_class("qwen-compare-run")
        self.add_button.add_class("qwen-compare-add")
        self.checks.add_class("qwen-compare-checks")
        self.add_button.on_click(lambda b: self.add())
        self.clear_button.on_click(lambda b: self.clear())
        self.run_button.on_click(lambda b: self.run())
        self.diff.observe(self._on_diff, names="value")
        self.checks.observe(lambda c: self._on_checks(), names="value")  # checked as typed
        for w in (self.samples, self.threshold):
            w.observe(lambda c: self.panel._show_code(), names="value")
        self.threshold.disabled = True  # until there are checks
        self._draw_list()  # the panel draws its code view once it has this tab

    # -- the list ---------------------------------------------------------------------------------
    def add(self) -> bool:
        """Add the panel's current settings; False (with the reason shown) when they cannot go in."""
        problems = self.panel.problems()
        if problems:
            self.note.value = _say(f"fix the settings first: {problems[0]}", warn=True)
            return False
        if len(self.settings) >= MAX_SETTINGS:
            self.note.value = _say(
                f"at most {MAX_SETTINGS} settings side by side; Clear to start again", warn=True
            )
            return False
        settings = self.panel.settings()
        if settings in self.settings:
            self.note.value = _say(
                "these settings are in the list already: change a control first", warn=True
            )
            return False
        self.settings.append(settings)
        self.note.value = ""
        self.refresh()
        return True

    def clear(self) -> None:
        self.settings.clear()
        self.note.value = ""
        self.refresh()

    def refresh(self) -> None:
        self._draw_list()
        self.panel._show_code()

    def _draw_list(self) -> None:
        """The list and the tab's buttons (the worker thread redraws them when a comparison ends)."""
        items = "".join(f"<li>{html.escape(summary(s))}</li>" for s in self.settings)
        n = len(self.settings)
        listed = f"<ol style='margin:4px 0'>{items}</ol>" if items else ""
        self.list_view.value = listed + _say(f"{n} settings listed ({MIN_SETTINGS} to {MAX_SETTINGS})")
        self.add_button.disabled = n >= MAX_SETTINGS
        self.run_button.disabled = self.panel.running or n < MIN_SETTINGS

    # -- the checks -------------------------------------------------------------------------------
    def specs(self) -> list[str]:
        """The checks' short forms as written, one a line, blank lines left out."""
        return [line.strip() for line in self.checks.value.splitlines() if line.strip()]

    def parsed_checks(self) -> tuple[list[Check], str | None]:
        """The checks, or the first line that is not one with the reason (then no checks)."""
        found = []
        for spec in self.specs():
            try:
                found.append(parse_spec(spec))
            except ParameterError as exc:  # said with the line it is about
                return [], str(exc) if spec in str(exc) else f"check {spec!r}: {exc}"
        return found, None

    @property
    def code(self) -> str:
        """The cell that runs the listed settings as Compare runs them, checks included."""
        return compare_code(
            cell_prompt(self.panel.prompt.value),
            self.settings,
            samples=self.samples.value,
            checks=self.specs() if self.parsed_checks()[1] is None else (),
            threshold=self.threshold.value,
        )

    def _on_checks(self) -> None:
        problem = self.parsed_checks()[1]
        self.check_note.value = "" if problem is None else _say(problem, warn=True)
        if problem is None and self.note.value == _FIX_CHECKS:
            self.note.value = ""
        self.threshold.disabled = not self.specs()
        self.panel._show_code()

    # -- running ----------------------------------------------------------------------------------
    def run(self) -> bool:
        """What Compare does: start the comparison on the panel's Background, return at once."""
        if len(self.settings) < MIN_SETTINGS:
            self.note.value = _say(f"add at least {MIN_SETTINGS} settings to compare", warn=True)
            return False
        prompt = cell_prompt(self.panel.prompt.value)
        if not prompt:
            self.note.value = _say("write a prompt, then press Compare", warn=True)
            return False
        checks, problem = self.parsed_checks()
        if problem is not None:  # shown under the field already; say it again where Compare was pressed
            self.check_note.value = _say(problem, warn=True)
            self.note.value = _FIX_CHECKS
            return False
        n = len(self.settings)
        if not self.panel._begin(f"comparing {n} settings…"):
            return False
        self.comparison = None
        self.note.value = ""
        configs = [dict(s) for s in self.settings]
        samples, threshold = self.samples.value, self.threshold.value
        self.panel._start(
            "qwen-panel-compare",
            lambda: self._work(prompt, configs, samples, checks, threshold),
            self._finished,
        )
        return True

    async def _work(
        self, prompt: str, configs: list[dict[str, Any]], samples: int, checks: list[Check], threshold: float
    ) -> str:
        """The comparison, on the panel's loop; returns the status line."""
        try:
            comparison = await acompare(
                prompt,
                configs=configs,
                samples=samples,
                checks=checks or None,
                threshold=threshold,
                publish=self._publish,
            )
        except Exception as exc:  # no key, a bad prompt, or a fault of ours: shown, not lost with the thread
            self._publish(error_bundle(str(exc), title="Comparison not run"))
            return "comparison failed"
        self.comparison = comparison
        self.answers.extend(comparison.responses)
        if self.diff.value:
            comparison.show_diff(True)
        state = "stopped" if comparison.interrupted else "done"
        status = f"comparison of {len(configs)} settings: {state} · {comparison.wall:.2f}s"
        if checks:
            verdicts = [v for cell in comparison.cells for v in cell.verdicts if v is not None]
            judged = [v for v in verdicts if v.passed is not None]
            status += f" · {sum(1 for v in judged if v.passed)}/{len(judged)} passed"
        return status

    def _finished(self, work: Background[Any]) -> None:
        """The worker thread's last act: free the panel."""
        if work.cancelled:  # Stop came before the comparison began
            self._publish(error_bundle("stopped before the comparison started", title="Stopped"))
            status = "comparison stopped before it started"
        elif work.error is not None:  # past _work's own handler: shown, not lost with the thread
            self._publish(
                error_bundle(f"{type(work.error).__name__}: {work.error}", title="qwen-magics error")
            )
            status = "comparison failed"
        else:
            status = str(work.result())
        self.panel._save_stand_in()
        self.panel._end(status)

    def _publish(self, bundle: dict[str, str], update: bool = False) -> None:
        self.output.outputs = ({"output_type": "display_data", "data": dict(bundle), "metadata": {}},)

    def _on_diff(self, change: Any) -> None:
        if self.comparison is not None:
            self.comparison.show_diff(bool(change.new))
