"""The parameter panel in words: the ``%%qwen`` cell for its settings (and for its comparison), a
summary line, its runs table.

Pure functions of plain values, so the panel's widgets stay thin and these are easy to check.
*Settings* here is what a run sends: ``model``, ``system`` when given, and only the parameters a user
set, under their user names (``temperature``, ``thinking``, ``budget``, ...).
"""

from __future__ import annotations

import html
import itertools
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..api.response import Response
from ..comparison.gridspec import parse_grid
from ..errors import ParameterError
from ..templating import Field, fields

__all__ = [
    "Run",
    "cell_code",
    "cell_prompt",
    "compare_code",
    "python_code",
    "runs_table",
    "summary",
    "tools_line",
    "with_tools",
]

# user name -> %%qwen option, in the order the magic's help lists them
OPTIONS = (
    ("temperature", "-t"),
    ("top_p", "-p"),
    ("top_k", "--top-k"),
    ("budget", "--budget"),
    ("max_tokens", "--max-tokens"),
    ("seed", "--seed"),
)
_BARE = re.compile(r"[\w@%+=:,./-]+")


def _quote(text: str) -> str:
    """Shell-style quoting as the magic's parser reads it: bare, "double" when safe, else 'single'."""
    if _BARE.fullmatch(text):
        return text
    if not re.search(r'["\\$`!]', text):
        return f'"{text}"'
    return shlex.quote(text)


def _number(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def cell_prompt(text: str) -> str:
    """A prompt as a ``%%qwen`` cell body carries it: no leading blank lines, no trailing space."""
    return re.sub(r"\A\s*\n", "", text).rstrip()


def _as_written(text: str) -> bool:
    """True when ``%%qwen`` sends ``text`` unchanged: it holds no ``{field}`` the magic would fill."""
    parts = fields(text)
    return parts is None or not any(isinstance(p, Field) for p in parts)


def cell_code(prompt: str, settings: Mapping[str, Any]) -> str:
    """The ``%%qwen`` cell that sends exactly this prompt with exactly these settings.

    When the cell cannot say it — a system prompt over several lines (the options take one line), or
    a ``{name}`` the magic would fill from the notebook — the same request comes back as a
    ``qwen_magics.ask`` call, with a comment saying why.
    """
    system = settings.get("system")
    if system is not None and ("\n" in system or "\r" in system):
        return python_code(prompt, settings, why="the system prompt spans lines; %%qwen takes it on one")
    if not _as_written(prompt) or (system is not None and not _as_written(system)):
        return python_code(prompt, settings, why="%%qwen would fill its {…} from the notebook")
    if cell_prompt(prompt) != prompt:
        return python_code(prompt, settings, why="a %%qwen cell drops leading blank lines and trailing space")
    words = ["%%qwen"]
    if "model" in settings:  # a comparison of models says them in its --compare
        words += ["-m", _quote(str(settings["model"]))]
    if system is not None:
        words += ["-s", _quote(system)]
    for name, flag in OPTIONS[:3]:
        if name in settings:
            words += [flag, _number(settings[name])]
    if "thinking" in settings:
        words.append("--thinking" if settings["thinking"] else "--no-thinking")
    for name, flag in OPTIONS[3:]:
        if name in settings:
            words += [flag, _number(settings[name])]
    stop = settings.get("stop")
    for s in [stop] if isinstance(stop, str) else stop or []:
        words += ["--stop", _quote(s)]
    return " ".join(words) + "\n" + prompt


def python_code(prompt: str, settings: Mapping[str, Any], *, why: str = "") -> str:
    """The same request as a plain ``qwen_magics.ask`` call."""
    lines = [f"# the same request as a call: {why}"] if why else []
    lines += ["import qwen_magics", "", "qwen_magics.ask(", f"    {prompt!r},"]
    lines += [f"    {name}={value!r}," for name, value in settings.items()]
    lines.append(").complete()")
    return "\n".join(lines)


# what --compare can vary, as the magic's parser reads the values back
_GRID_WORDS = ("model", "temperature", "top_p", "top_k", "thinking", "budget", "max_tokens", "seed")


def _grid_spec(configs: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], str] | None:
    """(the settings every config shares, the ``--compare`` spec of the rest), when the configs are
    exactly that grid's cells in its order; None when ``--compare`` cannot say them."""
    keys = list(dict.fromkeys(k for c in configs for k in c))
    shared = {k: configs[0][k] for k in keys if all(k in c and c[k] == configs[0][k] for c in configs)}
    varying = [k for k in keys if k not in shared]
    if not varying or any(k not in _GRID_WORDS for k in varying):
        return None
    words = []
    for k in varying:
        values = list(dict.fromkeys(c.get(k) for c in configs))
        shown = [
            "default" if v is None else ("on" if v else "off") if k == "thinking" else str(v) for v in values
        ]
        if any(not _BARE.fullmatch(v) or "," in v for v in shown):
            return None
        words.append(f"{k}={','.join(shown)}")
    spec = " ".join(words)
    try:
        grid = parse_grid(spec)  # the magic's own reading of it
    except ParameterError:
        return None
    cells = [
        {**shared, **{k: v for k, v in zip(grid, combo, strict=True) if v is not None}}
        for combo in itertools.product(*grid.values())
    ]
    return (shared, spec) if cells == [dict(c) for c in configs] else None


