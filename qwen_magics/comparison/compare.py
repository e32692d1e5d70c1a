"""Side-by-side comparison: one prompt, a grid of settings, every answer streaming next to the others.

``compare`` expands the grid (the cross product of list-valued parameters, or explicit ``configs``)
and sends each setting ``samples`` times through one ``AsyncClient``: one connection pool and one
shared backoff, so a 429 slows the whole comparison instead of each request hammering on its own.
The asyncio work runs on a ``runner.Background`` (its own event loop in a worker thread), so
``compare`` works inside Jupyter, whose kernel already runs a loop; the calling thread draws the grid
(see ``grid.py``); ``acompare`` is the same for code already on such a loop. A cell's failure stays
in that cell; a mistake found before sending (compare's own arguments, or a cell's setting that
``ask`` would refuse) raises, and nothing is sent.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from .. import config as _config
from .. import simulator
from ..api import dialect as _dialects
from ..api import record, toolloop
from ..api.client import AsyncClient, Client, Retry
from ..api.params import PARAMS, SEED_MAX, Prompt, build_messages
from ..api.request import prepare as _prepare_request
from ..api.response import Event, Response
from ..checks import Check, Verdict, evaluate, resolve
from ..errors import ParameterError, QwenError, StreamInterrupted
from ..runner import Background
from .diversity import Diversity, distinct_answers, diversity
from .evaluation import Case, check_names, fill_cases, variants
from .grid import MAX_RATE, GridView, grid_html, grid_text
from .gridspec import (
    GRID_NAMES,
    check_labels,
    default_labels,
    describe_setting,
    expand,
    parse_grid,
    positive,
    shared_settings,
)

if TYPE_CHECKING:
    import pandas as pd
    from ipywidgets import ToggleButton


__all__ = ["COMPARE_RETRY", "Cell", "Comparison", "acompare", "compare", "parse_grid"]

# DashScope sends no Retry-After. A burst of 429s clears in a fraction of a second, so retry soon
# and back off exponentially; the client's shared gate keeps the other cells from piling on.
COMPARE_RETRY = Retry(attempts=6, backoff=0.25, max_backoff=8.0, total=60.0)


class Cell:
    """One setting of the grid with its samples (a Response each, failures included)."""

    def __init__(
        self,
        label: str,
        settings: dict[str, Any],
        model: str,
        samples: int,
        *,
        prompt: Prompt | None = None,
        variant: str = "",
        case: Case | None = None,
        case_index: int | None = None,
    ) -> None:
        self.label = label
        self.settings = settings
        self.model = model
        self.slots: list[Response | None] = [None] * samples
        self.prompt = prompt  # this cell's prompt, its variant filled from its case
        self.variant = variant  # the prompt variant's name ("" with one prompt)
        self.setting = label  # the setting's label, shared by its variants and cases
        self.case = case
        self.case_index = case_index
        self.verdicts: list[Verdict | None] = []  # one per sample when the comparison has checks

    def __repr__(self) -> str:
        state = "done" if self.done else "running"
        return f"<Cell {self.label!r} {len(self.responses)}/{len(self.slots)} {state}>"

    @property
    def responses(self) -> list[Response]:
        return [r for r in self.slots if r is not None]

    @property
    def response(self) -> Response | None:
        """The first sample."""
        return self.slots[0]

    @property
    def text(self) -> str:
        """The first sample's answer so far."""
        r = self.slots[0]
        return r.partial_text if r is not None else ""

    @property
    def done(self) -> bool:
        """Every sample answered and, with checks, judged."""
        answered = all(r is not None and r.done for r in self.slots)
        return answered and all(v is not None for v in self.verdicts)

    @property
    def failed(self) -> list[Response]:
        return [r for r in self.responses if r.done and r.error is not None]

    @property
    def answers(self) -> list[str]:
        """The complete answers (not failed, not cut short)."""
        return [r.partial_text for r in self.responses if r.done and r.error is None]

    def distinct(self) -> list[tuple[str, int]]:
        """Distinct complete answers with their counts, most frequent first."""
        return distinct_answers(self.answers)

    def diversity(self) -> Diversity | None:
        return diversity(self.answers)

    def describe(self, shared: Mapping[str, Any] | None = None) -> str:
        """This cell's settings, leaving out those every cell shares."""
        skip = shared or {}
        return ", ".join(describe_setting(k, v) for k, v in self.settings.items() if k not in skip)


