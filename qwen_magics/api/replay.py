"""Replay: answers from a record instead of the server, streamed as the server's would be.

``QWEN_REPLAY`` (or ``use()``, which ``%qwen replay`` and ``QwenMagics.replay`` call) says
``on`` (answer from the record when it has the request, else ask the server), ``only`` (never ask:
a miss raises ``ReplayMiss`` naming the prompt) or ``off``; then optionally a PATH, a history
database or a saved ``.ipynb`` whose outputs carry their answers (``record.cassette``), and
``--pace`` (stream at the recorded pace, not at once). Without a PATH the record is the running
notebook's own file, when the front end told the kernel where it is, then the history database.

The client asks ``lookup`` where it would send a request; a found record becomes a Response
through ``rebuild``, the same rebuilding that ``history.get`` uses: the recorded events (reasoning,
text, finish reason, usage) as a stream, so every display path works unchanged. A replayed
answer is not written to the history again (its row, or its notebook output, is the record), and
its footer says "replayed" and when it was recorded.

A request is found by its fingerprint (``record.fingerprint``); when it goes to the offline
simulator (no server of the user's own), a record of the same request to any server will do, so a
notebook recorded with a key shows its answers when opened without one.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import historydb
from ..errors import ReplayMiss, StreamInterrupted
from . import record
from .response import Event, Response, Usage

__all__ = [
    "MODES",
    "Replay",
    "current",
    "lookup",
    "miss",
    "parse",
    "rebuild",
    "recorded",
    "sources",
    "use",
    "when",
]

MODES = ("off", "on", "only")
PACE_FLAG = "--pace"
MIN_STEP = 0.005  # seconds: a paced replay waits no shorter than this (a sleep is not that exact)


@dataclass(frozen=True)
class Replay:
    """How requests are answered now: ``mode`` off / on / only, from ``path`` (None: the notebook's
    own file when known, then the history), at the recorded pace or at once."""

    mode: str = "off"
    path: Path | None = None
    pace: bool = False

    def __str__(self) -> str:
        words = [self.mode]
        if self.path is not None:
            words.append(str(self.path))
        if self.pace:
            words.append(PACE_FLAG)
        return " ".join(words)


def parse(value: str | None) -> Replay:
    """``"only notebooks/x.ipynb --pace"`` as a Replay; raises ValueError saying what to write."""
    words = (value or "").split()
    if not words:
        return Replay()
    pace = PACE_FLAG in words
    words = [w for w in words if w != PACE_FLAG]
    mode = words[0].lower() if words else ""
    if mode not in MODES:
        raise ValueError(
            f"replay {mode or '(nothing)'!r}: write on, off or only, then optionally a history "
            "database or a .ipynb file to replay from, and --pace"
        )
    rest = " ".join(words[1:]).strip()
    return Replay(mode, Path(rest).expanduser() if rest else None, pace)


_chosen: Replay | None = None


def use(value: Replay | str | None) -> Replay:
    """Replay as ``value`` says from now on (None: back to QWEN_REPLAY); returns what is in force."""
    global _chosen
    _chosen = parse(value) if isinstance(value, str) else value
    return current()


def current() -> Replay:
    """What ``use`` chose, else ``QWEN_REPLAY``, else off. A QWEN_REPLAY that cannot be read is off."""
    if _chosen is not None:
        return _chosen
    try:
        return parse(os.environ.get("QWEN_REPLAY"))
    except ValueError:
        return Replay()


def when(seconds: float) -> str:
    """A recorded time as footers and the log show it: local, to the minute."""
    return _dt.datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M")


# -- the records -----------------------------------------------------------------------------
_notebooks: dict[Path, tuple[tuple[int, int], dict[str, dict[str, Any]], dict[str, dict[str, Any]]]] = {}


def _from_notebook(path: Path) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """A saved notebook's records by fingerprint and by request fingerprint (read again when the
    file changes). Each is shaped as a history row."""
    try:
        stat = path.stat()
    except OSError:
        return {}, {}
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _notebooks.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1], cached[2]
    try:
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells") or []
    except (OSError, ValueError, AttributeError):
        cells = []
    exact: dict[str, dict[str, Any]] = {}
    anyhost: dict[str, dict[str, Any]] = {}
    for cell in cells:
        for output in cell.get("outputs") or () if isinstance(cell, dict) else ():
            for item in record.answers(output) if isinstance(output, dict) else ():
                if isinstance(item.get("fingerprint"), str):
                    row = _row_of(item)
                    exact[item["fingerprint"][: record.SHORT]] = row
                    if isinstance(item.get("request"), str):
                        anyhost[item["request"][: record.SHORT]] = row
    _notebooks[path] = (stamp, exact, anyhost)
    return exact, anyhost


def _row_of(item: dict[str, Any]) -> dict[str, Any]:
    """An output's record (``record.cassette``) in the history's row shape."""
    given = item.get("usage")  # token counts in record.USAGE's order
    usage: dict[str, Any] = dict(zip(record.USAGE, given, strict=False)) if isinstance(given, list) else {}
    return {
        **{name: usage.get(name) for name in record.USAGE},
        **{k: item.get(k) for k in ("model", "text", "reasoning", "ttft", "elapsed", "finish_reason")},
        "tool_calls": item.get("tool_calls"),
        "request_id": item.get("request_id"),
        "fingerprint": item.get("fingerprint"),
        "sample": item.get("sample") or 0,
        "offline": bool(item.get("offline")),
        "time": item.get("time") or 0.0,
        "uid": None,
    }


def _notebook_of_session() -> Path | None:
    """The running notebook's file, when the front end said where it is and it is saved here."""
    name = record.notebook()
    if not name:
        return None
    given = Path(name).expanduser()
    # JupyterLab names it from the server's root; the kernel runs in the notebook's folder
    for path in (given, Path(given.name)):
        if path.suffix == ".ipynb" and path.is_file():
            return path
    return None