def compare_code(
    prompt: str,
    configs: Sequence[Mapping[str, Any]],
    *,
    samples: int = 1,
    checks: Sequence[str] = (),
    threshold: float = 1.0,
) -> str:
    """The code that runs this comparison: a ``%%qwen --compare`` cell when its grid and prompt can
    say it, else a ``qwen_magics.compare`` call. ``checks`` are the ``--check`` short forms."""
    grid = _grid_spec(configs)
    cell = cell_code(prompt, grid[0]) if grid is not None else ""
    if grid is not None and cell.startswith("%%qwen"):
        head, body = cell.split("\n", 1)
        words = [head, "--compare", _quote(grid[1])]
        if samples != 1:
            words += ["--samples", str(samples)]
        for spec in checks:
            words += ["--check", _quote(spec)]
        if checks and threshold != 1.0:
            words += ["--threshold", _number(threshold)]
        return " ".join(words) + "\n" + body
    lines = ["import qwen_magics"]
    if checks:
        lines.append("from qwen_magics.checks import parse_spec")
    lines += ["", "qwen_magics.compare(", f"    {prompt!r},", "    configs=["]
    lines += [f"        {dict(c)!r}," for c in configs]
    lines.append("    ],")
    if samples != 1:
        lines.append(f"    samples={samples},")
    if checks:
        lines.append(f"    checks=[{', '.join(f'parse_spec({s!r})' for s in checks)}],")
        if threshold != 1.0:
            lines.append(f"    threshold={threshold!r},")
    lines.append(")")
    return "\n".join(lines)


def summary(settings: Mapping[str, Any]) -> str:
    """``qwen-plus · temperature 0.2 · top_p 0.8 · thinking on``: what a run asked for."""
    parts = [str(settings.get("model", "?"))]
    for name, value in settings.items():
        if name in ("model", "system"):
            continue
        if name == "thinking":
            parts.append(f"thinking {'on' if value else 'off'}")
        else:
            shown = repr(value) if isinstance(value, (list, str)) else _number(value)
            parts.append(f"{name} {shown}")
    system = settings.get("system")
    if system is not None:
        short = system if len(system) <= 24 else system[:23] + "…"
        parts.append(f"system {short!r}")
    if len(parts) == 1:
        parts.append("model defaults")
    return " · ".join(parts)