class Comparison:
    """The result of ``compare``: displays as the grid; ``.df`` for pandas; iterate for cells."""

    def __init__(
        self,
        prompt: Prompt | None,
        cells: list[Cell],
        samples: int,
        shared: dict[str, Any],
        checks: Sequence[Check] = (),
        threshold: float = 1.0,
    ) -> None:
        self.prompt = prompt
        self.checks = list(checks)
        self.check_names = check_names(self.checks)
        self.threshold = threshold
        self.cells = cells
        self.samples = samples
        self.shared = shared  # settings every cell has in common (shown once, above the grid)
        self.interrupted = False
        self.elapsed: float | None = None
        self.diff = False  # highlight words that differ from the first column
        self.diff_toggle: ToggleButton | None = None
        self.view: GridView | None = None
        self._started = time.perf_counter()

    # -- a sequence of cells ----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.cells)

    def __iter__(self) -> Iterator[Cell]:
        return iter(self.cells)

    def __getitem__(self, key: int | str) -> Cell:
        """By position or by label."""
        if isinstance(key, str):
            for cell in self.cells:
                if cell.label == key:
                    return cell
            raise KeyError(f"no cell labelled {key!r}; labels: {', '.join(c.label for c in self.cells)}")
        return self.cells[key]

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self.cells]

    @property
    def done(self) -> bool:
        return all(c.done for c in self.cells)

    @property
    def responses(self) -> list[Response]:
        """Every sample's Response, cell by cell, in the order of ``.df``'s rows."""
        return [r for c in self.cells for r in c.responses]

    @property
    def wall(self) -> float:
        return self.elapsed if self.elapsed is not None else time.perf_counter() - self._started

    @property
    def df(self) -> pd.DataFrame:
        """One row per setting and sample: label, every parameter, the answer and its metrics.

        The token counts are the server's and ``cost`` is computed from them. A stream stopped or
        cut before its usage chunk has no counts: they are missing (``<NA>``, ``cost`` NaN), not 0,
        so ``sum()`` and ``mean()`` skip them and ``isna()`` finds them; the ``Int64`` dtype keeps the
        counts whole numbers around the gaps."""
        import pandas as pd

        names = [n for n in GRID_NAMES if n == "model" or any(n in c.settings for c in self.cells)]
        rows = []
        for cell in self.cells:
            for i, r in enumerate(cell.slots):
                row: dict[str, Any] = {"label": cell.label, "sample": i}
                settings = sample_settings(cell.settings, i)
                row.update({n: settings.get(n) for n in names})
                row["model"] = cell.settings.get("model") or cell.model
                if r is None:
                    rows.append(row)
                    continue
                u = r.usage
                row.update(
                    text=r.partial_text,
                    reasoning=r.partial_reasoning,
                    prompt_tokens=u.prompt_tokens if u.reported else None,
                    completion_tokens=u.completion_tokens if u.reported else None,
                    reasoning_tokens=u.reasoning_tokens if u.reported else None,
                    ttft=r.ttft,
                    elapsed=r.elapsed,
                    tokens_per_second=r.tokens_per_second,
                    cost=r.cost,
                    error=str(r.error) if r.error is not None else None,
                )
                rows.append(row)
        columns = [
            "label",
            "sample",
            *names,
            "text",
            "reasoning",
            "prompt_tokens",
            "completion_tokens",
            "reasoning_tokens",
            "ttft",
            "elapsed",
            "tokens_per_second",
            "cost",
            "error",
        ]
        df = pd.DataFrame(rows, columns=columns)
        tokens = ["prompt_tokens", "completion_tokens", "reasoning_tokens"]
        df[tokens] = df[tokens].astype("Int64")
        df["cost"] = df["cost"].astype("float64")
        from .evaluation import add_evaluation

        return add_evaluation(self, df)

    # -- evaluation -------------------------------------------------------------------------------
    def summary(self) -> pd.DataFrame:
        """One row per prompt variant × setting: pass rate with its Wilson 95% interval, mean score,
        mean latency and total cost."""
        from .evaluation import summary

        return summary(self)

    def failures(self) -> pd.DataFrame:
        """Every check that failed or errored, with its reason: one row per check per answer."""
        from .evaluation import failures

        return failures(self)

    def plot(self, x: str = "temperature", y: str = "pass_rate", ax: Any = None) -> Any:
        """Pass rate (or ``y="score"``) against the parameter ``x``, one line per prompt variant;
        returns the matplotlib Axes."""
        from .evaluation import plot

        return plot(self, x, y, ax)

    # -- display ----------------------------------------------------------------------------------
    def show_diff(self, on: bool = True) -> Comparison:
        """Highlight (or stop highlighting) the words that differ from the first column."""
        self.diff = bool(on)
        if self.diff_toggle is not None and self.diff_toggle.value != self.diff:
            self.diff_toggle.value = self.diff  # its observer redraws
            return self
        if self.view is not None:
            self.view.redraw()
        return self

    def reference(self) -> str:
        """The first column's answer (its most frequent one), what the word diff compares with."""
        first = self.cells[0]
        groups = first.distinct()
        return groups[0][0] if groups else first.text

    def bundle(self) -> dict[str, str]:
        return {"text/html": grid_html(self), "text/plain": grid_text(self)}

    def _repr_html_(self) -> str:
        return grid_html(self)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        if self.view is not None and self.view.live:
            return  # compare() already shows this grid in the cell that ran it
        display(self.bundle(), raw=True)

    def __repr__(self) -> str:
        state = "interrupted" if self.interrupted else ("done" if self.done else "running")
        labels = " | ".join(self.labels[:4]) + (" | …" if len(self.labels) > 4 else "")
        from .grid import shape

        samples = f"{self.samples} sample{'s' * (self.samples != 1)}"
        return f"<Comparison {shape(self)} × {samples}, {state}: {labels}>"


