"""One structured question per row of a DataFrame.

``apply`` asks one question per row, concurrently on one AsyncClient (so one 429 slows every
request), keeps the order and puts each failure in an ``_error`` column. pandas and tqdm are
imported here on first use, never when ``qwen_magics`` is imported.
"""

from __future__ import annotations

import asyncio
import string
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..api import record
from ..api.client import AsyncClient
from ..api.response import Response, Usage
from ..display.live import MAX_RATE, Live, is_rich_frontend
from ..errors import ConfigError, ParameterError, QwenError
from ..runner import Background
from ..templating import Content, format_content
from .ask import Plan, arun, plan
from .records import typed, user_namespace
from .schema import Schema, parse_schema

NOT_DONE = "interrupted before this row was answered"

if TYPE_CHECKING:
    import pandas as pd

    from .batch import Limits

__all__ = ["apply"]


# -- one question per row ----------------------------------------------------------------------
def template_fields(template: Content, columns: list[Any]) -> list[str]:
    """The ``{column}`` names of a template (its text parts, when it has pictures too); a clear error
    for one that is not a column."""
    if isinstance(template, list):
        template = "".join(p.get("text", "") for p in template if p.get("type") == "text") or "?"
    if not isinstance(template, str) or not template.strip():
        raise ParameterError("template", "the template is the question for each row, with {column} fields")
    names = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ParameterError(
            "template", f"the template is not a format string ({exc}); write literal braces as {{{{ and }}}}"
        ) from None
    known = {str(c) for c in columns}
    for _, field, _, _ in parsed:
        if field is None:
            continue
        root = field.split(".", 1)[0].split("[", 1)[0]
        if not root or root.isdigit():
            raise ParameterError(
                "template", "name the column in each field, like {name}; write literal braces as {{ and }}"
            )
        if root not in known:
            raise ParameterError(
                "template", f"{{{root}}} is not a column; the columns are {', '.join(map(str, columns))}"
            )
        names.append(root)
    return names


def apply(
    df: pd.DataFrame,
    template: str,
    *,
    schema: Any = None,
    multi: bool = False,
    concurrency: int = 8,
    retries: int = 2,
    progress: bool = True,
    batch: bool = False,
    wait: bool = True,
    completion_window: str = "24h",
    limits: Limits | None = None,
    **params: Any,
) -> Any:
    """Ask ``template`` (with ``{column}`` fields filled from the row) for every row of ``df``.

    Returns a DataFrame with ``df``'s index, the schema's fields (or the answers' keys) as columns
    and an ``_error`` column (empty where the row worked). Rows run ``concurrency`` at a time;
    a failing row does not stop the others. Ctrl-C stops the rest and returns the rows done so far.
    ``.attrs["usage"]`` holds the tokens of all requests; ``rows_not_reported`` counts the answers
    whose server sent no usage (their tokens are unknown, not counted as zero). Other keywords go to ``ask``.

    ``batch=True`` sends the rows as a Batch API job instead (half the price, done within
    ``completion_window``; see ``structured/batch.py``): with ``wait`` the same DataFrame once it is
    done, else the ``qwen_magics.Batch`` at once (``job.result()`` gives the frame later, also after
    a kernel restart through ``Batch.resume(id)``). ``limits`` splits the rows into several files.
    """
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise ParameterError("df", f"apply needs a pandas DataFrame; got {type(df).__name__}")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ParameterError("concurrency", f"concurrency must be a whole number >= 1; got {concurrency!r}")
    template_fields(template, list(df.columns))
    sch = parse_schema(schema, user_namespace(), multi=multi) if schema is not None else None
    if batch:
        from .batch import submit

        job = submit(
            df,
            template,
            schema=sch,
            multi=multi,
            retries=retries,
            completion_window=completion_window,
            limits=limits,
            params=params,
        )
        return job.result(progress=progress) if wait else job  # result() waits, with the job's progress line
    if not wait or limits is not None or completion_window != "24h":
        raise ParameterError(
            "batch", "wait, completion_window and limits are the Batch API's; pass batch=True with them"
        )
    rows = df.to_dict("records") if len(df.columns) else [{} for _ in range(len(df))]
    prompts: list[Content | None] = []
    outcomes: list[Any] = [None] * len(rows)
    for i, row in enumerate(rows):
        try:  # a column of pictures gives each row's question its own
            prompts.append(format_content(template, {str(k): v for k, v in row.items()}))
        except (ValueError, KeyError, IndexError, AttributeError, TypeError) as exc:
            prompts.append(None)
            outcomes[i] = QwenError(f"the template does not fit this row: {type(exc).__name__}: {exc}")
    plans: list[Plan | None] = [
        plan(p, schema=sch, multi=multi, **params) if p is not None else None for p in prompts
    ]

    bar = Progress(len(rows), enabled=progress)
    interrupted = ask_rows(plans, outcomes, [str(label) for label in df.index], concurrency, retries, bar)
    out = _frame(df, outcomes, sch, interrupted)
    answers = [a for o in outcomes if isinstance(o, Response) for a in (*o.json_earlier, o)]
    bar.close(_summary(out, bar.elapsed, interrupted), record.metadata(answers))
    return out