@dataclass
class Run:
    """One press of Run: what was asked and what came back."""

    number: int
    prompt: str
    settings: dict[str, Any]
    response: Response | None = None
    error: str | None = None  # a failure before any answer arrived
    stopped: bool = False  # Stop pressed before the first token

    @property
    def state(self) -> str:
        r = self.response
        if r is None:
            return "error" if self.error else ("stopped" if self.stopped else "running")
        if not r.done:
            return "running"
        if r.interrupted:
            return "interrupted"
        return "incomplete" if r.incomplete else "done"

    @property
    def first_line(self) -> str:
        """The answer's first line. A thinking run without an answer says so: its reasoning is not
        what the model answered."""
        r = self.response
        if r is None:
            return self.error or ("stopped before the first token" if self.stopped else "")
        text = r.partial_text.strip()
        if not text:
            if not r.partial_reasoning.strip():
                return ""
            if not r.done:
                return "thinking…"
            if r.interrupted:
                return "stopped while thinking: no answer yet"
            return "ended while thinking: no answer" if r.incomplete else "no answer, only reasoning"
        line = text.split("\n", 1)[0].strip()
        return line if len(line) <= 80 else line[:79] + "…"


def _latency(r: Response | None) -> str:
    if r is None:
        return ""
    parts = []
    if r.ttft is not None:
        parts.append(f"first token {r.ttft:.2f}s")
    if r.elapsed is not None:
        parts.append(f"total {r.elapsed:.2f}s")
    return " · ".join(parts)


def _tokens(r: Response | None) -> str:
    if r is None or not r.usage.total_tokens:
        return ""
    u = r.usage
    out = f"{u.prompt_tokens:,} / {u.completion_tokens:,}"
    return out + (f" ({u.reasoning_tokens:,} reasoning)" if u.reasoning_tokens else "")


def runs_table(runs: Sequence[Run]) -> str:
    """The runs, newest first, as an HTML table: settings, first line, tokens, latency."""
    if not runs:
        return "<i style='opacity:.7'>No runs yet: press Run, change a setting, run again.</i>"
    head = "".join(
        f"<th style='text-align:left;padding:2px 8px'>{h}</th>"
        for h in ("#", "settings", "first line", "tokens in / out", "latency", "state")
    )
    rows = []
    for run in reversed(runs):
        cells = (
            str(run.number),
            summary(run.settings),
            run.first_line,
            _tokens(run.response),
            _latency(run.response),
            run.state,
        )
        rows.append(
            "<tr>"
            + "".join(
                f"<td style='text-align:left;padding:2px 8px;vertical-align:top'>{html.escape(c)}</td>"
                for c in cells
            )
            + "</tr>"
        )
    return (
        f"<table class='qwen-runs-table' style='border-collapse:collapse;font-size:.9em;line-height:1.35'>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def tools_line(tools: Sequence[Any]) -> str:
    """The panel's line naming the tools in use; each opens onto the schema the model reads and the
    function's code. Empty without tools."""
    if not tools:
        return ""
    import inspect
    import json

    items = []
    for tool in tools:
        spec = json.dumps(tool.spec["function"], indent=2, ensure_ascii=False)
        try:
            source = inspect.getsource(tool.function)
        except (OSError, TypeError):  # defined where no source is kept (a C function, exec)
            source = f"# the source of {tool.name} is not available"
        items.append(
            f"<details style='display:inline-block;vertical-align:top;margin-right:10px'>"
            f"<summary><code>{html.escape(tool.name)}</code></summary>"
            f"<div>{html.escape(tool.description)}</div>"
            f"<pre>{html.escape(spec)}</pre><pre>{html.escape(source)}</pre></details>"
        )
    return f"<div style='line-height:1.4'><b>tools</b> ({len(tools)}): {''.join(items)}</div>"


def with_tools(code: str, names: Sequence[str], max_steps: int | None) -> str:
    """The copied code with the tools the panel offers: ``--tools a,b`` on a ``%%qwen`` line,
    ``tools=[a, b]`` in an ``ask`` call (the functions by their notebook names)."""
    if not names:
        return code
    if code.startswith("%%qwen"):
        first, _, rest = code.partition("\n")
        steps = f" --max-steps {max_steps}" if max_steps is not None else ""
        return f"{first} --tools {','.join(names)}{steps}\n{rest}"
    steps = f"    max_steps={max_steps},\n" if max_steps is not None else ""
    return code.replace(").complete()", f"    tools=[{', '.join(names)}],\n{steps}).complete()")
