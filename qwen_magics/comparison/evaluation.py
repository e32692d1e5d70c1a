"""A comparison as an experiment: prompt variants, test cases filling them, and what the checks made of it.

``variants`` and ``fill_cases`` expand the two new axes before anything is sent (a template field no
case has is one ParameterError naming it and the columns); ``summary_rows`` is the pass rate, its
Wilson interval, mean score, latency and cost per variant × setting, in plain Python so the grid can
draw it without pandas; ``add_evaluation``, ``summary``, ``failures`` and ``plot`` are the DataFrame
and matplotlib views of it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..checks import Check, wilson
from ..errors import ParameterError
from ..structured.apply import template_fields
from ..templating import format_content

if TYPE_CHECKING:
    import pandas as pd

    from .compare import Cell, Comparison

__all__ = ["SummaryRow", "check_names", "fill_cases", "summary_rows", "variants"]

Case = Mapping[str, Any]


def variants(prompt: Any, prompts: Sequence[str] | Mapping[str, str] | None) -> list[tuple[str, Any]]:
    """The prompt variants by name: ``prompts`` (a list gives "prompt 1", "prompt 2", ...), or the prompt."""
    if prompts is None:
        return [("", prompt)]
    if prompt is not None:
        raise ParameterError("prompts", "give the prompt or prompts= (its variants), not both")
    if isinstance(prompts, Mapping):
        named = [(str(k), v) for k, v in prompts.items()]
    elif isinstance(prompts, (list, tuple)):
        named = [(f"prompt {i + 1}", v) for i, v in enumerate(prompts)]
    else:
        raise ParameterError(
            "prompts",
            f"prompts= is a list of templates or a dict name → template; got {type(prompts).__name__}",
        )
    if not named:
        raise ParameterError("prompts", "prompts= is empty; give at least one template")
    for name, text in named:
        if not isinstance(text, str) or not text.strip():
            raise ParameterError("prompts", f"the prompt variant {name!r} is not a non-empty string")
    return named


def _records(cases: Any) -> list[dict[str, Any]]:
    if hasattr(cases, "to_dict") and hasattr(cases, "columns"):  # a DataFrame
        return [{str(k): v for k, v in row.items()} for row in cases.to_dict("records")]
    if isinstance(cases, (str, bytes, Mapping)) or not isinstance(cases, Sequence):
        raise ParameterError("cases", f"cases= is a DataFrame or a list of dicts; got {type(cases).__name__}")
    out = []
    for i, case in enumerate(cases):
        if not isinstance(case, Mapping):
            raise ParameterError("cases", f"cases[{i}] is a {type(case).__name__}, not a dict of columns")
        out.append({str(k): v for k, v in case.items()})
    if not out:
        raise ParameterError("cases", "cases= is empty; give at least one case")
    return out


def fill_cases(named: list[tuple[str, Any]], cases: Any) -> list[tuple[str, int | None, Case | None, Any]]:
    """(variant, case index, case, filled prompt) for every variant and case, each field checked first."""
    if cases is None:
        return [(name, None, None, text) for name, text in named]
    records = _records(cases)
    columns = list(dict.fromkeys(k for r in records for k in r))
    out: list[tuple[str, int | None, Case | None, Any]] = []
    for name, text in named:
        if text is None:
            raise ParameterError("cases", "cases= fill the prompt's {fields}: give a prompt")
        needed = template_fields(text, columns)  # a field no case has: one error naming the columns
        for i, case in enumerate(records):
            missing = [f for f in needed if f not in case]
            if missing:
                raise ParameterError(
                    "cases",
                    f"case {i} has no {missing[0]!r} for {{{missing[0]}}}; its columns: {', '.join(case)}",
                )
            out.append((name, i, case, format_content(text, case) if needed else text))
    return out


def check_names(checks: Sequence[Check]) -> list[str]:
    """Each check's column name in ``.df``: its own, with ``#2``, ``#3`` for repeats."""
    seen: dict[str, int] = {}
    out = []
    for c in checks:
        seen[c.name] = seen.get(c.name, 0) + 1
        out.append(c.name if seen[c.name] == 1 else f"{c.name}#{seen[c.name]}")
    return out


# -- the summary ----------------------------------------------------------------------------------
@dataclass
class SummaryRow:
    variant: str
    setting: str
    n: int  # answers judged (a score, passed or not)
    passed: int
    mean_score: float | None
    mean_latency: float | None
    total_cost: float | None

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float] | None:
        """The Wilson 95% interval, when more than one answer was judged."""
        return wilson(self.passed, self.n) if self.n > 1 else None


def summary_rows(c: Comparison) -> list[SummaryRow]:
    groups: dict[tuple[str, str], list[Cell]] = {}
    for cell in c.cells:
        groups.setdefault((cell.variant, cell.setting), []).append(cell)
    rows = []
    for (variant, setting), cells in groups.items():
        verdicts = [v for cell in cells for v in cell.verdicts if v is not None and v.passed is not None]
        scores = [v.score for v in verdicts if v.score is not None]
        answered = [r for cell in cells for r in cell.responses if r.done and r.error is None]
        costs = [r.cost for cell in cells for r in cell.responses if r.cost is not None]
        rows.append(
            SummaryRow(
                variant,
                setting,
                len(verdicts),
                sum(1 for v in verdicts if v.passed),
                sum(scores) / len(scores) if scores else None,
                sum(r.elapsed or 0.0 for r in answered) / len(answered) if answered else None,
                sum(costs) if costs else None,
            )
        )
    return rows