def ask_rows(
    plans: list[Plan | None],
    outcomes: list[Any],
    labels: list[str],
    concurrency: int,
    retries: int,
    bar: Progress,
) -> bool:
    """Ask every plan live into ``outcomes`` (a Response or the row's exception), ``concurrency`` at
    a time, drawing ``bar``; True when Ctrl-C stopped it (the rows not asked stay None)."""
    # on a Background: a kernel's own loop is already running; this thread waits (where Ctrl-C
    # lands) and draws the progress
    work = Background[None]("qwen-apply")
    interrupted = False
    try:
        work.start(lambda: _ask_all(plans, outcomes, concurrency, retries, bar.tick, labels))
        try:
            while not work.wait(1.0 / MAX_RATE):
                bar.refresh()
        except KeyboardInterrupt:
            interrupted = True
            work.stop()
        work.result()  # ConfigError, ParameterError (the same for every row) or a bug of ours
    except BaseException:
        bar.close(None)
        raise
    return interrupted


class Progress:
    """apply's progress: in a notebook a live ``<progress>`` bar (no widget, so nothing is left to
    show "model not found" in a saved notebook) that ends as one line of text; in a terminal or a
    script, tqdm's text bar on stderr, then the same line on stdout."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.total, self.done, self.enabled = total, 0, enabled
        self.started = time.perf_counter()
        self.rich = enabled and is_rich_frontend()
        self.live = Live(quiet=0.25)
        self._drawn = -1
        self._bar: Any = None
        if enabled and not self.rich:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc="qwen apply", unit="row", leave=False, file=sys.stderr)
        self.refresh()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def tick(self, n: int) -> None:
        """A row finished (called from the worker thread; the caller's thread draws)."""
        self.done += n
        if self._bar is not None:
            self._bar.update(n)

    def refresh(self) -> None:
        if not self.rich or self.done == self._drawn or not self.live.due(self.done + 1):
            return
        self._drawn = self.done
        state = f"qwen apply: {self.done}/{self.total} rows · {self.elapsed:.1f}s"
        bar = f"<progress value='{self.done}' max='{max(self.total, 1)}' style='width:240px'></progress>"
        self.live.draw({"text/html": f"{bar} <span>{state}</span>", "text/plain": state}, size=self.done + 1)

    def close(self, summary: str | None, records: dict[str, Any] | None = None) -> None:
        """Take the bar away and leave ``summary`` (None: a failure says what happened instead),
        with the rows' ``records`` in its metadata, so the saved notebook can replay the job."""
        if self._bar is not None:
            self._bar.close()
        if self.rich and (self.live.shown or records):
            text = summary or f"qwen apply: stopped at {self.done}/{self.total} rows"
            self.live.draw({"text/plain": text}, metadata=records)
        elif self.enabled and summary:
            sys.stdout.write(summary + "\n")
            sys.stdout.flush()


def _summary(out: pd.DataFrame, elapsed: float, interrupted: bool) -> str:
    """What the progress bar leaves behind: rows, time, failures."""
    errors = out["_error"]
    skipped = int((errors == NOT_DONE).sum()) if interrupted else 0
    failed = int(errors.notna().sum()) - skipped
    parts = [f"qwen apply: {len(out)} row{'s' * (len(out) != 1)} in {elapsed:.1f}s"]
    if failed:
        parts.append(f"{failed} failed (see the _error column)")
    if interrupted:
        parts.append(f"interrupted: {skipped} not answered")
    return " · ".join(parts)


async def _ask_all(
    plans: list[Any],
    outcomes: list[Any],
    concurrency: int,
    retries: int,
    tick: Callable[[int], Any],
    labels: list[str],
) -> None:
    gate = asyncio.Semaphore(concurrency)
    group = record.new_group()  # the history's rows of this job, each labelled with its row's index
    async with AsyncClient() as client:

        async def one(i: int) -> None:
            if plans[i] is None:
                tick(1)
                return
            async with gate:
                try:
                    with _in_history(group, labels[i]):
                        outcomes[i] = await arun(plans[i], retries, client)
                except (ConfigError, ParameterError):
                    raise  # the same for every row: stop and say so once
                except Exception as exc:  # one row's failure is that row's _error
                    outcomes[i] = exc
            tick(1)

        tasks = [asyncio.ensure_future(one(i)) for i in range(len(plans))]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _in_history(group: str, label: str) -> Any:
    return record.context(source="apply", group_id=group, label=label)


def _frame(df: pd.DataFrame, outcomes: list[Any], schema: Schema | None, interrupted: bool) -> pd.DataFrame:
    import pandas as pd

    records: list[dict[str, Any]] = []
    errors: list[Any] = []
    usage = Usage()
    unreported = 0
    for outcome in outcomes:
        if isinstance(outcome, Response):
            usage = usage + outcome.usage
            unreported += not outcome.usage.reported
            records.append(record_of(outcome.data))
            errors.append(pd.NA)
        else:
            records.append({})
            if outcome is None:
                errors.append(NOT_DONE if interrupted else "not asked")
            else:
                errors.append(str(outcome) or type(outcome).__name__)
    frame = answers_frame(df.index, records, errors, schema)
    frame.attrs["usage"] = usage_totals(
        usage.prompt_tokens, usage.completion_tokens, usage.reasoning_tokens, usage.total_tokens, unreported
    )
    if interrupted:
        frame.attrs["interrupted"] = True
    return frame


def record_of(data: Any) -> dict[str, Any]:
    """A row's answer as the record its columns come from."""
    return data if isinstance(data, dict) else {"value": data}


def answers_frame(
    index: pd.Index, records: list[dict[str, Any]], errors: list[Any], schema: Schema | None
) -> pd.DataFrame:
    """apply's result: the records flattened into columns (``pd.json_normalize``'s, built faster), in
    the schema's types, with ``index`` and the ``_error`` column. Live and batch apply share it."""
    import pandas as pd

    if dict in {type(v) for r in records for v in r.values()}:
        records = [_flat(r) for r in records]
    frame = pd.DataFrame(records) if records else pd.DataFrame()
    frame.index = index
    frame = typed(frame, schema) if schema is not None else frame.convert_dtypes()
    frame["_error"] = pd.Series(errors, index=index, dtype="string")
    return frame


def _flat(record: dict[str, Any]) -> dict[str, Any]:
    """A record as ``pd.json_normalize(sep=".")`` flattens it: plain values first, then the nested
    objects' values under dotted names (an empty object leaves nothing)."""
    nested = {k: v for k, v in record.items() if type(v) is dict}
    if not nested:
        return record
    out = {k: v for k, v in record.items() if type(v) is not dict}
    stack: list[tuple[str, Any]] = list(reversed(nested.items()))
    while stack:
        key, value = stack.pop()
        if type(value) is dict:
            stack.extend((f"{key}.{k}", v) for k, v in reversed(value.items()))
        else:
            out[key] = value
    return out


def usage_totals(prompt: int, completion: int, reasoning: int, total: int, unreported: int) -> dict[str, int]:
    """``.attrs["usage"]`` of apply's frame."""
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "reasoning_tokens": reasoning,
        "total_tokens": total,
        "rows_not_reported": unreported,  # answers whose server sent no usage: unknown, not zero
    }
