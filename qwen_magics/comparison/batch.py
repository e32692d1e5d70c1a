"""``compare`` on DashScope's Batch API: every cell × sample a line, one batch per model.

The grid is expanded and checked exactly as live ``compare`` does (``compare._prepare``); each
sample's request is the body ``prepare`` makes for it without streaming (hybrid-thinking models get
``enable_thinking`` explicitly, as a batch needs), grouped into one file (and batch) per model. The
grid itself, without answers, is pickled into the job's folder (``grid.pkl``), so ``finish`` (the
"compare" finisher of ``qwen_magics.jobs``) can rebuild the same ``Comparison`` after a kernel
restart: each output line becomes the sample's Response (billed at half the list price), each
error line a failed Response carrying the API error, and the checks run on the answers as they
would live. Checks that cannot be pickled (a lambda) are kept for this session only.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import config as _config
from ..api.params import PARAMS
from ..api.request import prepare
from ..checks import Verdict, evaluate
from ..errors import ParameterError, QwenError
from ..models import get_model
from ..structured.batch import _loads, check_model, dumps, explicit_thinking
from .compare import Comparison, _dialect_of, failed_response, sample_settings

if TYPE_CHECKING:
    from ..jobs import Batch
    from ..jobs.files import Limits

__all__ = ["failed", "finish", "retry_failed", "submit"]

_checks: dict[str, Any] = {}  # job id -> checks that could not be pickled, for this session
SECRET = ("api_key",)


def body(cell_prompt: Any, model: str, setting: dict[str, Any], fixed: dict[str, Any]) -> dict[str, Any]:
    """One sample's request as live compare would send it, without streaming."""
    settings = _config.settings(api_key=fixed.get("api_key"), base_url=fixed.get("base_url"), model=model)
    params = {k: setting.get(k) for k in PARAMS}
    explicit_thinking(get_model(settings.model), params)
    prep = prepare(
        cell_prompt,
        settings=settings,
        system=setting.get("system"),
        messages=fixed.get("messages"),
        params=params,
        stream=False,
        extra={},
        dialect=_dialect_of(settings, setting),
    )
    out = prep.body
    out.pop("stream", None)
    return out


def submit(
    comparison: Comparison,
    prompt: Any,
    fixed: dict[str, Any],
    *,
    completion_window: str,
    limits: Limits | None,
) -> Batch:
    """Write each model's lines, save the grid, upload and create one batch per model."""
    from ..jobs import Batch
    from ..jobs.files import LIMITS, encode_line, write_parts
    from ..jobs.store import new_workdir

    if fixed.get("tools") is not None:
        raise ParameterError("tools", "a batch line cannot run a tool loop; compare live (batch=False)")
    for model in sorted({cell.model for cell in comparison.cells}):
        check_model(model)
    sizes = [0]

    def lines() -> Iterator[tuple[str, bytes, str]]:
        for k, cell in enumerate(comparison.cells):
            for i in range(comparison.samples):
                setting = sample_settings(cell.settings, i)
                one = body(cell.prompt if cell.prompt is not None else prompt, cell.model, setting, fixed)
                line = encode_line(f"{k}-{i}", one)
                sizes[0] += len(line)
                yield cell.model, line, f"cell {cell.label!r}" + (f" sample {i}" if i else "")

    folder = new_workdir()
    inputs = write_parts(lines(), folder, limits=limits or LIMITS, prefix="cells")
    checks = comparison.checks
    grid = _skeleton(comparison)
    try:
        blob = pickle.dumps(grid, protocol=pickle.HIGHEST_PROTOCOL)
        kept = True
    except (pickle.PicklingError, AttributeError, TypeError):
        grid.checks = []
        blob = pickle.dumps(grid, protocol=pickle.HIGHEST_PROTOCOL)
        kept = False
    (folder / "grid.pkl").write_bytes(blob)
    guess = _estimate(comparison, sizes[0])
    settings = _config.settings(api_key=fixed.get("api_key"), base_url=fixed.get("base_url"))
    state = {
        "fixed": {k: v for k, v in fixed.items() if k not in SECRET and _plain(v)},
        "checks_kept": kept,
        "offline": settings.offline,
    }
    job = Batch.submit(
        inputs,
        kind="compare",
        state=state,
        completion_window=completion_window,
        estimate=guess,
        settings=settings,
        workdir=folder,
    )
    if not kept and checks:
        _checks[job.id] = checks
    return job


def _plain(value: Any) -> bool:
    try:
        dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _skeleton(comparison: Comparison) -> Comparison:
    """The grid without answers, views or widgets: what the folder keeps."""
    grid = Comparison.__new__(Comparison)
    grid.__dict__.update(comparison.__dict__)
    grid.view = None
    grid.diff_toggle = None
    grid.cells = []
    for cell in comparison.cells:
        copy = type(cell).__new__(type(cell))
        copy.__dict__.update(cell.__dict__)
        copy.slots = [None] * comparison.samples
        copy.verdicts = list(cell.verdicts)
        grid.cells.append(copy)
    return grid


