"""Structured output: ask for JSON, get it parsed and validated, re-ask when it is wrong.

DashScope's JSON mode has traps: a message must mention "json"; it is refused while thinking is on
(and qwen3.6-plus thinks by default); JSON Schema mode exists only on some models. ``ask_json`` picks
the mode per model (``models.MODELS``): JSON Schema mode where supported, else JSON mode with the
schema in the system message, else (thinking forced on) plain text read by ``jsonextract``. A parse
or validation failure is sent back with the error, up to ``retries`` times; every token is counted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .. import config
from ..api import record
from ..api.client import AsyncClient, aask, ask
from ..api.params import Prompt, always_thinks
from ..api.response import Response, Usage
from ..errors import ParameterError, StructuredOutputError
from ..images import text_of
from ..models import get_model
from .jsonextract import ExtractionError, extract
from .jsonview import JSONView
from .records import find_records, schema_of, user_namespace
from .schema import Schema, SchemaMismatch, parse_schema

__all__ = ["aask_json", "ask_json", "parse_schema", "schema_of"]

Mode = Literal["json_schema", "json_object", "text"]

JSON_ONLY = "Answer with JSON only: one JSON object, no prose."
JSON_ONLY_MULTI = 'Answer with JSON only: an object {"items": [...]} whose items are the records, no prose.'
JSON_IN_TEXT = "Put the JSON answer in a ```json block."
REASK = "Your answer could not be used: {error}. Answer again with only the corrected JSON, nothing else."


@dataclass
class Plan:
    """One structured question: the request arguments for ``ask`` and what the answer must be."""

    prompt: Prompt | None
    kw: dict[str, Any]
    mode: Mode
    schema: Schema | None
    multi: bool
    notes: list[str] = field(default_factory=list)


def plan(
    prompt: Prompt | None,
    *,
    schema: Any = None,
    multi: bool = False,
    namespace: Mapping[str, Any] | None = None,
    **params: Any,
) -> Plan:
    """Choose the JSON mode for the model and write the instructions it needs."""
    if params.get("response_format") is not None:
        raise ParameterError(
            "response_format",
            "structured output chooses response_format itself; leave it out and pass schema= for a shape",
        )
    params.pop("response_format", None)
    sch = parse_schema(schema, namespace, multi=multi) if schema is not None else None
    multi = multi or (sch is not None and sch.multi)
    info = get_model(config.settings(model=params.get("model")).model)
    thinking = params.get("thinking")
    notes: list[str] = []
    mode: Mode
    if info is not None and info.thinking == "only":
        raise always_thinks(info, schema=sch is not None)  # JSON mode is refused while thinking
    if thinking is True or (thinking is None and params.get("budget") is not None):
        mode = "text"
        notes.append("thinking on: JSON read from the text")
    elif info is not None and not info.json_object:
        mode = "text"
        notes.append(f"{info.name} has no JSON mode: JSON read from the text")
    else:
        if info is not None and info.thinks_by_default and thinking is None:
            params["thinking"] = False
            notes.append("thinking off for JSON mode")
        mode = "json_schema" if sch is not None and info is not None and info.json_schema else "json_object"

    history = [dict(m) for m in params.pop("messages", None) or []]
    system = params.pop("system", None)
    if system is None:
        system = "\n\n".join(str(m["content"]) for m in history if m.get("role") == "system") or None
    said = [text_of(prompt) if prompt else "", system or "", *(_text(m.get("content")) for m in history)]
    mentions_json = any("json" in s.lower() for s in said)
    extra: list[str] = []
    if sch is not None and mode != "json_schema":
        extra.append(sch.instruction())
    elif multi and sch is None:
        extra.append(JSON_ONLY_MULTI)  # the shape, even when the prompt already says JSON
    elif not mentions_json:
        extra.append(JSON_ONLY)
    if mode == "text":
        extra.append(JSON_IN_TEXT)
    if extra:
        system = "\n\n".join(s for s in (system, *extra) if s)

    kw = dict(params, system=system, messages=history or None)
    if mode == "json_schema":
        assert sch is not None
        kw["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": sch.name, "schema": sch.json_schema, "strict": True},
        }
    elif mode == "json_object":
        kw["response_format"] = {"type": "json_object"}
    return Plan(prompt, kw, mode, sch, multi, notes)


def _text(content: Any) -> str:
    return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)


class Failure(Exception):
    """An answer that cannot be used, and whether asking again may help."""

    def __init__(self, message: str, *, retry: bool = True, resend: bool = False) -> None:
        super().__init__(message)
        self.retry = retry  # worth asking again
        self.resend = resend  # the same request again (the answer broke), not a correction


def read(response: Response, plan: Plan) -> tuple[Any, str]:
    """The validated value of a finished answer and its extraction path, or Failure."""
    if response.incomplete and not response.interrupted and response.finish_reason is None:
        raise Failure(f"the stream broke before the answer ended ({response.error})", resend=True)
    return read_text(response.text, response.finish_reason, plan)


def read_text(text: str, finish_reason: str | None, plan: Plan) -> tuple[Any, str]:
    """``read`` for an answer known by its text alone (a batch's output line), or Failure."""
    try:
        found = extract(text)
    except ExtractionError as exc:
        raise Failure(str(exc), retry=finish_reason != "length") from None
    value = found.value
    if plan.schema is not None:
        try:
            value = plan.schema.validate(value)
        except SchemaMismatch as exc:
            raise Failure(
                f"the JSON does not follow the schema: {exc}", retry=finish_reason != "length"
            ) from None
    elif plan.multi:
        try:
            records = find_records(value)
        except ValueError as exc:  # several lists: which one holds the records?
            raise Failure(str(exc)) from None
        if records is not None and records.tabular:
            value = records.rows
    return value, found.path


class Attempts:
    """The re-ask loop without I/O: what to send next, and what each answer means."""

    def __init__(self, plan: Plan, retries: int) -> None:
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise ParameterError("retries", f"retries must be a whole number >= 0; got {retries!r}")
        self.plan = plan
        self.retries = retries
        self.prompt: Prompt | None = plan.prompt
        self.kw = dict(plan.kw)
        self.usage = Usage()
        self.count = 0
        self.failures: list[str] = []
        self.earlier: list[Response] = []  # the answers asked again, in order
        self.started = time.perf_counter()

    def take(self, response: Response) -> bool:
        """True when the answer is usable (then ``finish`` it); False to ask again; raises when
        the retries are spent."""
        self.count += 1
        self.usage = self.usage + response.usage
        try:
            value, path = read(response, self.plan)
        except Failure as failure:
            if response.interrupted:  # keep what arrived, checked or not
                try:
                    found = extract(response.partial_text)
                except ExtractionError:
                    self._finish(response, None, None)
                else:
                    self._finish(response, found.value, found.path)
                return True
            self.failures.append(str(failure))
            if not failure.retry or self.count > self.retries:
                hint = (
                    " The answer was cut at max_tokens; raise max_tokens."
                    if response.finish_reason == "length"
                    else ""
                )
                raise StructuredOutputError(
                    f"no usable JSON after {self.count} attempt{'s' * (self.count > 1)}: "
                    f"{failure}.{hint} The answer text is on this error's .text.",
                    text=response.partial_text,
                    attempts=self.count,
                ) from None
            if not failure.resend:
                self.prompt = None
                self.kw["system"] = None  # it is in the messages now
                self.kw["messages"] = [
                    *response.messages,
                    {"role": "assistant", "content": response.text},
                    {"role": "user", "content": REASK.format(error=failure)},
                ]
            self.earlier.append(response)
            return False
        self._finish(response, value, path)
        return True

    def _finish(self, response: Response, value: Any, path: str | None) -> None:
        # the Response is finished; its totals now cover every attempt
        response.set_totals(self.usage, time.perf_counter() - self.started if self.count > 1 else None)
        response.data = value
        response.json_path = path
        response.json_attempts = self.count
        response.json_earlier = list(self.earlier)
        notes = list(self.plan.notes)
        if path in ("fenced", "balanced", "repaired"):
            notes.append(
                {
                    "fenced": "JSON from a fenced block",
                    "balanced": "JSON found in prose",
                    "repaired": "JSON repaired",
                }[path]
            )
        if self.failures:
            notes.append(f"{self.count} attempts ({self.failures[-1][:80]})")
        response.notes.extend(n for n in notes if n not in response.notes)
        if self.plan.schema is not None:
            response.schema = self.plan.schema
        record.annotate(response)  # the history's row of this attempt gains the data and schema


def ask_json(
    prompt: Prompt | None = None,
    *,
    schema: Any = None,
    multi: bool = False,
    retries: int = 2,
    show: bool = False,
    **params: Any,
) -> Response:
    """Ask for JSON; returns the Response with ``.data`` parsed (and validated against ``schema``).

    ``schema``: a Pydantic model, a JSON Schema dict, or llm's short form
    ``"name, order int: from the sun, facts.type"``; ``multi``: a list of such records. ``show``:
    display the JSON as it streams with a count of records, then the table (or pretty JSON) and the
    footer. Other keywords go to ``ask``.
    Raises StructuredOutputError (the text kept on ``.text``) when no attempt gave usable JSON.
    """
    p = plan(prompt, schema=schema, multi=multi, namespace=user_namespace(), **params)
    attempts = Attempts(p, retries)
    view = None
    if show:
        view = JSONView()
    while True:
        response = ask(attempts.prompt, **attempts.kw)
        if view is not None:
            view.run(response, attempt=attempts.count + 1, failures=attempts.failures)
        else:
            response.complete()
        try:
            done = attempts.take(response)
        except StructuredOutputError as exc:
            if view is not None:
                view.show_failure(response, str(exc))
            raise
        if done:
            if view is not None:
                view.show_result(response)
            return response
        if view is not None:
            view.asking_again(response, attempts.count + 1, attempts.failures)


async def aask_json(
    prompt: Prompt | None = None,
    *,
    schema: Any = None,
    multi: bool = False,
    retries: int = 2,
    client: AsyncClient | None = None,
    **params: Any,
) -> Response:
    """The async twin of ``ask_json`` (no display). Pass ``client=`` to share connections and backoff."""
    p = plan(prompt, schema=schema, multi=multi, namespace=user_namespace(), **params)
    return await arun(p, retries, client)


async def arun(p: Plan, retries: int, client: AsyncClient | None) -> Response:
    attempts = Attempts(p, retries)
    while True:
        response = await aask(attempts.prompt, client=client, **attempts.kw)
        await response.acomplete()
        if attempts.take(response):
            return response
