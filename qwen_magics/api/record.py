"""What the history keeps of an answer: its row, built when the Response finishes, and its context.

The client gives every Response it makes a ``recorder()`` as its ``on_finish``: one place that
every answer passes, whichever feature asked. The row is a snapshot of the request body and the
answer (never the headers, so never the key), queued for ``historydb``'s writer thread; building
it is the only work done on the asking thread. What the request alone cannot say is read when the
request is made: ``context``, a contextvar the features set around their requests (which
comparison or apply job, its label, the sample index), and the providers registered with
``add_provider`` (the magics give the notebook path and cell). Contextvars follow each asyncio
task, so the concurrent cells of one comparison each carry their own.

The fingerprint is a hash of the canonical request (model, messages with each picture as a digest
of its data URL, as the row keeps them, the parameters that shape the answer, the server's host
and the sample index): the key replay looks answers up by. It must be
the same in another process, so the host enters it as a name that outlives a port: the offline
simulator is ``offline`` and any loopback server (the emulator, a local vLLM) is ``localhost``,
whatever port it got this time; other servers are ``host[:port]``. ``cassette(response, shown)`` is
the record an answer's output carries in its metadata, so a saved notebook can replay itself. The
output's own plain text already holds the answer, so the record points into it (a span and a hash)
rather than repeating it, and keeps the fingerprints to 64 bits: a notebook's answers tell apart at
that length, and the display sends each answer about once. ``answers(output)`` reads records back.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .. import historydb, images
from ..config import REGIONS

if TYPE_CHECKING:
    from .response import Response

__all__ = [
    "METADATA_KEY",
    "SHORT",
    "add_provider",
    "annotate",
    "annotate_calls",
    "answers",
    "calls",
    "cassette",
    "content",
    "context",
    "fingerprint",
    "host_of",
    "metadata",
    "new_group",
    "notebook",
    "recorder",
    "request_fingerprint",
    "row",
    "sample",
]

log = logging.getLogger("qwen_magics")

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("qwen_history", default=None)
_providers: list[Callable[[], dict[str, Any]]] = []
# body fields that change how an answer arrives, not what it says
_DELIVERY = ("stream", "stream_options")
_REGION_OF = {urlsplit(url).netloc: name for name, url in REGIONS.items()}
_LOOPBACK = ("localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0")
OFFLINE_HOST = "offline"  # the simulator's host in a fingerprint: its port changes every start
ANY_HOST = "*"  # request_fingerprint: the same request to whichever server
METADATA_KEY = "qwen_magics"  # an output's metadata key for the records of its answers
SHORT = 16  # hex digits of a fingerprint an output's record keeps: 64 bits tell a notebook's answers apart
USAGE = ("prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens", "total_tokens")


@contextmanager
def context(**fields: Any) -> Iterator[None]:
    """Answers finished inside say ``fields`` (``source``, ``group_id``, ``label``, ``sample``)."""
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def new_group() -> str:
    """An id for the answers of one comparison or one apply job."""
    return os.urandom(8).hex()


def add_provider(provider: Callable[[], dict[str, Any]]) -> None:
    """``provider()`` adds fields to every row (the notebook and cell); it runs as an answer ends."""
    if provider not in _providers:
        _providers.append(provider)


def remove_provider(provider: Callable[[], dict[str, Any]]) -> None:
    if provider in _providers:
        _providers.remove(provider)


def host_of(base_url: str) -> str:
    """``host[:port]`` of a base URL: no scheme, path or userinfo."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    return f"{host}:{parts.port}" if parts.port else host


def _stable_host(host: str, offline: bool) -> str:
    """The host as a fingerprint names it: no port that changes from one start to the next."""
    if offline:
        return OFFLINE_HOST
    if host == ANY_HOST:
        return host
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    return "localhost" if name.lower() in _LOOPBACK else host


def fingerprint(request: dict[str, Any], host: str, sample: int = 0, *, offline: bool = False) -> str:
    """sha256 of the canonical request. The key is not part of a request body, so never of this.
    ``host`` as ``host_of`` gives it; a loopback port is dropped and the offline simulator is
    one name, so the fingerprint is the same in the next process."""
    canonical = {
        "model": request.get("model"),
        "messages": images.slim(request.get("messages") or []),
        "params": {k: v for k, v in request.items() if k not in ("model", "messages", *_DELIVERY)},
        "host": _stable_host(host, offline),
        "sample": sample,
    }
    text = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def request_fingerprint(request: dict[str, Any], sample: int = 0) -> str:
    """The fingerprint without the server: what lets a notebook recorded against Qwen Cloud replay
    offline, where no server of the user's own is set."""
    return fingerprint(request, ANY_HOST, sample)


