"""The function-calling loop: ask, run the calls the answer asks for, send their results, repeat.

"Define tools → the model returns a tool call → execute → send the result back → get the final
answer", until an answer without tool calls or ``max_steps`` requests. Each request is an ordinary
``Client.ask_once`` (so each step's answer is recorded, replayed and retried as any other); the loop is
one Response whose events are every step's reasoning and text plus ``tool_start`` and
``tool_result`` around each call, whose ``tool_calls`` is the trace and whose usage is the total.

Arguments are checked against the tool's schema first: bad JSON, a mismatch, an unknown tool, a
function's exception or a refusal (``confirm``) go back to the model as that call's error text, and
the loop goes on. With thinking on, each assistant turn sent back keeps its ``reasoning_content``.
Each step's record keeps its calls and what came of them (``record.calls``), so a replayed step sends
back the recorded results instead of calling the functions again, and the next step, asked with the
same messages, is found in the record too: a replayed loop needs neither the functions nor a server.
Parallel calls of one turn run concurrently when ``parallel_tool_calls`` is on. Ctrl-C (or
``interrupt()``) ends the loop between or during steps; the trace so far is kept.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ..errors import ParameterError, QwenError
from ..models import MODELS, get_model
from ..tools.schema import Tool, ToolArgumentError, as_tools
from . import record
from .response import Event, Response, ToolCall, Usage

if TYPE_CHECKING:
    from .client import AsyncClient, Client

__all__ = ["DEFAULT_MAX_STEPS", "Loop", "ask_user", "prepare_loop", "result_text", "shown_args", "use_asker"]

DEFAULT_MAX_STEPS = 10
INTERRUPTED = record.INTERRUPTED
RESULT_CHARS = 20_000  # a result longer than this is cut before it is sent back
Confirm = Callable[[ToolCall], bool]


def result_text(value: Any) -> str:
    """What a function returned, as the text the model reads."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= RESULT_CHARS else text[: RESULT_CHARS - 1] + "…"


def ask_in_terminal(call: ToolCall) -> bool:
    """A ``[y/N]`` prompt: terminal IPython, a script, or a kernel whose front end has no widgets.
    No input to read (a closed stdin, a kernel run without one) is a refusal."""
    try:
        answer = input(f"Run {call.name}({shown_args(call)})? [y/N] ")
    except EOFError:
        return False
    except Exception as exc:  # ipykernel's StdinNotImplementedError: no one is there to answer
        if type(exc).__name__ != "StdinNotImplementedError":
            raise
        return False
    return answer.strip().lower() in ("y", "yes")


_asker: Confirm | None = None


def use_asker(asker: Confirm | None) -> None:
    """Who answers ``confirm=True``: the magics install the notebook's buttons
    (``display/confirm.py``) when they load; None goes back to the terminal prompt."""
    global _asker
    _asker = asker


def ask_user(call: ToolCall) -> bool:
    """``confirm=True``: ask whoever is there, with the installed asker or a terminal prompt. In a
    kernel that never ran ``%load_ext`` the notebook's buttons are fetched by name (this layer does
    not import the display)."""
    asker = _asker
    if asker is None and "ipykernel" in sys.modules:
        asker = importlib.import_module("qwen_magics.display.confirm").ask_before_call
    return (asker or ask_in_terminal)(call)


def shown_args(call: ToolCall) -> str:
    args = call.args
    if isinstance(args, dict):
        return ", ".join(f"{k}={v!r}" for k, v in args.items())
    return call.arguments