# -- running it -----------------------------------------------------------------------------------
def failed_response(cell: Cell, error: QwenError, since: float, *, interrupted: bool = False) -> Response:
    """A Response that carries a cell's failure, so every sample of the grid is a Response."""
    given = {k: v for k, v in cell.settings.items() if k in PARAMS and v is not None}
    response = Response(
        request={"model": cell.model}, params=given, sent_at=since, head=[Event("error", data=error)]
    )
    response.interrupted = interrupted
    return response


class _Streams:
    """The asyncio side of a comparison: every sample's request, at most ``concurrency`` at once."""

    def __init__(
        self,
        comparison: Comparison,
        prompt: Prompt | None,
        fixed: dict[str, Any],
        concurrency: int,
        retry: Retry,
    ) -> None:
        self.comparison = comparison
        self.prompt = prompt
        self.fixed = fixed
        self.concurrency = concurrency
        self.retry = retry
        self.version = 0  # bumped on every change the grid should show
        self.group = record.new_group()  # the history's rows of this comparison
        # the checks' threads (started as needed), as many as requests may run: a judge asks a model,
        # and the loop's default pool (CPUs + 4 threads) would hold a 16-wide comparison's judges to 6
        self.checks_pool = ThreadPoolExecutor(concurrency, thread_name_prefix="qwen-checks")

    async def run(self) -> None:
        try:
            gate = asyncio.Semaphore(self.concurrency)
            cells = self.comparison.cells
            async with AsyncClient(retry=self.retry) as client:
                # sample-major order: every cell gets its first answer before any gets its second
                jobs = [
                    self._one(client, gate, cell, i) for i in range(self.comparison.samples) for cell in cells
                ]
                await asyncio.gather(*jobs, return_exceptions=True)
        finally:
            self.checks_pool.shutdown(wait=False, cancel_futures=True)  # Ctrl-C waits for no judge
            self.version += 1

    async def _one(self, client: AsyncClient, gate: asyncio.Semaphore, cell: Cell, i: int) -> None:
        with record.context(source="compare", group_id=self.group, label=cell.label, sample=i):
            await self._ask(client, gate, cell, i)
        if cell.verdicts:
            await self._judge(cell, i)

    async def _judge(self, cell: Cell, i: int) -> None:
        """The checks of one finished answer, in a worker thread: a judge calling the model (or a
        slow callable) holds neither the loop nor a request slot."""
        c, response = self.comparison, cell.slots[i]
        assert response is not None
        judge = functools.partial(
            contextvars.copy_context().run, evaluate, c.checks, response, cell.case, c.threshold
        )
        try:
            cell.verdicts[i] = await asyncio.get_running_loop().run_in_executor(self.checks_pool, judge)
        finally:
            self.version += 1

    async def _ask(self, client: AsyncClient, gate: asyncio.Semaphore, cell: Cell, i: int) -> None:
        async with gate:
            sent = time.perf_counter()
            try:
                settings = sample_settings(cell.settings, i)
                prompt = cell.prompt if cell.prompt is not None else self.prompt
                response = await client.ask(prompt, stream=True, **self.fixed, **settings)
            except asyncio.CancelledError:
                cell.slots[i] = failed_response(
                    cell, StreamInterrupted("interrupted before the answer started"), sent, interrupted=True
                )
                raise
            except QwenError as exc:
                cell.slots[i] = failed_response(cell, exc, sent)
                return
            except Exception as exc:  # anything unforeseen stays in its cell too
                cell.slots[i] = failed_response(cell, QwenError(f"{type(exc).__name__}: {exc}"), sent)
                return
            finally:
                self.version += 1
            cell.slots[i] = response
            try:
                async for event in response:
                    if event.type in ("text", "reasoning"):
                        self.version += 1
            except Exception:
                pass  # the Response marked itself incomplete and kept what arrived
            finally:
                self.version += 1


