"""``apply`` on DashScope's Batch API: rows to JSON lines, output lines back to apply's frame.

Building: everything a row's request shares (the checked parameters, the JSON mode and its
instructions, the thinking switch, which a batch must set explicitly on hybrid models) is worked out
once, by the same ``plan`` and ``prepare`` live ``apply`` uses, and serialised around a marker; a
row then only fills the template and splices its prompt's JSON between the two halves. Lines go
straight to files in the job's folder, split at the service's limits (``jobs.files``).

Merging: ``finish`` streams the job's output and error lines, maps each to its row by
``custom_id`` (the row's position, never the order of lines), reads every answer with the live
path's ``read_text`` and builds the frame with the live path's ``answers_frame``: the same
columns, dtypes, index and ``_error`` column as ``apply(batch=False)``. What it needs beyond the
lines is saved in the job's folder at submit time (``rows.pkl``: the frame's index, pickled; the
schema as JSON, the template and parameters in the job's state), so a job resumed after a kernel
restart merges from its folder alone. This module is the "apply" finisher of ``qwen_magics.jobs``.
"""

from __future__ import annotations

import gc
import json
import pickle
import string
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from json.encoder import encode_basestring
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import config, simulator
from ..api import dialect as _dialects
from ..api.batches import ENDPOINT
from ..api.params import PARAMS, check_text
from ..api.request import prepare
from ..errors import ParameterError, QwenError
from ..models import BATCH_DISCOUNT, ModelInfo, estimate_cost, get_model
from ..templating import Content, format_content
from .ask import Failure, Plan, plan, read_text
from .schema import Schema

if TYPE_CHECKING:
    import pandas as pd

    from ..jobs import Batch
    from ..jobs.files import Limits

__all__ = ["failed", "finish", "retry_failed", "submit"]

MARKER = "@@qwen-magics-row@@"  # the user message's place in the shared body
NOT_ANSWERED = "the batch returned no line for this row"
RETRY_CONCURRENCY = 8  # live apply's default
SECRET = ("api_key",)  # never saved in the job's folder

try:  # orjson reads a line five times faster; the standard library reads it the same
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - orjson comes with the data extra
    from json import loads as _loads  # type: ignore[assignment]