class Loop:
    """One tool loop's settings and state: its tools, the request arguments every step shares, the
    running usage, the step on the wire (so ``interrupt`` reaches it)."""

    def __init__(
        self,
        tools: list[Tool],
        kw: dict[str, Any],
        *,
        max_steps: int,
        parallel: bool,
        confirm: Confirm | None,
    ) -> None:
        self.tools = {t.name: t for t in tools}
        self.kw = {k: v for k, v in kw.items() if k not in ("messages", "system")}  # each step's
        self.max_steps = max_steps
        self.parallel = parallel
        self.confirm = confirm
        self.step = 1
        self.usage = Usage()
        self.current: Response | None = None
        self.outer: Response | None = None
        self.texted = False
        self.halted = False  # a replayed step without its calls' outcomes: no further step

    # -- the Response the caller gets ---------------------------------------------------------
    def response(self, first: Response, source: Any, started: float) -> Response:
        outer = Response(
            request=first.request,
            params=first.params,
            base_url=first.base_url,
            offline=first.offline,
            request_id=first.request_id,
            source=source,
            sent_at=started,
            attempts=first.attempts,
            closer=self.stop_current,
        )
        self.outer = outer
        self.current = first
        return outer

    def stop_current(self) -> None:
        if self.current is not None:
            self.current.interrupt()

    @property
    def stopped(self) -> bool:
        """The loop's Response was interrupted (Stop, from any thread), or a replay cannot go on:
        no further step is asked."""
        return self.halted or (self.outer is not None and self.outer.interrupted)

    # -- pieces both loops share ----------------------------------------------------------------
    def passed(self, event: Event) -> list[Event]:
        """A step's event as the loop's: text of later steps starts a new paragraph; each step's
        usage is summed at its end, its call fragments become the trace."""
        if event.type in ("usage", "tool_call") or (event.type == "start" and self.step > 1):
            return []
        if event.type == "text":
            if not self.texted and self.outer is not None and self.outer.partial_text:
                self.texted = True
                return [Event("text", "\n\n"), event]
            self.texted = True
        return [event]

    def after_step(self, step: Response) -> tuple[list[Event], list[ToolCall] | None]:
        """The events that close a step, and the calls to run (None: the loop is over)."""
        self.usage = self.usage + step.usage
        events = [Event("usage", data=self.usage)]
        if self.outer is not None:
            self.outer.steps = self.step
            self.outer.request = step.request
            self.outer.step_responses.append(step)
            self.outer.replayed = all(s.replayed for s in self.outer.step_responses)
            if step.replayed and len(self.outer.step_responses) == 1:  # "replayed, recorded ..." once
                self.outer.notes.extend(n for n in step.notes if n not in self.outer.notes)
        calls = step.tool_calls
        for call in calls:
            call.step = self.step
        if step.replayed and not calls and step.finish_reason == "tool_calls" and self.outer is not None:
            self.outer.notes.append(  # a record keeps an answer's text, not the calls it asked for
                "a replayed step had asked for tool calls its record does not keep: the loop ends "
                "there; turn replay off to run the tools"
            )
        if step.error is not None or step.interrupted or not calls:
            return events, None
        if self.step >= self.max_steps:
            for call in calls:
                call.error = f"not run: the loop stopped at max_steps={self.max_steps}"
                events += [Event("tool_start", data=call), Event("tool_result", data=call)]
            if self.outer is not None:
                names = ", ".join(dict.fromkeys(c.name for c in calls))
                self.outer.notes.append(
                    f"stopped after {self.max_steps} steps with the model still calling {names}; "
                    "raise max_steps to let it go on"
                )
            return events, None
        return events, calls

    def replayed(self, step: Response, call: ToolCall) -> bool:
        """A replayed step's call takes its recorded outcome (True); the function is not called."""
        if not step.replayed:
            return False
        kept = step.recorded_calls.get(call.id) or {}
        if "result" in kept or "error" in kept:
            call.result, call.error, call.seconds = kept.get("result"), kept.get("error"), kept.get("seconds")
            return True
        call.error = "not run: its record does not keep what came of it"
        if self.outer is not None and not self.halted:
            self.outer.notes.append(
                f"a replayed step's record does not keep what came of its call to {call.name}: "
                "the loop ends there; turn replay off to run the tools"
            )
        self.halted = True
        return True

    def prepare(self, call: ToolCall) -> tuple[Tool | None, dict[str, Any] | None]:
        """The tool and its checked arguments; or None with ``call.error`` set."""
        tool = self.tools.get(call.name)
        if tool is None:
            call.error = f"there is no tool named {call.name!r}; the tools are {', '.join(self.tools)}"
            return None, None
        try:
            args = tool.arguments(call.arguments)
        except ToolArgumentError as exc:
            call.error = f"invalid arguments for {call.name}: {exc}"
            return None, None
        if self.confirm is not None:
            try:
                allowed = self.confirm(call)
            except KeyboardInterrupt:  # Stop while the question waits: the loop ends, the trace stays
                call.error = f"{INTERRUPTED} before it was confirmed"
                raise
            if not allowed:
                call.error = "the user declined to run this call"
                return None, None
        return tool, args

    def next_messages(self, step: Response, calls: list[ToolCall]) -> list[dict[str, Any]]:
        assistant: dict[str, Any] = {
            "role": "assistant",
            "content": step.text,
            "tool_calls": [c.message() for c in calls],
        }
        if step.reasoning:  # the vendor: omitting it from a thinking model's turns degrades accuracy
            assistant["reasoning_content"] = step.reasoning
        results = [
            {
                "role": "tool",
                "tool_call_id": c.id,
                "content": c.result if c.error is None else f"Error: {c.error}",
            }
            for c in calls
        ]
        return [*step.messages, assistant, *results]