def best_row(rows: list[SummaryRow]) -> int | None:
    """The row with the highest pass rate (then mean score); None when there is nothing to choose."""
    judged = [i for i, r in enumerate(rows) if r.n]
    if len(rows) < 2 or not judged:
        return None
    return max(judged, key=lambda i: (rows[i].pass_rate or 0.0, rows[i].mean_score or 0.0))


def summary(c: Comparison) -> pd.DataFrame:
    import pandas as pd

    records = []
    for r in summary_rows(c):
        low, high = r.interval or (None, None)
        records.append(
            {
                "variant": r.variant,
                "setting": r.setting,
                "n": r.n,
                "passed": r.passed,
                "pass_rate": r.pass_rate,
                "low": low,
                "high": high,
                "mean_score": r.mean_score,
                "mean_latency": r.mean_latency,
                "total_cost": r.total_cost,
            }
        )
    columns = ["variant", "setting", "n", "passed", "pass_rate", "low", "high"]
    columns += ["mean_score", "mean_latency", "total_cost"]
    df = pd.DataFrame(records, columns=columns)
    floats = ["pass_rate", "low", "high", "mean_score", "mean_latency", "total_cost"]
    df[floats] = df[floats].astype("float64")
    if not any(cell.variant for cell in c.cells):
        df = df.drop(columns="variant")
    return df


# -- the DataFrames -------------------------------------------------------------------------------
def add_evaluation(c: Comparison, df: pd.DataFrame) -> pd.DataFrame:
    """``.df`` with the prompt variant, the case (its index and columns) and each check's score,
    ``score`` and ``passed``: one row per cell and sample, as ``.df`` already is."""
    cells = [cell for cell in c.cells for _ in cell.slots]
    samples = [i for cell in c.cells for i in range(len(cell.slots))]
    front = 1  # after "label"
    if any(cell.variant for cell in c.cells):
        df.insert(front, "variant", [cell.variant for cell in cells])
        front += 1
    if any(cell.case_index is not None for cell in c.cells):
        df.insert(front, "case", [cell.case_index for cell in cells])
        front += 1
        columns = list(dict.fromkeys(k for cell in c.cells for k in (cell.case or {})))
        for name in columns:
            column = name if name not in df.columns else f"case.{name}"
            df.insert(front, column, [(cell.case or {}).get(name) for cell in cells])
            front += 1
    if c.checks:
        verdicts = [
            cell.verdicts[i] if cell.verdicts else None for cell, i in zip(cells, samples, strict=True)
        ]
        for k, name in enumerate(c.check_names):
            column = name if name not in df.columns else f"check.{name}"
            df[column] = [v.results[k].score if v is not None and v.results else None for v in verdicts]
            df[column] = df[column].astype("float64")
        df["score"] = [v.score if v is not None else None for v in verdicts]
        df["score"] = df["score"].astype("float64")
        df["passed"] = [v.passed if v is not None else None for v in verdicts]
        df["passed"] = df["passed"].astype("boolean")
    return df


def failures(c: Comparison) -> pd.DataFrame:
    import pandas as pd

    rows = []
    for cell in c.cells:
        for i, verdict in enumerate(cell.verdicts):
            answer = cell.slots[i]
            for name, result in zip(c.check_names, verdict.results if verdict else [], strict=False):
                if result.errored or result.passed is False:
                    rows.append(
                        {
                            "label": cell.label,
                            "variant": cell.variant,
                            "setting": cell.setting,
                            "case": cell.case_index,
                            "sample": i,
                            "check": name,
                            "score": result.score,
                            "errored": result.errored,
                            "reason": result.reason,
                            "text": answer.partial_text if answer is not None else "",
                        }
                    )
    columns = ["label", "variant", "setting", "case", "sample", "check", "score", "errored", "reason", "text"]
    return pd.DataFrame(rows, columns=columns)


def plot(c: Comparison, x: str, y: str, ax: Any) -> Any:
    """``y`` ("pass_rate" or "score") against the setting ``x``, one line per prompt variant."""
    if y not in ("pass_rate", "score"):
        raise ParameterError("y", f'y is "pass_rate" or "score"; got {y!r}')
    if not c.checks:
        raise ParameterError("checks", "plot() draws what the checks found: compare(..., checks=...) first")
    df = c.df
    if x not in df.columns:
        raise ParameterError(
            "x", f"{x!r} is not a parameter of this comparison; .df has {', '.join(df.columns)}"
        )
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots()
    value = df["passed"].astype("float64") if y == "pass_rate" else df["score"]
    data = df.assign(_y=value, variant=df["variant"] if "variant" in df.columns else "")
    for variant, group in data.groupby("variant", sort=False):
        means = group.groupby(x, sort=True)["_y"].mean()
        ax.plot(list(means.index), list(means.values), marker="o", label=str(variant) or y.replace("_", " "))
    ax.set_xlabel(x)
    ax.set_ylabel(y.replace("_", " "))
    ax.set_ylim(-0.05, 1.05)
    if "variant" in df.columns:
        ax.legend()
    return ax