def sources(replay: Replay) -> list[Path]:
    """Where answers are looked up, in order."""
    if replay.path is not None:
        return [replay.path]
    found = [p for p in (_notebook_of_session(), historydb.path()) if p is not None]
    return found


def lookup(
    replay: Replay, request: dict[str, Any], *, host: str, offline: bool, sample: int
) -> dict[str, Any] | None:
    """The recorded answer to this request (a history row's fields), or None."""
    exact = record.fingerprint(request, host, sample, offline=offline)
    loose = record.request_fingerprint(request, sample) if offline else None
    for path in sources(replay):
        if path.suffix == ".ipynb":
            by_exact, by_request = _from_notebook(path)
            short = record.SHORT
            found = by_exact.get(exact[:short]) or (by_request.get(loose[:short]) if loose else None)
        else:
            found = _from_history(path, exact, loose, request)
        if found is not None:
            return found
    return None


def _from_history(
    path: Path, exact: str, loose: str | None, request: dict[str, Any]
) -> dict[str, Any] | None:
    try:
        rows = historydb.replayable(path, fingerprint=exact)
        if rows or loose is None:
            return rows[0] if rows else None
        messages = request.get("messages") or []
        prompt = next((record.content(m) for m in reversed(messages) if m.get("role") == "user"), None)
        for row in historydb.replayable(path, prompt=prompt):
            sent = {
                "model": row.get("model"),
                "messages": json.loads(row["messages"]),
                **json.loads(row["params"]),
            }
            if record.request_fingerprint(sent, int(row.get("sample") or 0)) == loose:
                return row
    except Exception:  # an unreadable database holds nothing to replay
        return None
    return None


def miss(replay: Replay, request: dict[str, Any]) -> ReplayMiss:
    """``only``'s one-line error: which prompt, where it was looked for, what to do."""
    messages = request.get("messages") or []
    prompt = next((record.content(m) for m in reversed(messages) if m.get("role") == "user"), "")
    shown = " ".join(prompt.split())
    shown = shown if len(shown) <= 60 else shown[:59] + "…"
    where = " or ".join(str(p) for p in sources(replay)) or "no record (the history is off)"
    return ReplayMiss(
        f"replay only: no recorded answer to {shown!r} ({request.get('model')}) in {where}; nothing was "
        "sent. Record it with %qwen replay on, or give the file that holds it: %qwen replay only PATH"
    )


# -- answers from a record ---------------------------------------------------------------------
def _events(row: dict[str, Any]) -> list[Event]:
    """What the answer streamed, as events: start, reasoning, text, finish, usage (, error)."""
    events = [Event("start", data={"id": row.get("request_id"), "model": row.get("model")})]
    if row.get("reasoning"):
        events.append(Event("reasoning", row["reasoning"]))
    if row.get("text"):
        events.append(Event("text", row["text"]))
    for index, call in enumerate(_calls(row)):
        fragment = {"index": index, "id": call.get("id") or "", "name": call.get("name") or ""}
        events.append(Event("tool_call", data={**fragment, "arguments": call.get("arguments") or ""}))
    if row.get("finish_reason"):
        events.append(Event("finish", data=row["finish_reason"]))
    if row.get("total_tokens") is not None:
        events.append(Event("usage", data=Usage(**{name: row.get(name) or 0 for name in record.USAGE})))
    if row.get("error"):
        events.append(Event("error", data=StreamInterrupted(row["error"])))
    return events


