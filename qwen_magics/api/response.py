"""A model's answer as a value: stream events, then the text, reasoning, usage and timings.

``Response`` can be iterated for events while it streams (sync or async), forces completion with
``.text``, replays its events once finished and keeps what arrived when the stream breaks.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import QwenError, StreamInterrupted, api_error
from ..models import BATCH_DISCOUNT, estimate_cost
from .render import footer_text, response_markdown

__all__ = ["ChunkParser", "Event", "Response", "ToolCall", "Usage"]


@dataclass(frozen=True, slots=True)
class Event:
    """One thing a stream said.

    ``type`` is ``start`` (data: id, model), ``reasoning`` or ``text`` (a delta in ``text``),
    ``tool_call`` (data: one fragment of a tool call, ``{"index", "id", "name", "arguments"}``),
    ``finish`` (data: finish_reason), ``usage`` (data: Usage) or ``error`` (data: the exception).
    A tool loop (``api/toolloop.py``) adds ``tool_start`` and ``tool_result`` (data: the ToolCall).
    """

    type: str
    text: str = ""
    data: Any = None


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    total_tokens: int = 0
    image_tokens: int = 0  # of prompt_tokens, the pictures' (when the server says)

    @classmethod
    def from_wire(cls, u: dict[str, Any]) -> Usage:
        completion = u.get("completion_tokens_details") or {}
        prompt = u.get("prompt_tokens_details") or {}
        p, c = int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0)
        return cls(
            prompt_tokens=p,
            completion_tokens=c,
            reasoning_tokens=int(completion.get("reasoning_tokens") or 0),
            cached_tokens=int(prompt.get("cached_tokens") or 0),
            total_tokens=int(u.get("total_tokens") or p + c),
            image_tokens=int(prompt.get("image_tokens") or 0),
        )

    @property
    def reported(self) -> bool:
        """False when the server's usage never arrived (a stream stopped or cut before its last
        chunk): the counts are then unknown, not zero."""
        return bool(self.total_tokens or self.prompt_tokens or self.completion_tokens)

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(a + b for a, b in zip(self.astuple(), other.astuple(), strict=True)))

    def astuple(self) -> tuple[int, ...]:
        return (
            self.prompt_tokens,
            self.completion_tokens,
            self.reasoning_tokens,
            self.cached_tokens,
            self.total_tokens,
            self.image_tokens,
        )


@dataclass(slots=True, eq=False)
class ToolCall:
    """One call the model asked for, and, once a tool loop ran it, what came of it."""

    id: str = ""
    name: str = ""
    arguments: str = ""  # the JSON text as the model wrote it
    index: int = 0
    step: int = 1  # which request of the loop asked for it
    result: str | None = None  # the text sent back to the model
    error: str | None = None  # the error sent back instead (bad arguments, an exception, a refusal)
    seconds: float | None = None  # how long the function ran

    @property
    def args(self) -> Any:
        """The arguments parsed (None when they are not valid JSON)."""
        try:
            return json.loads(self.arguments or "{}")
        except ValueError:
            return None

    @property
    def ok(self) -> bool:
        return self.result is not None and self.error is None

    def message(self) -> dict[str, Any]:
        """The ``tool_calls`` entry of the assistant turn that asked for it."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments or "{}"},
        }

    def __repr__(self) -> str:
        outcome = (
            f"error={self.error!r}" if self.error is not None else f"result={(self.result or '')[:40]!r}"
        )
        return f"<ToolCall step {self.step} {self.name}({self.arguments[:60]}) {outcome}>"


