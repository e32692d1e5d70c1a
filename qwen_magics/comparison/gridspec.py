"""The grid of a comparison: which settings its cells have, what they are called, and its text form.

A parameter given a list varies; the cells are the cross product of the lists, or an explicit list
of configs. Labels name a cell by the settings that vary. ``parse_grid`` reads the text form the
``%%qwen --compare`` magic takes.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..api.params import PARAMS, parse_value
from ..errors import ParameterError

__all__ = [
    "FIXED_NAMES",
    "GRID_NAMES",
    "default_labels",
    "describe_setting",
    "expand",
    "parse_grid",
    "shared_settings",
]

GRID_NAMES = ("model", "system", *PARAMS)  # what may vary from cell to cell
# the same for every cell (a tool loop's options included: every cell may call the same functions)
FIXED_NAMES = (
    "messages",
    "api_key",
    "base_url",
    "tools",
    "max_steps",
    "parallel_tool_calls",
    "tool_choice",
    "confirm",
)


def describe_setting(name: str, value: Any) -> str:
    """``temperature=0.1``, ``thinking=on``, a model by its name: how a label names a setting."""
    if name == "model":
        return str(value) if value else "default model"
    if value is None:
        shown = "default"
    elif name == "thinking":
        shown = "on" if value else "off"
    elif name == "response_format" and isinstance(value, Mapping):
        shown = str(value.get("type"))
    elif name == "system":
        shown = repr(value if len(value) <= 24 else value[:23] + "…")
    elif isinstance(value, float):
        shown = f"{value:g}"
    else:
        shown = str(value)
    return f"{name}={shown}"


# -- cells -------------------------------------------------------------------------------------
def _values(name: str, value: Any) -> list[Any]:
    """A parameter's values: a list (or tuple, range, array) gives several, anything else one.

    ``stop`` takes a list of strings as one value, so several stop settings are a list of lists.
    """
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()  # numpy arrays and scalars become plain Python values
    if name == "messages":
        return [value]
    if name == "stop":
        several = isinstance(value, (list, tuple)) and any(isinstance(v, (list, tuple)) for v in value)
    else:
        several = isinstance(value, (list, tuple, range))
    if not several:
        return [value]
    values = [list(v) if isinstance(v, tuple) else v for v in value]
    if not values:
        raise ValueError(f"{name}=[] gives no value to compare; give one value or a list of them")
    return values


def _check_names(names: Sequence[str], where: str, allowed: Sequence[str]) -> None:
    for name in names:
        if name not in allowed:
            hint = "" if name not in FIXED_NAMES else " (it is the same for every cell: pass it to compare)"
            raise TypeError(
                f"{where} got an unknown parameter {name!r}{hint}; "
                f"parameters that can vary: {', '.join(allowed)}"
            )


def expand(
    params: Mapping[str, Any],
    configs: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The settings of the grid (one dict per cell) and the options every cell shares."""
    _check_names(list(params), "compare()", [*GRID_NAMES, *FIXED_NAMES])
    fixed = {k: v for k, v in params.items() if k in FIXED_NAMES}
    grid = {k: _values(k, v) for k, v in params.items() if k not in FIXED_NAMES}
    if configs is None:
        names = list(grid)
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*grid.values())], fixed
    if isinstance(configs, (Mapping, str)) or not isinstance(configs, Sequence) or not configs:
        raise TypeError(
            "configs= takes a non-empty list of dicts, one per cell: "
            "[{'temperature': 0.2}, {'model': 'qwen-plus', 'thinking': True}]"
        )
    several = [k for k, v in grid.items() if len(v) > 1]
    if several:
        raise ValueError(
            f"with configs=, the other parameters apply to every cell and take one value "
            f"each; {several[0]} was given several: put them in the configs instead"
        )
    shared = {k: v[0] for k, v in grid.items()}
    settings = []
    for i, entry in enumerate(configs):
        if not isinstance(entry, Mapping):
            raise TypeError(f"configs[{i}] must be a dict of parameters; got {type(entry).__name__}")
        _check_names(list(entry), f"configs[{i}]", GRID_NAMES)
        setting = dict(shared)
        for name, value in entry.items():
            values = _values(name, value)
            if len(values) != 1:
                raise ValueError(
                    f"configs[{i}] gives {name} several values; a config is one cell, "
                    "so write one config per value"
                )
            setting[name] = values[0]
        settings.append(setting)
    return settings, fixed