def sample_settings(settings: Mapping[str, Any], i: int) -> dict[str, Any]:
    """Sample ``i`` of a setting: with a seed, seed + i, so samples differ yet repeat exactly."""
    out = dict(settings)
    if i and isinstance(out.get("seed"), int):
        out["seed"] = (out["seed"] + i) % (SEED_MAX + 1)
    return out


def compare(
    prompt: Prompt | None,
    *,
    samples: int = 1,
    concurrency: int = 8,
    labels: Sequence[str] | None = None,
    configs: Sequence[Mapping[str, Any]] | None = None,
    prompts: Sequence[str] | Mapping[str, str] | None = None,
    cases: Any = None,
    checks: Any = None,
    threshold: float = 1.0,
    show: bool | None = None,
    retry: Retry | None = None,
    publish: Callable[[dict[str, str], bool], None] | None = None,
    cancel: threading.Event | None = None,
    batch: bool = False,
    wait: bool = True,
    completion_window: str = "24h",
    limits: Any = None,
    **params: Any,
) -> Any:
    """Ask one prompt with every setting of a grid, concurrently, and show the answers side by side.

    Each parameter (``model``, ``system``, ``temperature``, ``top_p``, ``top_k``,
    ``presence_penalty``, ``thinking``, ``budget``, ``max_tokens``, ``seed``, ``stop``,
    ``response_format``) takes one value or a list; the cells are the cross product of the lists, or
    exactly ``configs=[{...}, ...]``. ``messages``, ``api_key`` and ``base_url`` apply to every cell.
    ``samples`` asks each setting that many times (with a ``seed``, sample i uses seed + i, so the
    samples differ and the whole comparison repeats exactly); at most ``concurrency`` requests run at once.
    ``show`` (default: inside IPython) draws the live grid. Ctrl-C stops every cell and keeps what
    arrived. A cell that ``ask`` would refuse (a value out of range, settings that do not go together)
    raises ParameterError naming it, before anything is sent; a failure after sending (an API
    error, a broken stream) is shown in its cell and never raised. ``publish(bundle, update)``
    draws the live grid somewhere else than the cell's output (the parameter panel does), and setting
    ``cancel`` ends the comparison like Ctrl-C, for a caller running ``compare`` in a worker thread.

    It can also judge the answers: ``prompts`` (a list, or a dict name → template) are prompt
    variants, ``cases`` (a DataFrame or a list of dicts) fill each template's ``{column}`` fields,
    and ``checks`` (a check, a callable ``(response)`` / ``(response, case)``, or a list of them)
    score every answer as it finishes; an answer passes when its weighted score reaches
    ``threshold``. The grid is then variants × settings × cases × samples; ``.summary()``,
    ``.failures()`` and ``.plot()`` read the result.

        compare("Name a colour.", temperature=[0.1, 0.9], thinking=[True, False], samples=3).df
        compare("Capital of {country}?", cases=[{"country": "France", "city": "Paris"}],
                checks=lambda r, case: case["city"] in r.text, temperature=[0.2, 1.0]).summary()

    ``batch=True`` sends every cell × sample as a line of a Batch API job instead, one batch per
    model, at half the price (see ``comparison/batch.py``): the same Comparison once done
    (``wait``), else the ``qwen_magics.Batch`` at once, whose ``result()`` gives it later.
    """
    evaluation = (prompts, cases, checks, threshold)
    comparison, streams = _prepare(prompt, samples, concurrency, labels, configs, retry, params, evaluation)
    if batch:
        from .batch import submit

        job = submit(
            comparison, streams.prompt, streams.fixed, completion_window=completion_window, limits=limits
        )
        return job.result(progress=show is not False) if wait else job  # waits, with the job's progress line
    return _run(comparison, streams, show, publish, cancel)