class ChunkParser:
    """Turns decoded ``data:`` payloads (or a whole non-stream body) into Events."""

    __slots__ = (
        "_answered",
        "_held",
        "_inline",
        "_reasoned",
        "_trim",
        "done",
        "failed",
        "finished",
        "started",
    )

    def __init__(self) -> None:
        self.done = False  # data: [DONE] arrived
        self.failed = False
        self.finished = False  # a finish_reason arrived: the answer is whole, [DONE] or not
        self.started = False
        # <think>...</think> inline in the content (a server without a reasoning parser)
        self._inline: bool | None = None  # None: the content has not said yet; True: inside the tag
        self._held = ""  # what may still be the start of a tag, split across chunks
        self._trim = False  # the answer's first text after </think> loses its leading blank lines
        self._reasoned = False  # reasoning text (not blank) arrived in a field
        self._answered = False  # answer text arrived

    def feed(self, data: str) -> list[Event]:
        if data == "[DONE]":
            self.done = True
            return self.flush()
        try:
            chunk = json.loads(data)
        except ValueError:
            self.failed = True
            return [Event("error", data=StreamInterrupted(f"unreadable stream chunk: {data[:80]!r}"))]
        if not isinstance(chunk, dict):
            return []
        if "error" in chunk:
            self.failed = True
            return [Event("error", data=api_error(None, chunk))]
        events: list[Event] = []
        if not self.started:
            self.started = True
            events.append(Event("start", data={"id": chunk.get("id"), "model": chunk.get("model")}))
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or choice.get("message") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")  # DashScope; vLLM
            if isinstance(reasoning, str) and reasoning:
                events.extend(self._reasoning(reasoning))
            content = delta.get("content")
            if isinstance(content, str) and content:
                events.extend(self._content(content))
            for frag in delta.get("tool_calls") or ():
                if isinstance(frag, dict):
                    fn = frag.get("function") or {}
                    events.append(
                        Event(
                            "tool_call",
                            data={
                                "index": frag.get("index", 0),
                                "id": frag.get("id") or "",
                                "name": fn.get("name") or "",
                                "arguments": fn.get("arguments") or "",
                            },
                        )
                    )
            if choice.get("finish_reason"):
                events.extend(self.flush())
                self.finished = True
                events.append(Event("finish", data=choice["finish_reason"]))
        if chunk.get("usage"):
            events.append(Event("usage", data=Usage.from_wire(chunk["usage"])))
        return events

    def _reasoning(self, piece: str) -> list[Event]:
        """Reasoning from a field. Blank lines before it are not thinking, and the answer's first text
        after it loses its leading blank lines: transformers serve streams Qwen3's ``</think>\n\n``
        so, and a thinking-off prompt's empty ``<think>\n\n</think>`` as a reasoning of ``"\n\n"``."""
        if not self._reasoned:
            self._trim = self._trim or not self._answered
            piece = piece.lstrip()
            if not piece:
                return []
            self._reasoned = True
        return [Event("reasoning", piece)]

    def flush(self) -> list[Event]:
        """The content held back as a possible tag, at the end of the stream: nothing is lost."""
        return self._content("", end=True)

    def _content(self, piece: str, *, end: bool = False) -> list[Event]:
        """Content as text, except a leading ``<think>...</think>``, which is reasoning (tags split
        across chunks included); ``end`` lets go of what was held back."""
        buf, self._held = self._held + piece, ""
        out: list[Event] = []
        while buf:
            if self._inline is None:
                lead = buf.lstrip()
                if not end and len(lead) < len(_OPEN) and _OPEN.startswith(lead):
                    self._held = buf  # "<thi": wait for the rest
                    return out
                self._inline = lead.startswith(_OPEN)
                if self._inline:
                    buf = lead[len(_OPEN) :].lstrip("\n")
                    continue
            if self._inline:
                close = buf.find(_CLOSE)
                if close >= 0:
                    if close:
                        out.append(Event("reasoning", buf[:close]))
                    buf, self._inline, self._trim = buf[close + len(_CLOSE) :], False, True
                    continue
                keep = 0 if end else _partial_suffix(buf, _CLOSE)
                if len(buf) > keep:
                    out.append(Event("reasoning", buf[: len(buf) - keep]))
                self._held = buf[len(buf) - keep :]
                return out
            if self._trim:
                buf = buf.lstrip("\n")
                if not buf:
                    return out
                self._trim = False
            self._answered = True
            out.append(Event("text", buf))
            return out
        return out


_OPEN, _CLOSE = "<think>", "</think>"