def _estimate(comparison: Comparison, size: int) -> float | None:
    """The batch price guessed before sending, as ``qwen_magics.batch`` guesses it."""
    from ..jobs.requests import ASSUMED_ANSWER, CHARS_PER_TOKEN
    from ..models import BATCH_DISCOUNT, estimate_cost

    lines = len(comparison.cells) * comparison.samples
    total = 0.0
    for cell in comparison.cells:
        out = cell.settings.get("max_tokens") or ASSUMED_ANSWER
        cost = estimate_cost(cell.model, size // CHARS_PER_TOKEN // max(lines, 1), out)
        if cost is None:
            return None
        total += cost * comparison.samples
    return total * BATCH_DISCOUNT


# -- merging back ----------------------------------------------------------------------------
def _grid(job: Batch) -> Comparison:
    grid: Comparison = pickle.loads((Path(job.dir) / "grid.pkl").read_bytes())
    if not grid.checks and job.id in _checks:
        from .evaluation import check_names

        grid.checks = _checks[job.id]
        grid.check_names = check_names(grid.checks)
    grid._started = time.perf_counter()
    for cell in grid.cells:
        cell.verdicts = [None] * grid.samples if grid.checks else []
    return grid


def finish(job: Batch) -> Comparison:
    """The Comparison live ``compare`` returns, from the job's lines and its saved grid."""
    from ..jobs.requests import read_line, request_bodies  # the job layer's reading of a line

    grid = _grid(job)
    offline = bool(job.state.get("offline"))
    sent = dict(request_bodies(job))
    waited = _duration(job)
    for which, raw in job.lines():
        line = _loads(raw)
        custom_id = str(line.get("custom_id"))
        cell_at, _, sample = custom_id.partition("-")
        cell = grid.cells[int(cell_at)]
        request = sent.get(custom_id) or {"model": cell.model}
        answer = read_line(which, line, request, job.base_url or "", offline)
        # its footer tells the job's time, not the moment it took to read the line from a file
        answer.ttft = None
        answer.set_totals(answer.usage, waited)
        answer.notes.append("batch")
        answer.sample = int(sample)
        cell.slots[int(sample)] = answer
    for cell in grid.cells:
        for i, slot in enumerate(cell.slots):
            if slot is None:
                cell.slots[i] = failed_response(
                    cell, QwenError("the batch returned no line for this sample"), time.perf_counter()
                )
            if grid.checks:
                cell.verdicts[i] = _judge(grid, cell, i)
    grid.elapsed = waited if waited is not None else time.perf_counter() - grid._started
    return grid


def _duration(job: Batch) -> float | None:
    """Seconds from the job's creation to its last part's end, by the service's clock (whole
    seconds: a job done within one counts one)."""
    started = [p.info.get("created_at") for p in job.parts]
    ended = [
        p.info.get(k) for p in job.parts for k in ("completed_at", "expired_at", "cancelled_at", "failed_at")
    ]
    starts = [t for t in started if isinstance(t, (int, float))]
    ends = [t for t in ended if isinstance(t, (int, float))]
    return max(float(max(ends) - min(starts)), 1.0) if starts and ends else None


def _judge(grid: Comparison, cell: Any, i: int) -> Verdict:
    return evaluate(grid.checks, cell.slots[i], cell.case, grid.threshold)


def failed(job: Batch) -> list[tuple[str, int, str]]:
    """(cell label, sample, error) of every sample that failed."""
    grid = finish(job)
    return [(c.label, i, str(r.error)) for c in grid.cells for i, r in enumerate(c.slots) if r and r.error]


def retry_failed(job: Batch, *, batch: bool = False) -> Comparison:
    """The comparison with its failed samples asked again, live (``batch`` is not offered for a grid:
    a failed sample is asked like any live one)."""
    if batch:
        raise ParameterError("batch", "a comparison's failed samples are asked again live; leave batch unset")
    from ..api.client import Client

    grid = finish(job)
    fixed = dict(job.state.get("fixed") or {})
    with Client(base_url=None if job.offline else job.base_url) as client:  # where the job went
        for cell in grid.cells:
            for i, slot in enumerate(cell.slots):
                if slot is not None and slot.error is None:
                    continue
                setting = sample_settings(cell.settings, i)
                try:
                    cell.slots[i] = client.ask(cell.prompt, stream=True, **fixed, **setting).complete()
                except QwenError as exc:
                    cell.slots[i] = failed_response(cell, exc, time.perf_counter())
                if grid.checks:
                    cell.verdicts[i] = _judge(grid, cell, i)
    return grid