def _finish_call(call: ToolCall, started: float, value: Any = None, exc: BaseException | None = None) -> None:
    call.seconds = time.perf_counter() - started
    if exc is not None:
        call.error = f"{type(exc).__name__}: {exc}"
    else:
        call.result = result_text(value)


def _run_sync(tool: Tool, args: dict[str, Any], call: ToolCall) -> None:
    started = time.perf_counter()
    try:
        if tool.is_async:
            from ..runner import Background

            work: Background[Any] = Background(f"qwen-tool-{tool.name}").start(lambda: tool.function(**args))
            try:
                while not work.wait(0.1):
                    pass
            except KeyboardInterrupt:
                work.stop()
                raise
            value = work.result()
        else:
            value = tool.function(**args)
    except KeyboardInterrupt:
        call.seconds = time.perf_counter() - started
        call.error = INTERRUPTED
        raise
    except Exception as exc:
        _finish_call(call, started, exc=exc)
        return
    _finish_call(call, started, value)


def _run_calls(loop: Loop, step: Response, calls: list[ToolCall]) -> Iterator[Event]:
    ready: list[tuple[ToolCall, Tool, dict[str, Any]]] = []
    for call in calls:
        yield Event("tool_start", data=call)
        if loop.replayed(step, call):
            yield Event("tool_result", data=call)
            continue
        tool, args = loop.prepare(call)
        if tool is None or args is None:
            yield Event("tool_result", data=call)
        elif loop.parallel and len(calls) > 1:
            ready.append((call, tool, args))
        else:
            _run_sync(tool, args, call)
            yield Event("tool_result", data=call)
    if ready:
        with ThreadPoolExecutor(max_workers=len(ready), thread_name_prefix="qwen-tool") as pool:
            futures = [(call, pool.submit(_run_sync, tool, args, call)) for call, tool, args in ready]
            for call, future in futures:
                future.result()
                yield Event("tool_result", data=call)


def run(client: Client, first: Response, loop: Loop, started: float) -> Response:
    def events() -> Iterator[Event]:
        step = first
        while True:
            loop.current = step
            it = iter(step)  # a generator: closed below
            try:
                for event in it:
                    yield from loop.passed(event)
            finally:
                it.close()  # type: ignore[attr-defined]  # a Ctrl-C or close() here: the step keeps what arrived, and is recorded
            tail, calls = loop.after_step(step)
            yield from tail
            if calls is None:
                return
            try:
                yield from _run_calls(loop, step, calls)
            finally:
                if not step.replayed:
                    record.annotate_calls(step)  # the step's row learns what came of its calls
            if loop.stopped:
                return
            messages = loop.next_messages(step, calls)
            loop.step += 1
            try:
                step = client.ask_once(None, messages=messages, **loop.kw)
            except QwenError as exc:
                yield Event("error", data=exc)
                return

    return loop.response(first, events(), started)


async def _run_async(tool: Tool, args: dict[str, Any], call: ToolCall) -> None:
    started = time.perf_counter()
    try:
        if tool.is_async:
            value = await tool.function(**args)
        else:
            value = await asyncio.to_thread(tool.function, **args)
    except (KeyboardInterrupt, asyncio.CancelledError):
        call.seconds = time.perf_counter() - started
        call.error = INTERRUPTED
        raise
    except Exception as exc:
        _finish_call(call, started, exc=exc)
        return
    _finish_call(call, started, value)