def _partial_suffix(text: str, tag: str) -> int:
    """How many characters at the end of ``text`` could begin ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0


class Response:
    """The answer to one request. Iterate it for events; read ``.text`` to wait for the end."""

    def __init__(
        self,
        *,
        request: dict[str, Any],
        params: dict[str, Any],
        base_url: str = "",
        offline: bool = False,
        request_id: str | None = None,
        source: Iterable[Event] | AsyncIterator[Event] | None = None,
        head: Iterable[Event] = (),
        sent_at: float | None = None,
        attempts: int = 1,
        closer: Callable[[], object] | None = None,
        on_finish: Callable[[Response], object] | None = None,
    ) -> None:
        self.request = request
        self.params = params
        self.base_url = base_url
        self.offline = offline
        self.request_id = request_id
        self.attempts = attempts
        self.model: str = request.get("model", "")
        self.ttft: float | None = None
        self.interrupted = False
        self._finish_reason: str | None = None
        self._usage = Usage()
        self._elapsed: float | None = None
        self._incomplete = False
        self._error: QwenError | None = None
        self.notes: list[str] = []  # things a footer should say ("thinking off for JSON mode")
        self.data: Any = None  # parsed JSON, set by structured output
        self.json_path: str | None = None  # how .data was found: json, fenced, balanced, repaired
        self.json_attempts = 0  # questions asked to get .data (re-asks included)
        self.json_earlier: list[Response] = []  # the attempts before this one, when it was re-asked
        self._own: tuple[Usage, float | None] | None = None  # this request's own, before set_totals
        self.schema: Any = None  # the schema structured output validated .data against
        self._tool_calls: list[ToolCall] = []
        self.steps = 1  # requests a tool loop made for this answer
        self.step_responses: list[Response] = []  # a tool loop's requests, each its own answer
        self.recorded_calls: dict[str, dict[str, Any]] = {}  # replayed: what came of each call, by id
        self.history_id: str | None = None  # this answer's row in the history (its uid), once written
        self.fingerprint: str | None = None  # the request's, as replay looks it up (api/record.py)
        self.sample = 0  # the sample index inside a comparison
        self.replayed = False  # answered from a record (api/replay.py), not by the server
        self.batch = False  # answered by the Batch API, billed at half the live price
        self.recorded_at: float | None = None  # unix time the answer was complete (when recorded, replayed)
        self._on_finish = on_finish  # called once, when the answer is complete (the history's hook)
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._events: list[Event] = []
        self._sent_at = time.perf_counter() if sent_at is None else sent_at
        self._source = source
        self._closer = closer
        self._loop: Any = None  # an async stream's event loop, where its closer must run
        self._aclose_after: list[Any] = []
        self._sync_iter: Iterator[Event] | None = None
        for event in head:  # already received before the Response was made
            self._record(event)
        if source is None:
            self._finish()
        elif hasattr(source, "__anext__"):
            self._sync_iter = None
            self._loop = _running_loop()
        else:
            self._sync_iter = iter(source)  # type: ignore[arg-type]

    # -- state ---------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self._source is None

    @property
    def partial_text(self) -> str:
        """What arrived so far, without waiting."""
        return "".join(self._text)

    @property
    def partial_reasoning(self) -> str:
        """The reasoning so far, without waiting."""
        return "".join(self._reasoning)

    @property
    def phase(self) -> str:
        """``waiting`` (no token yet), ``thinking``, ``answering`` or ``done``."""
        if self.done:
            return "done"
        if self._text:
            return "answering"
        if self._tool_calls:
            return "calling tools"
        return "thinking" if self._reasoning else "waiting"

    @property
    def chunks(self) -> int:
        """How many pieces of text and reasoning have arrived."""
        return len(self._text) + len(self._reasoning)

    @property
    def text(self) -> str:
        self._complete()
        return "".join(self._text)

    @property
    def reasoning(self) -> str:
        self._complete()
        return "".join(self._reasoning)

    @property
    def usage(self) -> Usage:
        self._settle()
        return self._usage

    @property
    def tool_calls(self) -> list[ToolCall]:
        """The calls this answer asked for; for a tool loop, the whole trace (name, arguments,
        result or error, time, step)."""
        self._settle()
        return list(self._tool_calls)

    @property
    def partial_tool_calls(self) -> list[ToolCall]:
        """The calls so far, without waiting."""
        return list(self._tool_calls)

    @property
    def own_usage(self) -> Usage:
        """This request's usage alone, also after ``set_totals`` (what its record keeps)."""
        return self._own[0] if self._own is not None else self.usage

    @property
    def own_elapsed(self) -> float | None:
        return self._own[1] if self._own is not None else self.elapsed

    @property
    def finish_reason(self) -> str | None:
        self._settle()
        return self._finish_reason

    @property
    def truncated(self) -> bool:
        """The answer stopped at the token limit (finish_reason "length"): it ends mid-thought."""
        return self.finish_reason == "length"

    @property
    def max_tokens(self) -> int | None:
        """The max_tokens this request sent; None when it sent none (the model's own limit)."""
        value = self.request.get("max_tokens")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def elapsed(self) -> float | None:
        self._settle()
        return self._elapsed

    @property
    def incomplete(self) -> bool:
        self._settle()
        return self._incomplete

    @property
    def error(self) -> QwenError | None:
        self._settle()
        return self._error

    def _settle(self) -> None:
        """Final values wait for the end of a sync stream; an async one shows the state so far."""
        if self._sync_iter is not None:
            self._complete()

    @property
    def tokens_per_second(self) -> float | None:
        if self.elapsed is None or not self.usage.completion_tokens:
            return None
        span = self.elapsed - (self.ttft or 0.0)
        if span <= 0.001:
            span = self.elapsed
        return self.usage.completion_tokens / span if span > 0 else None

    @property
    def cost(self) -> float | None:
        """Estimated USD from the package's price table (None for an unknown model, offline, or
        when the server never reported the usage)."""
        if self.offline:
            return None
        u = self.usage
        if not u.reported:
            return None
        cost = estimate_cost(
            self.model, u.prompt_tokens, u.completion_tokens, u.reasoning_tokens, u.cached_tokens
        )
        return cost * BATCH_DISCOUNT if cost is not None and self.batch else cost

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.request.get("messages", []))

    def set_totals(self, usage: Usage, elapsed: float | None = None) -> None:
        """Totals over several requests (structured output's re-asks) on the Response that is kept;
        ``own_usage`` and ``own_elapsed`` keep this request's own."""
        if self._own is None:
            self._own = (self.usage, self.elapsed)
        self._usage = usage
        if elapsed is not None:
            self._elapsed = elapsed

    def close_with(self, closeable: Any) -> None:
        """``await closeable.aclose()`` when this async stream ends (a one-off AsyncClient)."""
        self._aclose_after.append(closeable)

    # -- consuming -----------------------------------------------------------------------
    def _record(self, event: Event) -> None:
        self._events.append(event)
        kind = event.type
        if kind == "text" or kind == "reasoning":
            if self.ttft is None:
                self.ttft = time.perf_counter() - self._sent_at
            (self._text if kind == "text" else self._reasoning).append(event.text)
        elif kind == "start":
            self.model = event.data.get("model") or self.model
            if not self.request_id and isinstance(event.data.get("id"), str):
                self.request_id = event.data["id"].removeprefix("chatcmpl-")
        elif kind == "tool_call":
            self._tool_fragment(event.data)
        elif kind == "tool_start" and event.data not in self._tool_calls:
            self._tool_calls.append(event.data)
        elif kind == "finish":
            self._finish_reason = event.data
        elif kind == "usage":
            self._usage = event.data
        elif kind == "error":
            self._error = self._error or event.data
            self._incomplete = True

    def _tool_fragment(self, frag: dict[str, Any]) -> None:
        """A piece of a streamed call: a new index starts a call; an empty id means the same one."""
        call = next((c for c in self._tool_calls if c.index == frag["index"]), None)
        if call is None:
            call = ToolCall(index=frag["index"])
            self._tool_calls.append(call)
        call.id = call.id or frag["id"]
        call.name = call.name or frag["name"]
        call.arguments += frag["arguments"]

    def _finish(self) -> None:
        if self._elapsed is None:
            self._elapsed = time.perf_counter() - self._sent_at
        if self.recorded_at is None:
            self.recorded_at = time.time()
        if self._finish_reason is None and self._error is None and self._source is not None:
            self._incomplete = True
            self._error = StreamInterrupted("the stream ended before the answer was finished")
        self._source = None
        self._sync_iter = None
        hook, self._on_finish = self._on_finish, None
        if hook is not None:
            try:
                hook(self)
            except Exception:  # what watches answers must never cost one
                pass

    def interrupt(self, reason: str = "interrupted") -> None:
        """Stop a live stream from any thread: the connection closes and what arrived is kept."""
        if self.done:
            return
        self.interrupted = True
        self._incomplete = True
        self._error = self._error or StreamInterrupted(f"{reason}: the answer was stopped before it finished")
        closer = self._closer
        if closer is None:
            return
        try:
            if self._loop is None:
                closer()
            else:  # an async stream: close it on its own loop, from whichever thread stops it
                self._close_on_loop(closer)
        except Exception:
            pass

    def _close_on_loop(self, closer: Callable[[], Any]) -> None:
        import asyncio

        loop = self._loop
        if _running_loop() is loop:
            loop.create_task(closer())
        elif not loop.is_closed():
            asyncio.run_coroutine_threadsafe(closer(), loop)

    def __iter__(self) -> Iterator[Event]:
        if self._sync_iter is None:
            if self._source is not None:
                raise QwenError("this response streams asynchronously; use `async for`")
            yield from list(self._events)
            return
        # events seen before this iterator started are replayed first
        seen = len(self._events)
        yield from self._events[:seen]
        try:
            for event in self._sync_iter:
                self._record(event)
                yield event
        except BaseException:
            self.interrupt()
            close = getattr(self._sync_iter, "close", None)
            if close is not None:
                close()
            self._finish()
            raise
        self._finish()

    async def __aiter__(self) -> AsyncIterator[Event]:
        if self._sync_iter is not None:
            for event in self:
                yield event
            return
        for event in list(self._events):
            yield event
        source = self._source
        if source is None:
            await self._aclose_others()
            return
        self._loop = self._loop or _running_loop()
        try:
            async for event in source:  # type: ignore[union-attr]
                self._record(event)
                yield event
        except BaseException:
            self.interrupted = True
            self._incomplete = True
            self._error = self._error or StreamInterrupted(
                "interrupted: the answer was stopped before it finished"
            )
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()
            self._finish()
            await self._aclose_others()
            raise
        self._finish()
        await self._aclose_others()

    async def _aclose_others(self) -> None:
        while self._aclose_after:
            await self._aclose_after.pop().aclose()

    def _complete(self) -> None:
        if self._sync_iter is not None:
            for _ in self:
                pass
        elif self._source is not None:
            raise QwenError("this response streams asynchronously; `await response.acomplete()`")

    async def acomplete(self) -> Response:
        async for _ in self:
            pass
        return self

    def complete(self) -> Response:
        self._complete()
        return self

    # -- display -------------------------------------------------------------------------
    def __repr__(self) -> str:
        state = "streaming" if not self.done else ("incomplete" if self._incomplete else "done")
        if state == "done" and self._finish_reason == "length":
            state = "stopped at max_tokens" + (f" ({self.max_tokens})" if self.max_tokens else "")
        preview = self.partial_text[:60].replace("\n", " ")
        return (
            f"<Response {self.model} {state} tokens={self._usage.prompt_tokens}/"
            f"{self._usage.completion_tokens} text={preview!r}>"
        )

    def footer(self) -> str:
        return footer_text(self)

    def _repr_markdown_(self) -> str:
        return response_markdown(self)

    def __str__(self) -> str:
        return self.partial_text if not self.done else self.text


def _running_loop() -> Any:
    import asyncio  # already loaded wherever an async stream runs

    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