def sample() -> int:
    """The sample index of a request made now (inside a comparison; 0 elsewhere)."""
    return int((_context.get() or {}).get("sample") or 0)


def content(message: dict[str, Any]) -> str:
    """A message's text: its text parts joined, each picture named (``[image 640×480]``)."""
    return images.text_of(message.get("content"))


def notebook() -> str | None:
    """The notebook asking now, when the front end said (the magics' provider knows)."""
    value = _fields().get("notebook")
    return str(value) if value else None


def _fields() -> dict[str, Any]:
    """What the context and the providers say of a request about to be sent."""
    fields: dict[str, Any] = {}
    for provider in _providers:
        try:
            fields.update(provider())
        except Exception:
            log.debug("a history context provider failed", exc_info=True)
    fields.update(_context.get() or {})
    return fields


def row(response: Response, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """The history's row of a finished Response (``historydb.COLUMNS`` as keys); ``fields``: its
    context, as ``_fields()`` found it when the request was made."""
    request = response.request
    messages = request.get("messages") or []
    fields = _fields() if fields is None else fields
    host = host_of(response.base_url)
    sample = int(fields.get("sample") or 0)
    u = response.usage
    reported = u.reported
    data = response.data
    return {
        **fields,
        "uid": os.urandom(12).hex(),
        "time": time.time(),
        "model": response.model or request.get("model"),
        "host": host,
        "region": _REGION_OF.get(host),
        "offline": int(response.offline),
        "prompt": next((content(m) for m in reversed(messages) if m.get("role") == "user"), None),
        "system": "\n\n".join(content(m) for m in messages if m.get("role") == "system") or None,
        "messages": _json(images.slim(messages)),  # a picture as its digest, not its bytes
        "params": _json({k: v for k, v in request.items() if k not in ("model", "messages")}),
        "text": response.text,
        "reasoning": response.reasoning or None,
        "prompt_tokens": u.prompt_tokens if reported else None,
        "completion_tokens": u.completion_tokens if reported else None,
        "reasoning_tokens": u.reasoning_tokens if reported else None,
        "cached_tokens": u.cached_tokens if reported else None,
        "total_tokens": u.total_tokens if reported else None,
        "ttft": response.ttft,
        "elapsed": response.elapsed,
        "cost": response.cost,
        "finish_reason": response.finish_reason,
        "incomplete": int(response.incomplete),
        "interrupted": int(response.interrupted),
        "error": str(response.error) if response.error is not None else None,
        "request_id": response.request_id,
        "attempts": response.attempts,
        "fingerprint": response.fingerprint or fingerprint(request, host, sample, offline=response.offline),
        "sample": sample,
        "data": _json(data) if data is not None else None,
        "tool_calls": _json(calls(response)) if response.tool_calls else None,
    }


INTERRUPTED = "interrupted"  # a call's error when Ctrl-C cut it off (or its question): a replay ends there


def calls(response: Response) -> list[dict[str, Any]]:
    """The calls an answer asked for and, once its tool loop ran them, what came of each: what a
    replay of the loop sends back to the model instead of calling the functions again. A call cut
    off by Ctrl-C keeps no outcome (a replay ends there rather than send "interrupted")."""
    out = []
    for call in response.tool_calls:
        item: dict[str, Any] = {"id": call.id, "name": call.name, "arguments": call.arguments}
        cut = (call.error or "").startswith(INTERRUPTED)  # also "interrupted before it was confirmed"
        if not cut and (call.result is not None or call.error is not None):
            item.update(result=call.result, error=call.error, seconds=_ms(call.seconds))
        out.append({k: v for k, v in item.items() if v is not None})
    return out


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def recorder() -> Callable[[Response], None] | None:
    """The ``on_finish`` of a request about to be sent: it writes the answer, with the context of
    this moment (the contextvar, the notebook cell), to the history in use now. None when the
    history is off."""
    try:
        where = historydb.path()
        if where is None:
            return None
        fields = _fields()
    except Exception:
        log.debug("could not read the history's settings", exc_info=True)
        return None

    def record(response: Response) -> None:
        try:
            values = row(response, fields)
            response.history_id = values["uid"]
            historydb.write(where, values)
        except Exception:  # the history must never cost an answer
            log.debug("could not record an answer in the history", exc_info=True)

    return record


def annotate(response: Response) -> None:
    """Structured output's parsed data and schema, added to the row of the attempt that gave them."""
    try:
        where = historydb.path()
        if where is None or response.history_id is None:
            return
        schema = getattr(response.schema, "json_schema", response.schema)
        historydb.update(
            where,
            response.history_id,
            {
                "data": _json(response.data) if response.data is not None else None,
                "schema": _json(schema) if schema is not None else None,
            },
        )
    except Exception:
        log.debug("could not add structured data to the history", exc_info=True)


def annotate_calls(response: Response) -> None:
    """A tool loop's step, once its calls ran: what came of each, added to the step's row."""
    try:
        where = historydb.path()
        if where is None or response.history_id is None or not response.tool_calls:
            return
        historydb.update(where, response.history_id, {"tool_calls": _json(calls(response))})
    except Exception:
        log.debug("could not add the tool calls to the history", exc_info=True)


def cassette(response: Response, shown: str | None = None) -> dict[str, Any] | None:
    """What an answer's output keeps of it (its metadata), so the saved notebook replays it: the
    fingerprints and the answer. None for an answer that is not whole (cut short, failed): a replay
    must not stand for it. Built from the request body and the answer, so never the key.

    ``shown`` is the output's own text/plain. Where it holds the answer's text or reasoning, the
    record keeps a span of it and a hash instead of a second copy (``answers`` reads it back): the
    saved notebook, and the display messages that made it, carry each answer about once."""
    if not response.done or response.incomplete or response.interrupted or not response.fingerprint:
        return None
    u = response.own_usage  # a re-asked answer's own, not the totals over its attempts
    item = {
        "fingerprint": response.fingerprint[:SHORT],
        "request": request_fingerprint(response.request, response.sample)[:SHORT],
        "sample": response.sample or None,
        "model": response.model,
        "text": _span(response.text, shown),
        "reasoning": _span(response.reasoning, shown) or None,
        "usage": [getattr(u, name) for name in USAGE] if u.reported else None,  # in USAGE's order
        "ttft": _ms(response.ttft),
        "elapsed": _ms(response.own_elapsed),
        "finish_reason": response.finish_reason,  # the request id stays in the history: no replay sends it
        "offline": response.offline or None,
        "tool_calls": calls(response) or None,
        "time": _ms(response.recorded_at if response.recorded_at is not None else time.time()),
    }
    return {k: v for k, v in item.items() if v is not None or k == "text"}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


def metadata(responses: Iterable[Response | None], shown: str | None = None) -> dict[str, Any] | None:
    """The display metadata of an output showing these answers (None when none is whole);
    ``shown``: that output's text/plain, as ``cassette`` takes it."""
    answered = [
        part for r in responses if r is not None for part in (r.step_responses or [r])
    ]  # a loop's steps
    records = [c for c in (cassette(r, shown) for r in answered) if c is not None]
    return {METADATA_KEY: {"answers": records}} if records else None


_SPAN_MIN = 64  # shorter texts are kept as they are: a span and its hash would not be smaller


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def _span(value: str | None, shown: str | None) -> str | dict[str, Any] | None:
    """``value``, or where ``shown`` holds it, ``{"plain": [start, stop], "sha256": ...}``."""
    if not value or not shown or len(value) < _SPAN_MIN:
        return value
    at = shown.find(value)
    if at < 0:
        return value
    return {"plain": [at, at + len(value)], "sha256": _digest(value)}


def answers(output: dict[str, Any]) -> list[dict[str, Any]]:
    """The records an output carries (a saved notebook's output, or a display message's content),
    with each text and reasoning read back from the output's own text/plain. A record whose span no
    longer matches its hash (the output was edited) is left out: it must not replay wrong text."""
    meta = output.get("metadata")
    meta = meta.get(METADATA_KEY) if isinstance(meta, dict) else None
    items = meta.get("answers") if isinstance(meta, dict) else None
    if not isinstance(items, list):
        return []
    data = output.get("data")
    plain = data.get("text/plain") if isinstance(data, dict) else None
    if isinstance(plain, list):  # nbformat keeps a multi-line string as its lines
        plain = "".join(str(line) for line in plain)
    found = []
    for item in items:
        if not isinstance(item, dict):
            continue
        try:
            values = {k: _read(item.get(k), plain) for k in ("text", "reasoning")}
        except ValueError:
            log.debug("a recorded answer no longer matches its output; left out")
            continue
        found.append({**item, **values})
    return found


def _read(value: Any, plain: Any) -> str | None:
    if not isinstance(value, dict):
        return value if isinstance(value, str) or value is None else str(value)
    span = value.get("plain")
    if not isinstance(plain, str) or not isinstance(span, list) or len(span) != 2:
        raise ValueError("no text to read the span from")
    start, stop = span
    text = plain[start:stop] if isinstance(start, int) and isinstance(stop, int) else ""
    if _digest(text) != value.get("sha256"):
        raise ValueError("the span does not match its hash")
    return text