def arun(client: AsyncClient, first: Response, loop: Loop, started: float) -> Response:
    async def events() -> AsyncIterator[Event]:
        step = first
        while True:
            loop.current = step
            async for event in step:
                for out in loop.passed(event):
                    yield out
            tail, calls = loop.after_step(step)
            for out in tail:
                yield out
            if calls is None:
                return
            ready: list[tuple[ToolCall, Tool, dict[str, Any]]] = []
            try:
                for call in calls:
                    yield Event("tool_start", data=call)
                    if loop.replayed(step, call):
                        yield Event("tool_result", data=call)
                        continue
                    tool, args = loop.prepare(call)
                    if tool is None or args is None:
                        yield Event("tool_result", data=call)
                    else:
                        ready.append((call, tool, args))
                if loop.parallel:
                    await asyncio.gather(*(_run_async(t, a, c) for c, t, a in ready))
                    for call, _, _ in ready:
                        yield Event("tool_result", data=call)
                else:
                    for call, tool, args in ready:
                        await _run_async(tool, args, call)
                        yield Event("tool_result", data=call)
            finally:
                if not step.replayed:
                    record.annotate_calls(step)
            if loop.stopped:
                return
            messages = loop.next_messages(step, calls)
            loop.step += 1
            try:
                step = await client.ask_once(None, messages=messages, **loop.kw)
            except QwenError as exc:
                yield Event("error", data=exc)
                return

    return loop.response(first, events(), started)


# -- the checks before anything is sent ----------------------------------------------------------
def prepare_loop(
    kw: dict[str, Any],
    model: str,
    *,
    tools: Any,
    max_steps: Any,
    parallel_tool_calls: bool | None,
    tool_choice: Any,
    confirm: Any,
) -> Loop:
    """The loop for a request's ``kw`` (which gains the wire fields), refusing a wrong combination
    in one line before anything is sent."""
    found = as_tools(tools)
    if not found:
        raise ParameterError("tools", "tools is empty; pass a list of functions, or leave tools out")
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ParameterError(
            "max_steps", f"max_steps must be a whole number of requests, 1 or more; got {max_steps!r}"
        )
    info = get_model(model)
    if info is not None and not info.tools:
        able = ", ".join(m.name for m in MODELS.values() if m.tools)
        raise ParameterError("tools", f"{info.name} does not take tools; use one that does ({able})")
    stream = kw.get("stream", True)
    if info is not None and stream and not info.tools_stream:
        raise ParameterError("stream", f"{info.name} does not stream tool calls; pass stream=False")
    n = kw.get("n")
    if n is not None and n != 1:
        raise ParameterError("n", f"n must be 1 with tools (got {n}); ask once per sample instead")
    thinking = kw.get("thinking")
    will_think = info is not None and (info.thinks_by_default if thinking is None else bool(thinking))
    choice = _tool_choice(tool_choice, [t.name for t in found])
    if (choice == "required" or isinstance(choice, dict)) and will_think:
        raise ParameterError(
            "tool_choice",
            f"a forced tool_choice is refused while thinking is on ({model}); "
            "pass thinking=False or tool_choice='auto'",
        )
    if confirm is True:
        confirm = ask_user
    elif confirm is not None and confirm is not False and not callable(confirm):
        raise ParameterError("confirm", "confirm must be True, False or a function(call) -> bool")
    kw["tools"] = [t.spec for t in found]
    if choice is not None:
        kw["tool_choice"] = choice
    if parallel_tool_calls is not None:
        kw["parallel_tool_calls"] = bool(parallel_tool_calls)
    return Loop(
        found,
        kw,
        max_steps=max_steps,
        parallel=bool(parallel_tool_calls),
        confirm=confirm or None,
    )


def _tool_choice(choice: Any, names: list[str]) -> Any:
    """``auto``, ``none``, ``required``, a tool's name (or the function itself): the wire form."""
    if choice is None or choice in ("auto", "none", "required"):
        return choice
    if callable(choice):
        choice = as_tools([choice])[0].name
    if isinstance(choice, dict):
        choice = (choice.get("function") or {}).get("name")
    if isinstance(choice, str) and choice in names:
        return {"type": "function", "function": {"name": choice}}
    raise ParameterError(
        "tool_choice",
        "tool_choice must be 'auto', 'none', 'required' or one of the tools "
        f"({', '.join(names)}); got {choice!r}",
    )
