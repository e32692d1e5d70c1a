"""DataFrames out of JSON answers, and one structured question per row of a DataFrame.

``to_dataframe`` finds the records in an answer (a list of objects, an object whose one list of
objects holds them, or a single object as one row), flattens nested objects into dotted columns and
applies the schema's types. ``apply`` asks one question per row, concurrently on one AsyncClient
(so one 429 slows every request), keeps the order and puts each failure in an ``_error`` column.
pandas and tqdm are imported here, never when ``qwen_magics`` is imported.
"""

from __future__ import annotations

import asyncio
import string
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, ParameterError, QwenError
from .jsonextract import extract
from .schema import Schema, parse_schema
from .stream import Response, Usage

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Records", "apply", "find_records", "to_dataframe"]


@dataclass(frozen=True)
class Records:
    rows: list[Any]
    tabular: bool  # a list of records, not one object shown as one row


def find_records(data: Any) -> Records | None:
    """Where the records are: a list; the one list-of-objects value of an object ({"items": [...]});
    else the object itself as one row. None for a scalar."""
    if isinstance(data, list):
        return Records(data, all(isinstance(r, dict) for r in data) and bool(data))
    if not isinstance(data, dict):
        return None
    lists = [k for k, v in data.items() if isinstance(v, list) and v and all(isinstance(r, dict) for r in v)]
    if len(lists) > 1:
        raise ValueError(
            f"the object holds several lists of records ({', '.join(map(repr, lists))}); "
            f"choose one, e.g. to_dataframe(data[{lists[0]!r}])"
        )
    if lists:
        return Records(data[lists[0]], True)
    if len(data) == 1 and next(iter(data.values())) == []:
        return Records([], True)
    return Records([data], False)


def to_dataframe(x: Any, *, schema: Any = None) -> pd.DataFrame:
    """A DataFrame from a structured Response, JSON text, a dict or a list.

    Nested objects become dotted columns (``facts.type``); the schema's types become nullable
    dtypes (Int64, Float64, boolean, string). A Response from ``ask_json`` brings its own schema.
    """
    import pandas as pd

    from .structured import _namespace, schema_of

    sch = parse_schema(schema, _namespace()) if schema is not None else None
    if isinstance(x, Response):
        sch = sch or schema_of(x)
        data = x.data if x.data is not None else extract(x.text).value
    elif isinstance(x, str):
        data = extract(x).value
    else:
        data = x
    found = find_records(data)
    if found is None:
        raise TypeError(
            f"{type(data).__name__} is not tabular: to_dataframe needs a list of objects, "
            "an object holding one, or an object"
        )
    rows = found.rows
    if rows and not all(isinstance(r, dict) for r in rows):
        frame = pd.DataFrame({"value": rows})
    else:
        frame = pd.json_normalize(rows, sep=".") if rows else pd.DataFrame()
    return typed(frame, sch)


def typed(frame: pd.DataFrame, schema: Schema | None) -> pd.DataFrame:
    """The schema's columns first (added when missing), in the schema's types."""
    if schema is None:
        return frame
    dtypes = schema.dtypes()
    frame = frame.reindex(columns=[*dtypes, *(c for c in frame.columns if c not in dtypes)])
    for col, dtype in dtypes.items():
        if dtype is not None:
            try:
                frame[col] = frame[col].astype(dtype)  # type: ignore[call-overload]
            except (TypeError, ValueError):
                pass  # a value that does not fit stays as it came
    return frame