def shared_settings(settings: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The settings that are the same in every cell."""
    first = settings[0]
    return {k: v for k, v in first.items() if all(k in s and s[k] == v for s in settings[1:])}


def default_labels(settings: Sequence[Mapping[str, Any]], default_model: str) -> list[str]:
    """Name each cell by the settings that vary (those it sets); duplicates get ``#2``, ``#3``.

    A cell that sets none of them is named by its model, which is then the default one.
    """
    keys = list(dict.fromkeys(k for s in settings for k in s))
    varying = [k for k in keys if any(s.get(k) != settings[0].get(k) for s in settings)]
    labels = []
    for s in settings:
        shown = [k for k in varying if k in s] if varying else [k for k in keys if s.get(k) is not None]
        labels.append(", ".join(describe_setting(k, s[k]) for k in shown) or default_model)
    seen: dict[str, int] = {}
    for i, label in enumerate(labels):
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            labels[i] = f"{label} #{seen[label]}"
    return labels


def check_labels(labels: Sequence[str], n: int) -> list[str]:
    if isinstance(labels, str) or len(labels) != n:
        raise ValueError(
            f"labels= needs one label per cell: {n} cell{'s' * (n != 1)}, "
            f"got {1 if isinstance(labels, str) else len(labels)}"
        )
    out = [str(x) for x in labels]
    if len(set(out)) != n:
        raise ValueError("labels= must be distinct; they name the cells and the rows of .df")
    return out


def positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ParameterError(name, f"{name} must be a whole number of at least 1; got {value!r}")
    return value


# -- the grid as text -----------------------------------------------------------------------------
def _parse_value(name: str, raw: str) -> Any:
    if not raw.strip():
        raise ParameterError(name, f"{name} has an empty value; write {name}=value1,value2")
    return parse_value(name, raw)


_TOKEN = re.compile(r"""\s*((?:[^\s"']+|"[^"]*"|'[^']*')+)""")
_VALUE = re.compile(r""""([^"]*)"|'([^']*)'|([^,"']*)""")


def _split_values(name: str, text: str) -> list[str]:
    values, i = [], 0
    while True:
        m = _VALUE.match(text, i)
        assert m is not None  # the last alternative matches the empty string
        values.append(next(g for g in m.groups() if g is not None))
        i = m.end()
        if i == len(text):
            return values
        if text[i] != ",":
            raise ParameterError(
                name,
                f"{name}={text!r}: separate the values with commas and quote "
                "a value that holds quotes or spaces",
            )
        i += 1


def parse_grid(spec: str) -> dict[str, list[Any]]:
    """``"temperature=0.1,0.9 thinking=on,off model=qwen-plus,qwen3.5-flash"`` -> dict of lists.

    Numbers, ``on``/``off`` and ``default`` (not sent) become their Python values; quote a value
    that holds spaces or commas (``system="Be brief.","Be funny, please."``).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ParameterError("grid", 'the grid is empty; write e.g. "temperature=0.2,0.8 top_p=0.7,0.95"')
    # spaces around = and , are allowed outside quotes ("temperature = 0.1, 0.9")
    parts = re.split(r"(\"[^\"]*\"|'[^']*')", spec.strip())
    text = "".join(p if i % 2 else re.sub(r"\s*([=,])\s*", r"\1", p) for i, p in enumerate(parts))
    entries, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ParameterError("grid", f"the grid {spec!r} has an unclosed quote")
        entries.append(m.group(1))
        pos = m.end()
    grid: dict[str, list[Any]] = {}
    for entry in entries:
        name, sep, rest = entry.partition("=")
        if not sep or not name:
            raise ParameterError(
                "grid", f"{entry!r} in the grid is not name=value1,value2 (e.g. temperature=0.2,0.8)"
            )
        if name not in GRID_NAMES:
            raise ParameterError(name, f"unknown parameter {name!r} in the grid; use {', '.join(GRID_NAMES)}")
        if name in grid:
            raise ParameterError(
                name, f"{name} appears twice in the grid; list its values once, separated by commas"
            )
        grid[name] = [_parse_value(name, raw) for raw in _split_values(name, rest)]
    return grid
