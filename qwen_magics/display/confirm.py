"""Asking before a tool call runs (``confirm=True``): Run / Refuse buttons in Jupyter, a prompt elsewhere.

The cell is busy while the loop waits, so the kernel's main thread cannot handle a click. ipykernel 7
runs subshells, each on a thread of its own, and sends a comm's messages to the subshell that last
spoke on it: the buttons' comm is pointed at one subshell kept for this purpose, the click is handled
there and wakes the waiting cell. Where that cannot work (terminal IPython, a script, a kernel
without subshells) the question is the ``[y/N]`` prompt, which Jupyter shows as an input box; a
kernel run without stdin (nbconvert, nbval) has no one to click either, so the call is refused.
Ctrl-C or Stop while the question waits ends the loop (the trace is kept). A loop running on a
worker thread (each cell of a comparison) cannot show buttons from there: inside ``relay()``, the
thread that owns the cell (drawing the grid) asks for it, one question at a time; a question left
when the relay closes (Ctrl-C) is answered "no". After the decision the
buttons give way to one line, "ran get_weather(city='Paris')" or "refused …", which is what a saved
notebook keeps.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from typing import Any

from ..api.render import escape_text
from ..api.response import ToolCall
from ..api.toolloop import ask_in_terminal, shown_args

__all__ = ["Relay", "ask_before_call", "record_line", "relay"]

POLL = 0.1  # seconds between looks at the decision (a Ctrl-C lands within one)
_subshells: dict[int, str] = {}  # id(kernel) -> the subshell that hears the buttons
_relay: Relay | None = None  # where worker threads' questions go, inside relay()


HEADS = {True: "ran", False: "refused", None: "stopped before deciding on"}


def record_line(call: ToolCall, allowed: bool | None) -> str:
    """What stays in the cell once the question is answered."""
    return f"{HEADS[allowed]} {call.name}({shown_args(call)})"


def ask_before_call(call: ToolCall) -> bool:
    """``confirm=True``: the buttons where a notebook can answer them, else the terminal prompt."""
    if _relay is not None and threading.current_thread() is not threading.main_thread():
        return _relay.ask(call)
    kernel = _kernel()
    if kernel is None or not _has_subshells(kernel):
        return ask_in_terminal(call)
    if not getattr(kernel, "_allow_stdin", True):  # nbconvert, nbval: a run with no one at the keyboard
        _show_line(call, False, note=" (no one to ask: this run takes no input)")
        return False
    return _ask_with_buttons(kernel, call)


class Relay:
    """Questions from worker threads, asked by the thread that owns the cell (``serve`` between its
    redraws). ``close`` answers "no" to any question left and to any that comes after."""

    def __init__(self) -> None:
        self.questions: queue.SimpleQueue[tuple[ToolCall, Future[bool]]] = queue.SimpleQueue()
        self.open = True

    def serve(self) -> None:
        while True:
            try:
                call, answer = self.questions.get_nowait()
            except queue.Empty:
                return
            try:
                answer.set_result(ask_before_call(call))
            except BaseException:
                answer.set_result(False)
                raise

    def close(self) -> None:
        global _relay
        self.open = False
        if _relay is self:
            _relay = None
        while True:
            try:
                _, answer = self.questions.get_nowait()
            except queue.Empty:
                return
            answer.set_result(False)

    def ask(self, call: ToolCall) -> bool:
        """A worker's question: it waits for ``serve``, or is a "no" once the relay closes."""
        answer: Future[bool] = Future()
        self.questions.put((call, answer))
        while True:
            try:
                return answer.result(timeout=POLL)
            except (TimeoutError, FutureTimeout):  # the same class only from Python 3.11
                if not self.open:
                    return False


@contextmanager
def relay() -> Iterator[Relay]:
    """While inside, ``confirm`` questions from worker threads wait for ``Relay.serve``."""
    global _relay
    found = _relay = Relay()
    try:
        yield found
    finally:
        found.close()


def _kernel() -> Any:
    """The ipykernel behind this shell (a rich front end), or None (terminal IPython, a script)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return None
    shell = get_ipython()
    return getattr(shell, "kernel", None) if shell is not None else None


def _has_subshells(kernel: Any) -> bool:
    thread = getattr(kernel, "shell_channel_thread", None)
    return (
        bool(getattr(kernel, "_supports_kernel_subshells", False))
        and thread is not None
        and hasattr(getattr(thread, "manager", None), "_create_subshell")
        and hasattr(_comm_class(), "_reply_subshell_for")
    )


def _comm_class() -> Any:
    try:
        from ipykernel.comm.comm import BaseComm
    except ImportError:  # pragma: no cover - ipykernel 6
        return object
    return BaseComm


def _subshell(kernel: Any) -> str:
    """One subshell per kernel, made on the shell channel's thread (where ipykernel makes them)."""
    found = _subshells.get(id(kernel))
    if found is not None and found in kernel.shell_channel_thread.manager.list_subshell():
        return found
    thread = kernel.shell_channel_thread
    made: Future[str] = Future()

    def create() -> None:
        try:
            made.set_result(thread.manager._create_subshell())
        except BaseException as exc:
            made.set_exception(exc)

    thread.io_loop.add_callback(create)
    subshell_id = made.result(timeout=10)
    _subshells[id(kernel)] = subshell_id
    return subshell_id


def _ask_with_buttons(kernel: Any, call: ToolCall) -> bool:
    import ipywidgets as widgets
    from IPython.display import display

    try:
        subshell_id = _subshell(kernel)
    except Exception:  # a kernel that would not make one: the prompt still asks
        return ask_in_terminal(call)
    decided = threading.Event()
    choice: list[bool] = []

    def decide(allowed: bool) -> Any:
        def on_click(_: Any) -> None:  # runs on the subshell's thread
            if not choice:
                choice.append(allowed)
            decided.set()

        return on_click

    question = widgets.HTML(f"Run <code>{escape_text(call.name)}({escape_text(shown_args(call))})</code>?")
    run = widgets.Button(description="Run", button_style="warning", tooltip=f"run {call.name} now")
    refuse = widgets.Button(description="Refuse", tooltip="tell the model the call was refused")
    run.on_click(decide(True))
    refuse.on_click(decide(False))
    box = widgets.HBox([question, run, refuse], layout=widgets.Layout(align_items="center"))
    allowed: bool | None = None

    def hear_on_subshell() -> None:  # each message the kernel publishes on a comm points it back
        for button in (run, refuse):
            button.comm._reply_subshell_id = subshell_id

    hear_on_subshell()  # before the buttons show: a click may come at once
    handle = display(box, display_id=True)
    try:
        while not decided.wait(POLL):
            hear_on_subshell()
        allowed = choice[0]
    finally:
        _settle(handle, call, allowed)
        box.close()
        for item in (question, run, refuse):
            item.close()
    return allowed


def _line_bundle(call: ToolCall, allowed: bool | None, note: str = "") -> dict[str, str]:
    shown = escape_text(f"{call.name}({shown_args(call)})")
    markdown = f"<sub>{HEADS[allowed]} <code>{shown}</code>{escape_text(note)}</sub>"
    return {"text/markdown": markdown, "text/plain": record_line(call, allowed) + note}


def _settle(handle: Any, call: ToolCall, allowed: bool | None) -> None:
    if handle is not None:
        handle.update(_line_bundle(call, allowed), raw=True)


def _show_line(call: ToolCall, allowed: bool, *, note: str = "") -> None:
    from IPython.display import display

    display(_line_bundle(call, allowed, note), raw=True)
