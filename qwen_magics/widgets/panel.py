"""The parameter panel: ipywidgets controls for one prompt, Run and Stop, the live answer, a trail of runs.

Every control is an attribute named after the parameter it sets (``panel.temperature``), so code
and tests drive the panel as a user would. Only what a user set is sent: a slider still at "model
default", thinking at "model default", an empty seed or a zero budget send nothing, so the model's
own defaults apply. Settings that cannot go together are locked, hidden or explained before Run.

``tools=[fn, ...]`` lets the model call those functions: each Run is the tool loop, its calls drawn
in the answer, and a line under the model names the tools in use, each opening onto the schema the
model reads and the function's code.

A run streams on a ``runner.Background`` (its own event loop in a worker thread), so the kernel
stays free to handle Stop; Stop cancels that loop's task, which closes the connection and keeps what
arrived. The worker thread only writes to the answer, the runs table, the status line and the two
buttons; the controls belong to the kernel's main thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import ipywidgets as W

from .. import config
from ..api import record, toolloop
from ..api.client import AsyncClient
from ..api.params import SEED_MAX, check_params, check_text, parse_value
from ..api.record import metadata
from ..api.response import Response
from ..display.answer import StreamView, error_bundle
from ..display.widget import show_widget, widget_bundle
from ..errors import ParameterError, QwenError
from ..models import MODELS, ModelInfo, get_model
from ..runner import Background
from .compare_mode import CompareMode
from .presets import CUSTOM, MODEL_DEFAULT, PRESETS, match_preset
from .text import Run, cell_code, cell_prompt, runs_table, tools_line, with_tools

__all__ = ["Panel", "panel"]

UNBOUNDED = 10**7  # the int fields' limit for a model the table does not know
_STYLE = {"description_width": "90px"}
# DashScope's [0, 2) and (0, 1] as slider ranges; where a slider rests while unset (not sent)
SLIDERS = {"temperature": (0.0, 1.99), "top_p": (0.01, 1.0)}
_SLIDER_REST = {"temperature": 0.7, "top_p": 0.8}
_CODE_NOTE = (
    "<div style='opacity:.7;font-size:.9em'>Paste into a cell to {} (defaults set with "
    "<code>%qwen config</code> fill the options it leaves out):</div>"
)
_CODE_STYLE = "style='user-select:all;white-space:pre-wrap;background:#f6f8fa;padding:6px'"


def panel(prompt: str = "", **params: Any) -> Panel:
    """Show a parameter panel for ``prompt`` and return it (``%qwen panel``, ``%%qwen --panel``).

    ``params`` preset the controls: model, system, temperature, top_p, top_k, thinking, budget,
    max_tokens, seed, stop, preset. They are checked like ``ask``'s, so a bad one raises at once.
    ``tools=[fn, ...]`` (with ``max_steps``, ``parallel_tool_calls``, ``tool_choice``) runs each ask
    as the tool loop, as ``ask`` does.
    """
    p = Panel(prompt, **params)
    p.show()
    return p


def _label(text: str) -> W.HTML:
    """A description in the column of the other controls' (ToggleButtons would put it above)."""
    return W.HTML(
        f"<div style='text-align:right;padding-right:8px'>{html.escape(text)}</div>",
        layout=W.Layout(width=_STYLE["description_width"], flex="0 0 auto"),
    )


def _describe(name: str, info: ModelInfo | None) -> str:
    if info is None:
        return (
            f"<b>{html.escape(name)}</b>: not in the model table, so ranges are checked "
            "against DashScope's general limits only"
        )
    parts = [info.describe_thinking(), f"writes up to {info.max_output:,} tokens"]
    if info.max_cot:
        parts.append(f"thinking budget up to {info.max_cot:,}")
    parts.append(f"${info.price_in:.2f} in / ${info.price_out:.2f} out per million tokens")
    return f"<b>{html.escape(info.name)}</b>: " + " · ".join(parts)


def _whole(name: str, text: str, empty: str) -> tuple[int | None, str | None]:
    """A whole number from a text field: (value, None), (None, None) when empty (or ``default``), or a
    problem."""
    try:
        return parse_value(name, text), None
    except ParameterError:
        return None, f"{name} must be a whole number, or empty for {empty}; got {text.strip()!r}"