@contextmanager
def _no_gc() -> Iterator[None]:
    """Tens of thousands of small dicts kept alive: the cycle collector would rescan them all, over
    and over, for cycles they cannot form (a third of a merge's time)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


# -- which models ----------------------------------------------------------------------------
def check_model(model: str) -> None:
    """A model the table knows to take no batch jobs is refused before anything is sent, naming
    those that do (the job layer's check); one the table does not know is the service's to judge."""
    from ..jobs.requests import check_models

    check_models([model])


def explicit_thinking(info: ModelInfo | None, params: dict[str, Any]) -> None:
    """A batch takes no model default (reference §11): a hybrid model's ``thinking`` is set to what
    the live request would leave it at (its default, or on when a ``budget`` is given)."""
    if info is not None and info.thinking == "hybrid" and params.get("thinking") is None:
        params["thinking"] = info.thinks_by_default or params.get("budget") is not None


# -- the shared body -------------------------------------------------------------------------
class Request:
    """The request every row shares, serialised once around the user message's place."""

    def __init__(
        self, settings: config.Settings, schema: Schema | None, multi: bool, params: dict[str, Any]
    ) -> None:
        self.settings, self.schema, self.multi = settings, schema, multi
        self.params = params
        self.info = get_model(settings.model)
        self.dialect = _dialects.known(settings)
        # the instructions depend on whether the row's prompt says "json": one body for each case
        self.halves = {False: self._halves(MARKER), True: self._halves(MARKER + " json")}
        self.json_sensitive = self.halves[False] != self.halves[True]
        self._pieces = {loud: (_MIDDLE + head, tail + b"}") for loud, (head, tail) in self.halves.items()}

    def _plan(self, prompt: Content) -> Plan:
        p = plan(prompt, schema=self.schema, multi=self.multi, **self.params)
        explicit_thinking(self.info, p.kw)
        return p

    def body(self, prompt: Content) -> dict[str, Any]:
        """One row's body as ``prepare`` makes it for a non-streaming request, without ``stream``."""
        kw = dict(self._plan(prompt).kw)
        for name in ("model", "api_key", "base_url"):
            kw.pop(name, None)
        if kw.get("tools") is not None:
            raise ParameterError("tools", "a batch line cannot run a tool loop; ask live (batch=False)")
        system = kw.pop("system", None)
        messages = kw.pop("messages", None)
        kw.pop("stream", None)
        params = {k: kw.pop(k, None) for k in PARAMS}
        prep = prepare(
            prompt,
            settings=self.settings,
            system=system,
            messages=messages,
            params=params,
            stream=False,
            extra=kw,
            dialect=self.dialect,
        )
        body = prep.body
        body.pop("stream", None)
        return body

    def _halves(self, marker: str) -> tuple[bytes, bytes]:
        head, found, tail = dumps(self.body(marker)).partition(encode_basestring(marker))
        if not found:  # pragma: no cover - the marker is the user message's whole content
            raise QwenError("the row's place was not found in the shared request")
        return head.encode(), tail.encode()

    def line(self, position: int, prompt: Content) -> bytes:
        """One JSON line (without its line break): the shared halves around the prompt, or the whole
        body for a prompt with pictures (which ``prepare`` may scale)."""
        if isinstance(prompt, str):
            if not (prompt.isascii() and prompt.isprintable()):  # else nothing check_text refuses
                check_text("prompt", prompt)
            if not prompt.strip():
                raise ParameterError("prompt", "the prompt is empty; write the question to ask")
            head, tail = self._pieces[self.json_sensitive and "json" in prompt.lower()]
            return b"".join((_OPEN, b"%d" % position, head, encode_basestring(prompt).encode(), tail))
        return b"".join((_OPEN, b"%d" % position, _MIDDLE, dumps(self.body(prompt)).encode(), b"}"))


_OPEN = b'{"custom_id":"'
_MIDDLE = b'","method":"POST","url":"' + ENDPOINT.encode() + b'","body":'


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# -- the rows' prompts -----------------------------------------------------------------------
def prompts(df: pd.DataFrame, template: Content) -> Iterator[Content | Exception]:
    """Each row's prompt as live apply fills it (``format_content``), or the error that row gets.
    A text template of plain ``{column}`` fields is filled column by column, where the values are
    text or numbers (``format`` shows those as ``str`` does); other rows go the general way."""
    names = {str(c): c for c in df.columns}
    parsed = list(string.Formatter().parse(template)) if isinstance(template, str) else None
    simple = parsed is not None and all(
        name is None or (name in names and not spec and not conv) for _, name, spec, conv in parsed
    )
    if not simple:
        rows = df.to_dict("records") if len(df.columns) else [{} for _ in range(len(df))]
        for row in rows:
            yield _filled(template, {str(k): v for k, v in row.items()})
        return
    assert parsed is not None
    columns = {name: df[names[name]].tolist() for _, name, _, _ in parsed if name is not None}
    texts: dict[str, list[str | None]] = {}
    odd: set[int] = set()
    for name, values in columns.items():
        plain = [v if type(v) is str else str(v) if type(v) in (int, float) else None for v in values]
        odd.update(i for i, v in enumerate(plain) if v is None)
        texts[name] = plain
    filled = [""] * len(df)
    for literal, field, _, _ in parsed:
        if field is None:
            filled = [f + literal for f in filled]
        else:
            filled = [f + literal + (t or "") for f, t in zip(filled, texts[field], strict=True)]
    for i, prompt in enumerate(filled):
        yield _filled(template, {name: values[i] for name, values in columns.items()}) if i in odd else prompt


def _filled(template: Content, row: dict[str, Any]) -> Content | Exception:
    try:
        return format_content(template, row)
    except (ValueError, KeyError, IndexError, AttributeError, TypeError) as exc:
        return QwenError(f"the template does not fit this row: {type(exc).__name__}: {exc}")


# -- writing the files -----------------------------------------------------------------------
class _Row:
    """The row being written, named only when a message needs it (the line writer names a line it
    refuses at once, while it is the current row)."""

    __slots__ = ("i", "names")

    def __init__(self, names: list[Any]) -> None:
        self.names, self.i = names, 0

    def __str__(self) -> str:
        return f"row {self.names[self.i]!r}"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


@dataclass
class Written:
    inputs: list[tuple[Path, str, int]]  # (file, model, lines): what Batch.submit takes
    skipped: dict[int, str]  # row position -> why it has no line
    bytes: int


def write_lines(
    request: Request, rows: Iterable[Content | Exception], labels: Any, folder: Path, limits: Limits
) -> Written:
    """Every row's line into the folder's input files (``jobs.files.write_parts``: split at the
    limits, a line over the line limit refused naming its row before anything is uploaded)."""
    from ..jobs.files import write_parts

    skipped: dict[int, str] = {}
    model = request.settings.model
    row = _Row(labels.tolist() if hasattr(labels, "tolist") else list(labels))
    line_of = request.line

    def lines() -> Iterator[tuple[str, bytes, str]]:
        for i, prompt in enumerate(rows):
            if isinstance(prompt, Exception):
                skipped[i] = str(prompt)
                continue
            row.i = i
            try:
                line = line_of(i, prompt)
            except ParameterError as exc:
                raise ParameterError(exc.param, f"{row}: {exc}") from None
            yield model, line, row  # type: ignore[misc]  # named (the current row) only when refused

    with _no_gc():
        inputs = write_parts(lines(), folder, limits=limits, prefix="rows")
    return Written(inputs, skipped, sum(path.stat().st_size for path, _, _ in inputs))


def estimate(model: str, written: Written, rows: int, max_tokens: int | None) -> float | None:
    """The batch price guessed before sending, as ``qwen_magics.batch`` guesses it: a token per
    CHARS_PER_TOKEN bytes of the lines in, ``max_tokens`` (else ASSUMED_ANSWER) a row out, at the
    batch discount."""
    from ..jobs.requests import ASSUMED_ANSWER, CHARS_PER_TOKEN

    live = estimate_cost(model, written.bytes // CHARS_PER_TOKEN, rows * (max_tokens or ASSUMED_ANSWER))
    return None if live is None else live * BATCH_DISCOUNT


# -- submitting ------------------------------------------------------------------------------
def submit(
    df: pd.DataFrame,
    template: Content,
    *,
    schema: Schema | None,
    multi: bool,
    retries: int,
    completion_window: str,
    limits: Limits | None,
    params: dict[str, Any],
) -> Batch:
    """Build the lines of ``df``'s rows, save what the merge needs, upload and create the batch(es)."""
    from ..jobs import Batch
    from ..jobs.files import LIMITS
    from ..jobs.store import new_workdir

    simulator.ensure(explicit=bool(params.get("api_key") or params.get("base_url")))
    settings = config.settings(
        api_key=params.get("api_key"), base_url=params.get("base_url"), model=params.get("model")
    )
    check_model(settings.model)
    request = Request(settings, schema, multi, dict(params))
    labels = df.index
    folder = new_workdir()
    written = write_lines(request, prompts(df, template), labels, folder, limits or LIMITS)
    if not written.inputs:
        raise ParameterError("df", "no row makes a request (the template fits none); nothing was sent")
    with open(folder / "rows.pkl", "wb") as f:
        pickle.dump(df.index, f, protocol=pickle.HIGHEST_PROTOCOL)
    state = {
        "rows": len(df),
        "template": template if isinstance(template, str) else None,
        "schema": schema_state(schema),
        "multi": multi,
        "retries": retries,
        "params": {k: v for k, v in params.items() if k not in SECRET},
        "skipped": {str(i): why for i, why in written.skipped.items()},
        "offline": settings.offline,  # the simulator's answers have no price
    }
    guess = estimate(settings.model, written, len(df) - len(written.skipped), params.get("max_tokens"))
    return Batch.submit(
        written.inputs,
        kind="apply",
        state=state,
        completion_window=completion_window,
        estimate=guess,
        settings=settings,
        workdir=folder,
    )


def schema_state(schema: Schema | None) -> dict[str, Any] | None:
    """The schema as JSON, and where its Pydantic model lives (found again by name on resume)."""
    if schema is None:
        return None
    model = schema.model
    return {
        "name": schema.name,
        "record": schema.record,
        "multi": schema.multi,
        "defs": schema.defs,
        "model": f"{model.__module__}:{model.__qualname__}" if model is not None else None,
    }


def schema_from(saved: dict[str, Any] | None) -> Schema | None:
    """The saved schema; with its Pydantic model when that is still importable (or defined in the
    notebook) and gives the same JSON Schema, else the JSON Schema alone."""
    if saved is None:
        return None
    schema = Schema(saved["name"], saved["record"], saved["multi"], defs=saved.get("defs") or {})
    where = saved.get("model")
    if where:
        model = _find_model(where)
        if model is not None:
            record = model.model_json_schema()
            defs = record.pop("$defs", {})
            if record == schema.record and defs == schema.defs:
                return Schema(schema.name, schema.record, schema.multi, model=model, defs=schema.defs)
    return schema


def _find_model(where: str) -> Any:
    import importlib

    from .records import user_namespace

    module, _, qualname = where.partition(":")
    scope: Any = None
    if module == "__main__":
        scope = user_namespace() or vars(sys.modules.get("__main__", object()))
    else:
        try:
            scope = vars(importlib.import_module(module))
        except ImportError:
            return None
    head, *rest = qualname.split(".")
    obj = scope.get(head) if isinstance(scope, dict) else None
    for attr in rest:
        obj = getattr(obj, attr, None)
    return obj if isinstance(obj, type) else None


# -- merging back ----------------------------------------------------------------------------
@dataclass
class Merged:
    records: list[dict[str, Any]]
    errors: list[Any]
    failed: dict[int, str]  # answers that came but are not usable JSON: position -> answer text
    usage: list[int]  # prompt, completion, reasoning, total, rows without usage


class _Saved:
    """What the merge reads from the job: its state and the files saved at submit time."""

    def __init__(self, job: Batch) -> None:
        state = job.state
        self.root = Path(state.get("root") or job.dir)
        self.rows: int = state["rows"]
        self.schema = schema_from(state.get("schema"))
        self.multi: bool = state.get("multi", False)
        self.retries: int = state.get("retries", 2)
        self.params: dict[str, Any] = state.get("params") or {}
        self.template: str | None = state.get("template")
        self.skipped = {int(k): v for k, v in (state.get("skipped") or {}).items()}
        self.parent: str | None = state.get("parent")
        self.offline: bool = bool(state.get("offline"))
        multi = self.multi or bool(self.schema and self.schema.multi)
        self.plan = Plan(None, {}, "json_object", self.schema, multi)

    def index(self) -> pd.Index:
        with open(self.root / "rows.pkl", "rb") as f:
            return pickle.load(f)


def merge(lines: Iterable[tuple[str, bytes]], saved: _Saved, into: Merged | None = None) -> Merged:
    """Each line onto its row: the answer read as live apply reads it, or the line's error."""
    import pandas as pd

    n = saved.rows
    if into is None:
        into = Merged([{}] * n, [NOT_ANSWERED] * n, {}, [0, 0, 0, 0, 0])
        for i, why in saved.skipped.items():
            into.errors[i] = why
    with _no_gc():
        _merge_lines(lines, into, saved.plan, _loads, pd.NA)
    return into


def _merge_lines(lines: Iterable[tuple[str, bytes]], into: Merged, plan_: Plan, loads: Any, na: Any) -> None:
    from .apply import record_of

    records, errors, failures = into.records, into.errors, into.failed
    prompt = completion = reasoning = total = unreported = 0
    for kind, raw in lines:
        line = loads(raw)
        i = int(line["custom_id"])
        try:
            response = line["response"]
            if kind != "output" or response["status_code"] != 200 or line["error"]:
                raise LookupError
            body = response["body"]
            choice = body["choices"][0]
            text = choice["message"]["content"] or ""
        except (LookupError, TypeError):  # an error line, or an answer without one
            records[i] = {}
            errors[i] = line_error(line)
            failures.pop(i, None)
            continue
        try:
            counts = body["usage"]
            prompt += counts["prompt_tokens"]
            completion += counts["completion_tokens"]
            total += counts["total_tokens"]
            details = counts.get("completion_tokens_details")
            if details:
                reasoning += details.get("reasoning_tokens") or 0
        except (LookupError, TypeError):
            unreported += 1
        finish_reason = choice.get("finish_reason")
        try:
            value = read_text(text, finish_reason, plan_)[0]
        except Failure as failure:
            hint = " The answer was cut at max_tokens; raise max_tokens." if finish_reason == "length" else ""
            records[i] = {}
            errors[i] = f"no usable JSON after 1 attempt: {failure}.{hint}"
            failures[i] = text
            continue
        records[i] = value if type(value) is dict else record_of(value)
        errors[i] = na
        if failures:
            failures.pop(i, None)
    for k, n in enumerate((prompt, completion, reasoning, total, unreported)):
        into.usage[k] += n


def line_error(line: dict[str, Any]) -> str:
    """An error line's message: the error the job layer reads from it (an APIError from the service's
    status and body, as live apply's ``_error`` shows it)."""
    from ..jobs.requests import read_line

    return str(read_line("error", line, {}, "").error or "the batch returned an error for this row")


def _merged(job: Batch) -> tuple[Merged, _Saved]:
    saved = _Saved(job)
    into = None
    if saved.parent:  # a retry batch: the parent's rows first, this batch's lines over them
        from ..jobs import Batch as _Batch

        into, _ = _merged(_Batch.resume(saved.parent))
    return merge(job.lines(), saved, into), saved


def _frame(job: Batch, merged: Merged, saved: _Saved) -> pd.DataFrame:
    from .apply import answers_frame, usage_totals

    frame = answers_frame(saved.index(), merged.records, merged.errors, saved.schema)
    frame.attrs["usage"] = usage_totals(*merged.usage)
    model = job.parts[0].model  # the model the job was sent to, not today's default
    prompt, completion, reasoning = merged.usage[:3]
    cost = None if saved.offline else estimate_cost(model, prompt, completion, reasoning)
    frame.attrs["batch"] = {
        "id": job.id,
        "cost": None if cost is None else cost * BATCH_DISCOUNT,
        "failed": len(merged.failed),
    }
    return frame


def summary(job: Batch, frame: pd.DataFrame, merged: Merged) -> str:
    errors = int(frame["_error"].notna().sum())
    parts = [f"qwen apply (batch {job.id}): {len(frame)} row{'s' * (len(frame) != 1)}"]
    if errors:
        parts.append(f"{errors} failed (see the _error column; job.retry_failed() asks them again)")
    if merged.failed:
        parts.append(f"{len(merged.failed)} answered without usable JSON (job.failed() lists them)")
    cost = frame.attrs["batch"]["cost"]
    if cost is not None:
        parts.append(f"${cost:.4f} at the batch price")
    return " · ".join(parts)


def finish(job: Batch) -> pd.DataFrame:
    """The frame live ``apply`` returns for the same rows, from the job's lines and folder."""
    merged, saved = _merged(job)
    frame = _frame(job, merged, saved)
    if job.progress:
        print(summary(job, frame, merged))
    return frame


def failed(job: Batch) -> pd.DataFrame:
    """The rows that have an ``_error``, with the answer text of those that came but were not
    usable JSON (``answer``; missing for rows the service failed)."""
    import pandas as pd

    merged, saved = _merged(job)
    index = saved.index()
    rows = [i for i, e in enumerate(merged.errors) if e is not pd.NA]
    return pd.DataFrame(
        {
            "_error": pd.array([merged.errors[i] for i in rows], dtype="string"),
            "answer": pd.array([merged.failed.get(i) for i in rows], dtype="string"),
        },
        index=index[rows],
    )


def retry_failed(job: Batch, *, batch: bool = False) -> pd.DataFrame:
    """Ask the failed rows again, live (as apply would, with its re-asking) or as a new batch, and
    return the whole frame with their new answers. Rows the template does not fit stay failed.
    Live answers live in the returned frame only; a retry batch is a job of its own, whose result
    is always the merged frame (``Batch.resume`` of its id gives it again)."""
    import pandas as pd

    merged, saved = _merged(job)
    again = [i for i, e in enumerate(merged.errors) if e is not pd.NA and i not in saved.skipped]
    if not again:
        return _frame(job, merged, saved)
    if batch:
        return _retry_as_batch(job, saved, again)
    from ..api.response import Response
    from .apply import NOT_DONE, Progress, ask_rows, record_of

    prompts_of = _prompts(job, saved, set(again))
    plans: list[Plan | None] = [
        plan(prompts_of[i], schema=saved.schema, multi=saved.multi, **saved.params) for i in again
    ]
    outcomes: list[Any] = [None] * len(again)
    labels = [str(label) for label in saved.index()[again]]
    bar = Progress(len(again), enabled=True)
    interrupted = ask_rows(plans, outcomes, labels, RETRY_CONCURRENCY, saved.retries, bar)
    for i, outcome in zip(again, outcomes, strict=True):
        if isinstance(outcome, Response):
            merged.records[i] = record_of(outcome.data)
            merged.errors[i] = pd.NA
            merged.failed.pop(i, None)
            u = outcome.usage
            for k, v in enumerate((u.prompt_tokens, u.completion_tokens, u.reasoning_tokens, u.total_tokens)):
                merged.usage[k] += v
        elif outcome is None:
            merged.errors[i] = NOT_DONE if interrupted else NOT_ANSWERED
        else:
            merged.errors[i] = str(outcome) or type(outcome).__name__
    frame = _frame(job, merged, saved)
    bar.close(summary(job, frame, merged) + (" · interrupted" if interrupted else ""))
    return frame


def _input_lines(job: Batch) -> Iterator[bytes]:
    """The lines this job sent, from the files kept in its folder."""
    for part in job.parts:
        if part.input_path is not None:
            with open(part.input_path, "rb") as f:
                yield from f


def _prompts(job: Batch, saved: _Saved, wanted: set[int]) -> dict[int, Content]:
    """The user prompt each wanted row was sent, read back from the input files."""
    found: dict[int, Content] = {}
    jobs = [job]
    parent = saved.parent
    while parent:
        from ..jobs import Batch as _Batch

        older = _Batch.resume(parent)
        jobs.append(older)
        parent = older.state.get("parent")
    for one in jobs:
        for raw in _input_lines(one):
            line = _loads(raw)
            i = int(line["custom_id"])
            if i in wanted and i not in found:
                found[i] = line["body"]["messages"][-1]["content"]
    return found


def _retry_as_batch(job: Batch, saved: _Saved, again: list[int]) -> pd.DataFrame:
    """A new batch of the failed rows' lines as they were sent; its merge starts from this job's."""
    from ..jobs import Batch as _Batch
    from ..jobs.files import write_parts
    from ..jobs.store import new_workdir

    wanted = set(again)
    model = job.parts[0].model

    def lines() -> Iterator[tuple[str, bytes, str]]:
        for raw in _input_lines(job):
            i = int(_loads(raw)["custom_id"])
            if i in wanted:
                wanted.discard(i)
                yield model, raw.rstrip(b"\n"), f"row {i}"

    folder = new_workdir()
    inputs = write_parts(lines(), folder, prefix="retry")
    state = dict(job.state)
    state.update(parent=job.id, root=str(saved.root))
    retry = _Batch.submit(
        inputs,
        kind="apply",
        state=state,
        completion_window=job.completion_window,
        workdir=folder,
        settings=job.settings,  # to the server the first job went to
    )
    return retry.result()
