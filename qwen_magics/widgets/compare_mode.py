"""The parameter panel's Compare tab: collect 2 to 6 of the panel's settings, run them side by side.

A user sets the controls, presses "Add current settings", changes a knob, adds again, and presses
Compare. The grid is ``comparison.compare``'s own, drawn into the tab through its ``publish`` hook;
the comparison (``acompare``) runs on the panel's Background, which draws it too, and the panel's
Stop button cancels it there.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from ..api.response import Response
from ..comparison.compare import Comparison, acompare
from ..display.answer import error_bundle
from .text import cell_prompt, summary

if TYPE_CHECKING:
    from ..runner import Background
    from .panel import Panel

__all__ = ["MAX_SETTINGS", "MIN_SETTINGS", "CompareMode"]

MIN_SETTINGS, MAX_SETTINGS = 2, 6
MAX_SAMPLES = 10


def _say(text: str, *, warn: bool = False) -> str:
    style = "color:#a94442" if warn else "opacity:.75"
    return f"<div style='{style}'>{'⚠ ' if warn else ''}{html.escape(text)}</div>"


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
                self.list_view,
                self.note,
                self.output,
            ]
        )
        self.output.add_class("qwen-compare-output")
        self.run_button.add_class("qwen-compare-run")
        self.add_button.add_class("qwen-compare-add")
        self.add_button.on_click(lambda b: self.add())
        self.clear_button.on_click(lambda b: self.clear())
        self.run_button.on_click(lambda b: self.run())
        self.diff.observe(self._on_diff, names="value")
        self.refresh()

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
        items = "".join(f"<li>{html.escape(summary(s))}</li>" for s in self.settings)
        n = len(self.settings)
        listed = f"<ol style='margin:4px 0'>{items}</ol>" if items else ""
        self.list_view.value = listed + _say(f"{n} settings listed ({MIN_SETTINGS} to {MAX_SETTINGS})")
        self.add_button.disabled = n >= MAX_SETTINGS
        self.run_button.disabled = self.panel.running or n < MIN_SETTINGS

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
        n = len(self.settings)
        if not self.panel._begin(f"comparing {n} settings…"):
            return False
        self.comparison = None
        self.note.value = ""
        configs = [dict(s) for s in self.settings]
        samples = self.samples.value
        self.panel._start("qwen-panel-compare", lambda: self._work(prompt, configs, samples), self._finished)
        return True

    async def _work(self, prompt: str, configs: list[dict[str, Any]], samples: int) -> str:
        """The comparison, on the panel's loop; returns the status line."""
        try:
            comparison = await acompare(prompt, configs=configs, samples=samples, publish=self._publish)
        except Exception as exc:  # no key, a bad prompt, or a fault of ours: shown, not lost with the thread
            self._publish(error_bundle(str(exc), title="Comparison not run"))
            return "comparison failed"
        self.comparison = comparison
        self.answers.extend(comparison.responses)
        if self.diff.value:
            comparison.show_diff(True)
        state = "stopped" if comparison.interrupted else "done"
        return f"comparison of {len(configs)} settings: {state} · {comparison.wall:.2f}s"

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