def _calls(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The recorded calls of a tool loop's step (a history row keeps them as JSON text)."""
    given = row.get("tool_calls")
    if isinstance(given, str):
        try:
            given = json.loads(given)
        except ValueError:
            return []
    return [c for c in given if isinstance(c, dict)] if isinstance(given, list) else []


_PIECE = re.compile(r"\s*\S+\s*|\s+")


def _paced(events: list[Event], ttft: float, elapsed: float) -> list[tuple[float, Event]]:
    """Each event with the moment (seconds after sending) it goes out: the first token at the
    recorded ttft, the rest word by word, spread evenly up to the recorded total."""
    pieces: list[Event] = []
    for event in events:
        if event.type in ("text", "reasoning"):
            pieces.extend(Event(event.type, p) for p in _PIECE.findall(event.text))
        else:
            pieces.append(event)
    tokens = sum(e.type in ("text", "reasoning") for e in pieces)
    step = max(elapsed - ttft, 0.0) / (tokens - 1) if tokens > 1 else 0.0
    out: list[tuple[float, Event]] = []
    n, at = 0, 0.0
    for event in pieces:
        if event.type in ("text", "reasoning"):
            at = ttft + step * n
            n += 1
        elif n and n == tokens:
            at = max(at, elapsed)
        out.append((at, event))
    return out


def _sync_source(timed: list[tuple[float, Event]], start: float) -> Iterator[Event]:
    for at, event in timed:
        wait = start + at - time.perf_counter()
        if wait > MIN_STEP:  # shorter waits add up into the next one
            time.sleep(wait)
        yield event


async def _async_source(timed: list[tuple[float, Event]], start: float) -> AsyncIterator[Event]:
    import asyncio

    for at, event in timed:
        wait = start + at - time.perf_counter()
        if wait > MIN_STEP:
            await asyncio.sleep(wait)
        yield event


def rebuild(
    row: dict[str, Any],
    *,
    note: str,
    request: dict[str, Any] | None = None,
    base_url: str | None = None,
    stream: str | None = None,
    pace: bool = False,
) -> Response:
    """A Response from a recorded answer (a history row, or an output's record), with its recorded
    text, reasoning, usage, finish reason and timings, and ``note`` in its footer.

    ``stream`` None gives it finished (``history.get``); ``"sync"`` or ``"async"`` hands it out
    streaming, as the client does, at once or, with ``pace``, at the recorded pace."""
    if request is None:
        sent = row.get("params")
        params: dict[str, Any] = sent if isinstance(sent, dict) else {}
        request = {"model": row.get("model"), "messages": row.get("messages") or [], **params}
    events = _events(row)
    elapsed = float(row.get("elapsed") or 0.0)
    ttft = row.get("ttft")
    common: dict[str, Any] = dict(
        request=request,
        params={
            k: v for k, v in request.items() if k not in ("model", "messages", "stream", "stream_options")
        },
        base_url=base_url if base_url is not None else row.get("host") or "",
        offline=bool(row.get("offline")),
        request_id=row.get("request_id"),
        attempts=row.get("attempts") or 1,
    )
    if stream is None:
        response = Response(**common, head=events, sent_at=time.perf_counter() - elapsed)
    else:
        now = time.perf_counter()
        timed = _paced(events, float(ttft or 0.0), elapsed) if pace else [(0.0, e) for e in events]
        source = _async_source(timed, now) if stream == "async" else _sync_source(timed, now)
        response = Response(**common, source=source, sent_at=now, on_finish=_as_recorded(row))
    response.ttft = ttft
    response.interrupted = bool(row.get("interrupted"))
    response.data = row.get("data")
    response.schema = row.get("schema")
    response.fingerprint = row.get("fingerprint")
    response.sample = int(row.get("sample") or 0)
    response.recorded_at = row.get("time")
    response.recorded_calls = {c["id"]: c for c in _calls(row) if isinstance(c.get("id"), str)}
    response.notes.append(note)
    return response


def _as_recorded(row: dict[str, Any]) -> Any:
    """Once a replayed stream ends, its timings are the recorded ones (what its author saw)."""

    def restore(response: Response) -> None:
        response.ttft = row.get("ttft")
        if row.get("elapsed") is not None:
            response.set_totals(response.usage, float(row["elapsed"]))
        response.recorded_at = row.get("time")

    return restore


def recorded(
    replay: Replay, request: dict[str, Any], *, base_url: str, offline: bool, stream: str
) -> Response | None:
    """The replayed Response to this request, or None when the record does not have it (``only``
    raises ``ReplayMiss`` instead)."""
    sample = record.sample()
    found = lookup(replay, request, host=record.host_of(base_url), offline=offline, sample=sample)
    if found is None:
        if replay.mode == "only":
            raise miss(replay, request)
        return None
    found = {
        **found,
        "fingerprint": record.fingerprint(request, record.host_of(base_url), sample, offline=offline),
    }
    found["sample"] = sample
    response = rebuild(
        found,
        note=f"replayed, recorded {when(found.get('time') or 0.0)}",
        request=request,
        base_url=base_url,
        stream=stream,
        pace=replay.pace,
    )
    response.offline = offline or bool(found.get("offline"))
    response.replayed = True
    return response