async def acompare(
    prompt: Prompt | None,
    *,
    samples: int = 1,
    concurrency: int = 8,
    labels: Sequence[str] | None = None,
    configs: Sequence[Mapping[str, Any]] | None = None,
    prompts: Sequence[str] | Mapping[str, str] | None = None,
    cases: Any = None,
    checks: Any = None,
    threshold: float = 1.0,
    retry: Retry | None = None,
    publish: Callable[[dict[str, str], bool], None] | None = None,
    **params: Any,
) -> Comparison:
    """``compare`` for code already on an event loop off the kernel's thread (the parameter panel's
    Compare button, on its ``Background``): the grid is drawn through ``publish`` from this loop,
    at compare's rate, and cancelling the task stops every cell like Ctrl-C, keeping what arrived.
    """
    evaluation = (prompts, cases, checks, threshold)
    comparison, streams = _prepare(prompt, samples, concurrency, labels, configs, retry, params, evaluation)
    view = GridView(comparison, publish=publish) if publish is not None else None
    if view is not None:
        view.start()
    work = asyncio.ensure_future(streams.run())
    try:
        while not work.done():
            await asyncio.wait([work], timeout=1.0 / MAX_RATE)
            if view is not None:
                view.refresh(streams.version)
    except asyncio.CancelledError:
        comparison.interrupted = True  # like Ctrl-C: stop every cell, return what arrived
    finally:
        if not work.done():
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
    _settle(comparison, view)
    failure = None if work.cancelled() else work.exception()
    if failure is not None:
        raise failure  # a bug of ours reaches the caller
    return comparison


def _prepare(
    prompt: Prompt | None,
    samples: int,
    concurrency: int,
    labels: Sequence[str] | None,
    configs: Sequence[Mapping[str, Any]] | None,
    retry: Retry | None,
    params: dict[str, Any],
    evaluation: tuple[Any, Any, Any, float] = (None, None, None, 1.0),
) -> tuple[Comparison, _Streams]:
    """The grid's cells, each checked as ``ask`` would check it; any mistake raises, nothing is sent."""
    samples = positive("samples", samples)
    concurrency = positive("concurrency", concurrency)
    settings, fixed = expand(params, configs)
    if fixed.get("confirm") is True:  # the cells run on a worker: the question comes back to this thread
        from ..display.confirm import ask_before_call

        fixed["confirm"] = ask_before_call
    prompts, cases, checks, threshold = evaluation
    found_checks = resolve(checks)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise ParameterError("threshold", f"threshold is a score in [0, 1]; got {threshold!r}")
    named = variants(prompt, prompts)
    filled = fill_cases(named, cases)  # (variant, case index, case, prompt), every field checked
    for *_, text in filled:
        build_messages(text, messages=fixed.get("messages"))  # compare's own prompts: a mistake raises now
    prompt = filled[0][3]
    retry = retry or COMPARE_RETRY
    simulator.ensure(explicit=bool(fixed.get("api_key") or fixed.get("base_url")))  # QWEN_OFFLINE=1
    cells = []
    refused: list[tuple[int, ParameterError]] = []
    for i, setting in enumerate(settings):
        resolved = _config.settings(
            api_key=fixed.get("api_key"), base_url=fixed.get("base_url"), model=setting.get("model")
        )
        try:  # the same checks ask() makes, ConfigError (no key, bad URL) included
            found = _dialect_of(resolved, setting)
            _prepare_request(
                prompt,
                settings=resolved,
                system=setting.get("system"),
                messages=fixed.get("messages"),
                params={k: setting.get(k) for k in PARAMS},
                stream=True,
                extra={},
                dialect=found,
            )
            if fixed.get("tools") is not None:  # the loop's own refusals (a model without tools...)
                toolloop.prepare_loop(
                    {k: v for k, v in setting.items() if k in PARAMS},
                    resolved.model,
                    tools=fixed["tools"],
                    max_steps=fixed.get("max_steps", toolloop.DEFAULT_MAX_STEPS),
                    parallel_tool_calls=fixed.get("parallel_tool_calls"),
                    tool_choice=fixed.get("tool_choice"),
                    confirm=fixed.get("confirm"),
                )
        except ParameterError as exc:
            refused.append((i, exc))
        cells.append(Cell("", setting, resolved.model, samples))
    names = (
        check_labels(labels, len(cells))
        if labels is not None
        else default_labels(
            settings, _config.settings(api_key=fixed.get("api_key"), base_url=fixed.get("base_url")).model
        )
    )
    if refused:
        raise _refusal(refused, names)
    several = len(named) > 1
    grid = []
    for name_, _template in named:
        for cell, name in zip(cells, names, strict=True):
            for variant, index, case, text in filled:
                if variant != name_:
                    continue
                parts = [variant] if several else []
                if len(cells) > 1 or not (several or index is not None):
                    parts.append(name)
                if index is not None:
                    parts.append(f"case {index}")
                one = Cell(
                    " · ".join(parts),
                    cell.settings,
                    cell.model,
                    samples,
                    prompt=text,
                    variant=variant if several else "",
                    case=case,
                    case_index=index,
                )
                one.setting = name
                one.verdicts = [None] * samples if found_checks else []
                grid.append(one)
    shared = shared_settings(settings) if len(settings) > 1 else {}
    original = prompt if not several and filled[0][1] is None else None
    comparison = Comparison(original, grid, samples, shared, found_checks, float(threshold))
    return comparison, _Streams(comparison, prompt, fixed, concurrency, retry)