# -- one question per row ----------------------------------------------------------------------
def template_fields(template: str, columns: list[Any]) -> list[str]:
    """The ``{column}`` names of a template; a clear error for one that is not a column."""
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
    **params: Any,
) -> pd.DataFrame:
    """Ask ``template`` (with ``{column}`` fields filled from the row) for every row of ``df``.

    Returns a DataFrame with ``df``'s index, the schema's fields (or the answers' keys) as columns
    and an ``_error`` column (empty where the row worked). Rows run ``concurrency`` at a time;
    a failing row does not stop the others. Ctrl-C stops the rest and returns the rows done so far.
    ``.attrs["usage"]`` holds the tokens of all requests. Other keywords go to ``ask``.
    """
    import pandas as pd

    from .structured import Plan, _namespace, plan

    if not isinstance(df, pd.DataFrame):
        raise ParameterError("df", f"apply needs a pandas DataFrame; got {type(df).__name__}")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ParameterError("concurrency", f"concurrency must be a whole number >= 1; got {concurrency!r}")
    template_fields(template, list(df.columns))
    sch = parse_schema(schema, _namespace(), multi=multi) if schema is not None else None
    rows = df.to_dict("records") if len(df.columns) else [{} for _ in range(len(df))]
    prompts: list[str | None] = []
    outcomes: list[Any] = [None] * len(rows)
    for i, row in enumerate(rows):
        try:
            prompts.append(template.format_map({str(k): v for k, v in row.items()}))
        except (ValueError, KeyError, IndexError, AttributeError, TypeError) as exc:
            prompts.append(None)
            outcomes[i] = QwenError(f"the template does not fit this row: {type(exc).__name__}: {exc}")
    plans: list[Plan | None] = [
        plan(p, schema=sch, multi=multi, **params) if p is not None else None for p in prompts
    ]

    from tqdm.auto import tqdm

    bar = tqdm(total=len(rows), desc="qwen apply", unit="row", disable=not progress)
    try:
        interrupted = _run_in_thread(lambda: _ask_all(plans, outcomes, concurrency, retries, bar.update))
    finally:
        bar.close()
    return _frame(df, outcomes, sch, interrupted)


async def _ask_all(
    plans: list[Any], outcomes: list[Any], concurrency: int, retries: int, tick: Callable[[int], Any]
) -> None:
    from .client import AsyncClient
    from .structured import arun

    gate = asyncio.Semaphore(concurrency)
    async with AsyncClient() as client:

        async def one(i: int) -> None:
            if plans[i] is None:
                tick(1)
                return
            async with gate:
                try:
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


def _run_in_thread(make: Callable[[], Coroutine[Any, Any, None]]) -> bool:
    """Run the coroutine on a fresh loop in a worker thread (a kernel's loop is already running).
    Returns True when Ctrl-C stopped it."""
    loop = asyncio.new_event_loop()
    box: dict[str, Any] = {}

    def target() -> None:
        asyncio.set_event_loop(loop)
        task = loop.create_task(make())
        box["task"] = task
        try:
            loop.run_until_complete(task)
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    worker = threading.Thread(target=target, name="qwen-apply", daemon=True)
    worker.start()
    interrupted = False
    try:
        while worker.is_alive():
            worker.join(0.1)
    except KeyboardInterrupt:
        interrupted = True
        task = box.get("task")
        if task is not None and not loop.is_closed():
            loop.call_soon_threadsafe(task.cancel)
        worker.join()
    if "error" in box:
        raise box["error"]
    return interrupted


def _frame(df: pd.DataFrame, outcomes: list[Any], schema: Schema | None, interrupted: bool) -> pd.DataFrame:
    import pandas as pd

    records: list[dict[str, Any]] = []
    errors: list[Any] = []
    usage = Usage()
    for outcome in outcomes:
        if isinstance(outcome, Response):
            usage = usage + outcome.usage
            data = outcome.data
            records.append(data if isinstance(data, dict) else {"value": data})
            errors.append(pd.NA)
        else:
            records.append({})
            if outcome is None:
                errors.append("interrupted before this row was answered" if interrupted else "not asked")
            else:
                errors.append(str(outcome) or type(outcome).__name__)
    frame = pd.json_normalize(records, sep=".") if records else pd.DataFrame()
    frame.index = df.index
    frame = typed(frame, schema) if schema is not None else frame.convert_dtypes()
    frame["_error"] = pd.Series(errors, index=df.index, dtype="string")
    frame.attrs["usage"] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "total_tokens": usage.total_tokens,
    }
    if interrupted:
        frame.attrs["interrupted"] = True
    return frame