class Panel:
    """Controls, Run / Stop, the streamed answer and the runs so far. ``panel.result``: last Response."""

    def __init__(
        self,
        prompt: str = "",
        *,
        model: str | None = None,
        system: str | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        thinking: bool | None = None,
        budget: int | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        stop: str | list[str] | None = None,
        preset: str | None = None,
        tools: list[Any] | None = None,
        max_steps: int = toolloop.DEFAULT_MAX_STEPS,
        parallel_tool_calls: bool | None = None,
        tool_choice: Any = None,
    ) -> None:
        model = model or config.settings().model
        if preset is not None and preset not in (MODEL_DEFAULT, CUSTOM, *PRESETS):
            raise ParameterError(
                "preset",
                f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)} or {MODEL_DEFAULT!r}",
            )
        if preset in PRESETS:
            t, p = PRESETS[preset]
            temperature = t if temperature is None else temperature
            top_p = p if top_p is None else top_p
        given = dict(
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            thinking=thinking,
            budget=budget,
            max_tokens=max_tokens,
            seed=seed,
            stop=stop,
        )
        check_params({k: v for k, v in given.items() if v is not None}, model)
        self._tool_options: dict[str, Any] = {}
        if tools is not None:
            options: dict[str, Any] = {"tools": tools, "max_steps": max_steps}
            options.update(parallel_tool_calls=parallel_tool_calls, tool_choice=tool_choice)
            self._tool_options = options
            loop = toolloop.prepare_loop(
                {k: v for k, v in given.items() if v is not None}, model, confirm=None, **options
            )
            self.tools = list(loop.tools.values())  # what the model is offered, as it reads it
            options["tools"] = self.tools  # described once: Tool objects pass through as they are
        else:
            self.tools = []
        for name, value in (("temperature", temperature), ("top_p", top_p)):
            low, high = SLIDERS[name]
            if value is not None and not low <= value <= high:
                raise ParameterError(name, f"the panel's {name} slider spans {low} to {high}; got {value!r}")

        self.runs: list[Run] = []
        self._shown: list[Any] = []  # the display handles of this panel, for its stand-in
        self.result: Response | None = None
        self._stop = stop
        self._touched = {"temperature": temperature is not None, "top_p": top_p is not None}
        self._thinking_choice = {None: "default", True: "on", False: "off"}[thinking]
        self._notes: list[str] = []
        self._quiet_depth = 0
        self._lock = threading.Lock()
        self._running = False
        self._stop_requested = False
        self._work: Background[Any] | None = None  # the run or comparison going on, or the last one

        info = get_model(model)
        names = list(MODELS) if model in MODELS else [*MODELS, model]
        self.prompt = W.Textarea(
            value=prompt,
            description="prompt",
            placeholder="Ask something…",
            layout=W.Layout(width="auto", height="80px"),
            style=_STYLE,
        )
        self.system = W.Textarea(
            value=system or "",
            description="system",
            placeholder="optional system prompt",
            layout=W.Layout(width="auto", height="42px"),
            style=_STYLE,
        )
        self.model = W.Dropdown(options=names, value=model, description="model", style=_STYLE)
        self.preset = W.Dropdown(
            options=[MODEL_DEFAULT, *PRESETS, CUSTOM],
            value=match_preset(temperature, top_p),
            description="preset",
            style=_STYLE,
        )
        self.temperature = W.FloatSlider(
            value=_SLIDER_REST["temperature"] if temperature is None else temperature,
            min=SLIDERS["temperature"][0],
            max=SLIDERS["temperature"][1],
            step=0.01,
            description="temperature",
            readout_format=".2f",
            continuous_update=False,
            style=_STYLE,
            layout=W.Layout(width="420px"),
        )
        self.top_p = W.FloatSlider(
            value=_SLIDER_REST["top_p"] if top_p is None else top_p,
            min=SLIDERS["top_p"][0],
            max=SLIDERS["top_p"][1],
            step=0.01,
            description="top_p",
            readout_format=".2f",
            continuous_update=False,
            style=_STYLE,
            layout=W.Layout(width="420px"),
        )
        self._slider_notes = {name: W.HTML() for name in ("temperature", "top_p")}
        self.thinking = W.ToggleButtons(
            options=[("model default", "default"), ("on", "on"), ("off", "off")],
            value=self._thinking_choice,
            style={"button_width": "120px"},
            layout=W.Layout(width="auto"),
        )
        self.budget = W.BoundedIntText(
            value=budget or 0,
            min=0,
            max=info.max_cot if info and info.max_cot else UNBOUNDED,
            description="budget",
            tooltip="largest number of thinking tokens; 0: the model's default",
            style=_STYLE,
            layout=W.Layout(width="220px"),
        )
        self.max_tokens = W.BoundedIntText(
            value=max_tokens or 0,
            min=0,
            max=info.max_output if info else UNBOUNDED,
            description="max tokens",
            tooltip="longest answer in tokens; 0: the model's limit",
            style=_STYLE,
            layout=W.Layout(width="220px"),
        )
        self.seed = W.Text(
            value="" if seed is None else str(seed),
            placeholder="random",
            description="seed",
            style=_STYLE,
            layout=W.Layout(width="220px"),
        )
        self.top_k = W.Text(
            value="" if top_k is None else str(top_k),
            placeholder="model default",
            description="top_k",
            style=_STYLE,
            layout=W.Layout(width="220px"),
        )
        self.run_button = W.Button(
            description="Run",
            button_style="primary",
            icon="play",
            tooltip="send the prompt with these settings",
        )
        self.stop_button = W.Button(
            description="Stop", icon="stop", disabled=True, tooltip="stop the answer, keeping what arrived"
        )
        self.status = W.HTML()
        self.model_info = W.HTML()
        self.tools_view = W.HTML(tools_line(self.tools))
        self.notes = W.HTML()
        self.output = W.Output(
            layout=W.Layout(width="auto", min_height="40px", border="1px solid #ddd", padding="4px 8px")
        )
        self.runs_view = W.HTML(runs_table(self.runs))
        self.code_view = W.HTML()
        self.compare_mode = CompareMode(self)
        self.tabs = W.Tab(
            children=[self.runs_view, self.code_view, self.compare_mode.widget],
            titles=["Runs", "Copy as code", "Compare"],
            layout=W.Layout(width="auto"),
        )
        self.widget = W.VBox(
            [
                self.prompt,
                self.system,
                W.HBox([self.model, self.preset]),
                W.HBox([self.temperature, self._slider_notes["temperature"]]),
                W.HBox([self.top_p, self._slider_notes["top_p"]]),
                W.HBox([_label("thinking"), self.thinking, self.budget]),
                W.HBox([self.max_tokens, self.seed, self.top_k]),
                self.model_info,
                self.tools_view,
                self.notes,
                W.HBox([self.run_button, self.stop_button, self.status]),
                self.output,
                self.tabs,
            ],
            layout=W.Layout(max_width="1000px"),
        )
        for w, cls in [
            (self.widget, "qwen-panel"),
            (self.temperature, "qwen-temperature"),
            (self.preset, "qwen-preset"),
            (self.status, "qwen-status"),
            (self.top_p, "qwen-top-p"),
            (self.run_button, "qwen-run"),
            (self.stop_button, "qwen-stop"),
            (self.output, "qwen-output"),
            (self.code_view, "qwen-code"),
            (self.runs_view, "qwen-runs"),
            (self.tools_view, "qwen-tools"),
        ]:
            w.add_class(cls)

        self.model.observe(self._on_model, names="value")
        self.preset.observe(self._on_preset, names="value")
        self.temperature.observe(lambda c: self._on_slider("temperature"), names="value")
        self.top_p.observe(lambda c: self._on_slider("top_p"), names="value")
        self.thinking.observe(self._on_thinking, names="value")
        for w in (self.prompt, self.system, self.budget, self.max_tokens, self.seed, self.top_k):
            w.observe(lambda c: self._refresh(), names="value")
        self.run_button.on_click(lambda b: self.run())
        self.stop_button.on_click(lambda b: self.stop())
        self._apply_model(model)
        self._refresh()

    # -- showing ---------------------------------------------------------------------------------
    def show(self) -> None:
        """Display the panel (again) in the notebook."""
        from IPython import get_ipython

        if get_ipython() is None:
            return
        self._shown.append(show_widget(self.widget, **self._stand_in()))

    def _save_stand_in(self) -> None:
        """Refresh the stand-in a saved notebook shows: the runs so far, and the record of every
        answer (runs and comparisons), so the saved notebook replays them."""
        records = metadata([*(r.response for r in self.runs), *self.compare_mode.answers])
        for shown in self._shown:
            shown.update(widget_bundle(self.widget, **self._stand_in()), raw=True, metadata=records)

    def _stand_in(self) -> dict[str, str]:
        """What shows where the widget cannot be drawn (GitHub, nbconvert, an untrusted notebook):
        its settings as a cell and the runs so far, refreshed after each run."""
        note = "Qwen parameter panel (interactive: run the cell to use it); its settings as a cell:"
        runs = f"<div>{runs_table(self.runs)}</div>" if self.runs else ""
        compared, compared_html = "", ""
        if self.compare_mode.settings:  # the comparison too, checks and all
            said = "its comparison as code:"
            compared = f"\n{said}\n{self.compare_mode.code}"
            compared_html = f"<div>{said}</div><pre>{html.escape(self.compare_mode.code)}</pre>"
        stand_in = (
            f"<div style='border:1px solid rgba(128,128,128,.35);padding:4px 8px'>{html.escape(note)}"
            f"<pre>{html.escape(self.code)}</pre>{compared_html}{runs}</div>"
        )
        last = f"\nlast run: {self.runs[-1].number}, {self.runs[-1].state}" if self.runs else ""
        return {"text": f"{note}\n{self.code}{compared}{last}", "html": stand_in}

    def __repr__(self) -> str:
        last = f", last {self.runs[-1].state}" if self.runs else ""
        return f"<qwen_magics Panel {self.model.value} · {len(self.runs)} runs{last}>"

    # -- what a run would send -------------------------------------------------------------------
    @property
    def will_think(self) -> bool:
        """Whether the model thinks with the current settings (the budget applies only then)."""
        info = get_model(self.model.value)
        choice = self.thinking.value
        if info is None:
            return choice == "on"
        if info.thinking != "hybrid":
            return info.thinking == "only"
        return info.thinking_default if choice == "default" else choice == "on"

    def settings(self) -> dict[str, Any]:
        """What Run sends: the model, the system prompt if any, and only the parameters set."""
        return self._collect()[0]

    def problems(self) -> list[str]:
        """Why Run would refuse to send, in words that say what to change; empty when ready."""
        return self._collect()[1]

    @property
    def code(self) -> str:
        """The ``%%qwen`` cell that reproduces the current settings exactly."""
        return self._with_tools(cell_code(cell_prompt(self.prompt.value), self.settings()))

    def _with_tools(self, code: str) -> str:
        steps = self._tool_options.get("max_steps")
        return with_tools(
            code,
            [t.function.__name__ for t in self.tools],
            None if steps == toolloop.DEFAULT_MAX_STEPS else steps,
        )

    def _collect(self) -> tuple[dict[str, Any], list[str]]:
        problems: list[str] = []
        s: dict[str, Any] = {"model": self.model.value}
        if self.system.value.strip():
            s["system"] = self.system.value
        for name in ("temperature", "top_p"):
            if self._touched[name]:
                s[name] = float(f"{getattr(self, name).value:.10g}")  # no 0.29000000000000004
        top_k, problem = _whole("top_k", self.top_k.value, "the model's default")
        if problem:
            problems.append(problem)
        elif top_k is not None:
            s["top_k"] = top_k
        if not self.thinking.disabled and self.thinking.value != "default":
            s["thinking"] = self.thinking.value == "on"
        if self.will_think and self.budget.value > 0:
            s["budget"] = self.budget.value
        if self.max_tokens.value > 0:
            s["max_tokens"] = self.max_tokens.value
        seed, problem = _whole("seed", self.seed.value, f"a random seed (0 to {SEED_MAX})")
        if problem:
            problems.append(problem)
        elif seed is not None:
            s["seed"] = seed
        if self._stop is not None:
            s["stop"] = self._stop
        try:
            check_params({k: v for k, v in s.items() if k not in ("model", "system")}, s["model"])
            check_text("system", self.system.value)
            check_text("prompt", self.prompt.value)
            if self._tool_options:  # a model without tools, a forced tool_choice while thinking...
                wire = {k: v for k, v in s.items() if k not in ("model", "system")}
                toolloop.prepare_loop(wire, s["model"], confirm=None, **self._tool_options)
        except ParameterError as exc:
            problems.append(str(exc))
        if not self.prompt.value.strip():
            problems.append("write a prompt, then press Run")
        return s, problems

    # -- keeping the controls consistent ---------------------------------------------------------
    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        """Changes made by the panel itself, which must not count as the user's."""
        self._quiet_depth += 1
        try:
            yield
        finally:
            self._quiet_depth -= 1

    def _on_model(self, change: Any) -> None:
        self._notes = []
        self._apply_model(change.new)
        self._refresh()

    def _apply_model(self, name: str) -> None:
        """Lock thinking where the model decides, and keep the int fields inside its limits."""
        info = get_model(name)
        with self._quiet():
            if info is not None and info.thinking == "only":
                self.thinking.value, self.thinking.disabled = "on", True
                self.thinking.tooltip = f"{info.name} always thinks"
            elif info is not None and info.thinking == "none":
                self.thinking.value, self.thinking.disabled = "off", True
                self.thinking.tooltip = f"{info.name} has no thinking mode"
            else:
                self.thinking.disabled = False
                self.thinking.value = self._thinking_choice
                self.thinking.tooltip = "model default sends nothing: the model decides"
            for field, limit, what in [
                (self.max_tokens, info.max_output if info else UNBOUNDED, "writes at most"),
                (self.budget, info.max_cot if info and info.max_cot else UNBOUNDED, "thinks at most"),
            ]:
                if field.value > limit:
                    self._notes.append(
                        f"{field.description} lowered to {limit:,}: {name} {what} {limit:,} tokens"
                    )
                    field.value = limit
                field.max = limit

    def _on_preset(self, change: Any) -> None:
        if self._quiet_depth:
            return
        name = change.new
        if name == MODEL_DEFAULT:
            self._touched = {"temperature": False, "top_p": False}
        else:
            if name in PRESETS:
                with self._quiet():
                    self.temperature.value, self.top_p.value = PRESETS[name]
            self._touched = {"temperature": True, "top_p": True}
        self._refresh()

    def _on_slider(self, name: str) -> None:
        if self._quiet_depth:
            return
        self._touched[name] = True
        with self._quiet():
            self.preset.value = CUSTOM
        self._refresh()

    def _on_thinking(self, change: Any) -> None:
        if not self._quiet_depth:
            self._thinking_choice = change.new
        self._refresh()

    def _refresh(self) -> None:
        if self._quiet_depth:
            return
        settings, problems = self._collect()
        for name, note in self._slider_notes.items():
            slider = getattr(self, name)
            slider.readout = self._touched[name]
            note.value = (
                ""
                if self._touched[name]
                else ("<span style='opacity:.6;font-style:italic'>model default (not sent)</span>")
            )
        self.budget.layout.display = "" if self.will_think else "none"
        self.model_info.value = (
            f"<div style='line-height:1.4'>{_describe(self.model.value, get_model(self.model.value))}</div>"
        )
        lines = [f"<div style='color:#a94442'>⚠ {html.escape(p)}</div>" for p in problems]
        lines += [f"<div style='opacity:.75'>ℹ {html.escape(n)}</div>" for n in self._notes]
        self.notes.value = "".join(lines)
        self._show_code(settings)
        if not self._running:
            self.run_button.disabled = bool(problems)

    def _show_code(self, settings: dict[str, Any] | None = None) -> None:
        """The code view: the cell for Run and, once the Compare tab lists settings, the one for
        Compare (its samples and checks included)."""
        code = self._with_tools(
            cell_code(cell_prompt(self.prompt.value), self.settings() if settings is None else settings)
        )
        parts = [
            _CODE_NOTE.format("send exactly these settings"),
            f"<pre {_CODE_STYLE}>{html.escape(code)}</pre>",
        ]
        mode = self.compare_mode
        if mode.settings:
            parts.append(_CODE_NOTE.format("run the Compare tab's comparison"))
            if mode.parsed_checks()[1] is not None:
                parts.append("<div style='color:#a94442'>⚠ the checks are left out until they read</div>")
            parts.append(f"<pre {_CODE_STYLE}>{html.escape(mode.code)}</pre>")
        self.code_view.value = "".join(parts)

    # -- running ---------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._running

    def run(self) -> Run | None:
        """What Run does: start streaming with the current settings and return at once.

        Returns the new Run, or None when nothing was sent (the reason is shown in the panel).
        """
        settings, problems = self._collect()
        if problems:
            self._refresh()
            self.status.value = "<span style='color:#a94442'>not sent: see above</span>"
            return None
        run = Run(len(self.runs) + 1, cell_prompt(self.prompt.value), settings)
        if not self._begin(f"run {run.number}: waiting for the first token…"):
            return None
        self.runs.append(run)
        self.runs_view.value = runs_table(self.runs)
        self._start(
            f"qwen-panel-run-{run.number}", lambda: self._stream(run), lambda work: self._finished(run, work)
        )
        return run

    def stop(self) -> None:
        """What Stop does: end the running answer or comparison, keeping what arrived."""
        with self._lock:
            if not self._running or self._stop_requested:
                return
            self._stop_requested = True
            work = self._work
        self.status.value = "stopping…"
        if work is not None:
            work.cancel()

    def _begin(self, status: str) -> bool:
        """Claim the panel for one run or comparison; False (saying why) while another is going."""
        with self._lock:
            if self._running:
                self.status.value = "already running: press Stop first"
                return False
            self._running, self._stop_requested = True, False
        self.run_button.disabled = self.compare_mode.run_button.disabled = True
        self.stop_button.disabled = False
        self.status.value = status
        return True

    def _start(
        self,
        name: str,
        make: Callable[[], Coroutine[Any, Any, Any]],
        on_exit: Callable[[Background[Any]], object],
    ) -> None:
        """Run ``make()`` on a Background that Stop cancels, even a Stop pressed before it started."""
        work = Background[Any](name, on_exit=on_exit)
        with self._lock:
            self._work = work
            if self._stop_requested:
                work.cancel()
        work.start(make)

    def _end(self, status: str) -> None:
        """The worker thread's last act: free the panel for the next run."""
        with self._lock:
            self._running = False
        self.status.value = status
        self.stop_button.disabled = True
        self.run_button.disabled = bool(self.problems())
        self.compare_mode._draw_list()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the current run ends; True when nothing is running any more."""
        work = self._work
        return work.wait(timeout) if work is not None else True

    async def _stream(self, run: Run) -> None:
        view = StreamView(rich=True, publish=lambda bundle, update: self._publish(bundle))
        client = AsyncClient()
        self._publish(
            {
                "text/markdown": f"<sub>{html.escape(run.settings['model'])} · waiting for the "
                "first token…</sub>",
                "text/plain": "waiting for the first token…",
            }
        )
        try:
            try:
                with record.context(source="panel", label=f"run {run.number}"):
                    response = await client.ask(run.prompt, **run.settings, **self._tool_options)
            except asyncio.CancelledError:
                run.stopped = True
                self._publish(error_bundle("stopped before the first token", title="Stopped"))
                return
            except QwenError as exc:
                run.error = str(exc)
                self.result = None
                self._publish(error_bundle(run.error))
                return
            run.response = self.result = response
            view.start(response)
            first = True
            try:
                async for event in response:
                    if event.type in ("text", "reasoning"):
                        if first:
                            self.status.value = f"run {run.number}: streaming…"
                        view.refresh(force=first)
                        first = False
                    elif event.type == "tool_start":
                        self.status.value = f"run {run.number}: calling {event.data.name}…"
                        view.refresh(force=True)
                    elif event.type == "tool_result":
                        view.tool_done(response)
            except asyncio.CancelledError:
                pass  # the response closed its connection and marked itself interrupted
            view.finish()
        except Exception as exc:  # a fault of ours must show in the panel, not vanish with the thread
            run.error = f"{type(exc).__name__}: {exc}"
            self._publish(error_bundle(run.error, title="qwen-magics error"))
        finally:
            await client.aclose()

    def _publish(self, bundle: dict[str, str]) -> None:
        self.output.outputs = ({"output_type": "display_data", "data": dict(bundle), "metadata": {}},)

    def _finished(self, run: Run, work: Background[Any]) -> None:
        """The worker thread's last act for a run, once its loop closed."""
        if work.cancelled:  # stopped before the request began
            run.stopped = True
            self._publish(error_bundle("stopped before the request was sent", title="Stopped"))
        elif work.error is not None:  # past _stream's own handler: shown, not lost with the thread
            run.error = f"{type(work.error).__name__}: {work.error}"
            self._publish(error_bundle(run.error, title="qwen-magics error"))
        self.runs_view.value = runs_table(self.runs)
        self._save_stand_in()
        r = run.response
        timing = f" · {r.elapsed:.2f}s" if r is not None and r.elapsed is not None else ""
        self._end(f"run {run.number}: {run.state}{timing}")