def _dialect_of(settings: _config.Settings, setting: Mapping[str, Any]) -> _dialects.Dialect | None:
    """The server's dialect when the cell's thinking or budget depend on it (asked once per server);
    None when they do not, or when the server cannot say: the cell then finds out, and shows why."""
    found = _dialects.known(settings)
    if found is None and _dialects.needed(setting):
        try:
            with Client() as client:
                found = client.dialect(settings)
        except QwenError:
            return None
    return found


def _refusal(refused: list[tuple[int, ParameterError]], names: list[str]) -> ParameterError:
    """One error for the cells that cannot be sent, naming each with what is wrong in it."""
    reasons: dict[str, list[str]] = {}
    for i, exc in refused:
        reasons.setdefault(str(exc), []).append(f'"{names[i]}"')
    parts = [f"cell{'s' * (len(cells) > 1)} {', '.join(cells)}: {why}" for why, cells in reasons.items()]
    if len(parts) == 1:
        return ParameterError("grid", f"the {parts[0]}; nothing was sent")
    return ParameterError("grid", "the " + ". The ".join(parts) + ". Nothing was sent")


def _run(
    comparison: Comparison,
    streams: _Streams,
    show: bool | None,
    publish: Callable[[dict[str, str], bool], None] | None = None,
    cancel: threading.Event | None = None,
) -> Comparison:
    """Stream on a Background while this thread draws the grid; Ctrl-C or ``cancel`` stops every cell."""
    if show is None:
        from IPython import get_ipython

        show = get_ipython() is not None
    view = GridView(comparison, publish=publish) if show or publish is not None else None
    from ..display.confirm import relay  # confirm: the cells' questions are asked from here

    with relay() as asking:
        work = Background[None]("qwen-compare").start(streams.run)
        try:
            if view is not None:
                view.start()
            while not work.wait(1.0 / MAX_RATE):
                if cancel is not None and cancel.is_set():
                    raise KeyboardInterrupt  # the caller's Stop button: the same path as Ctrl-C
                asking.serve()
                if view is not None:
                    view.refresh(streams.version)
        except KeyboardInterrupt:
            comparison.interrupted = True
            asking.close()  # a cell waiting on a question hears "no" and can stop
            work.stop()
    _settle(comparison, view)
    work.result()  # a bug of ours reaches the caller
    return comparison


def _settle(comparison: Comparison, view: GridView | None) -> None:
    """The end of a run: a Response in every slot, the wall time, the final grid."""
    for cell in comparison.cells:  # requests that never started (Ctrl-C while they queued)
        for i, slot in enumerate(cell.slots):
            if slot is None:
                cell.slots[i] = failed_response(
                    cell,
                    StreamInterrupted("interrupted before it was sent"),
                    time.perf_counter(),
                    interrupted=True,
                )
        for i, verdict in enumerate(cell.verdicts):
            if verdict is None:  # stopped before it was judged: no score, neither passed nor failed
                cell.verdicts[i] = Verdict()
    comparison.elapsed = time.perf_counter() - comparison._started
    if view is not None:
        view.finish()
