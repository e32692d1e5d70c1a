"""Background: one coroutine, own loop in a worker thread, cancelled from any thread, shut down cleanly."""

from __future__ import annotations

import _thread
import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator

import pytest

from qwen_magics.runner import Background


def workers() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("test-bg")]


def test_the_result_comes_back_and_the_thread_is_gone() -> None:
    async def answer() -> int:
        await asyncio.sleep(0.01)
        return 42

    work = Background("test-bg").start(answer)
    assert work.result() == 42
    assert work.done and not work.cancelled and work.error is None and workers() == []


def test_the_coroutines_exception_is_raised_in_the_caller() -> None:
    async def broken() -> None:
        raise ValueError("a bug of ours")

    work = Background("test-bg").start(broken)
    assert work.wait(5)
    with pytest.raises(ValueError, match="a bug of ours"):
        work.result()
    assert isinstance(work.error, ValueError) and workers() == []


def test_cancel_from_another_thread_runs_the_coroutines_cleanup_on_its_loop() -> None:
    cleaned: list[bool] = []

    async def long() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            cleaned.append(threading.current_thread().name == "test-bg")

    work = Background("test-bg").start(long)
    time.sleep(0.05)
    started = time.monotonic()
    threading.Thread(target=work.cancel).start()  # a Stop button's handler, say
    assert work.wait(2) and time.monotonic() - started < 0.5
    assert cleaned == [True] and work.cancelled and work.cancel_requested and work.result() is None


def test_cancelled_before_it_started_the_coroutine_never_runs() -> None:
    ran: list[bool] = []

    async def body() -> None:
        ran.append(True)

    work: Background[None] = Background("test-bg")
    work.cancel()
    work.start(body)
    assert work.wait(2) and work.cancelled and ran == []


def test_ctrl_c_reaches_the_waiting_caller_which_then_stops_the_work() -> None:
    cleaned: list[bool] = []

    async def long() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            cleaned.append(True)

    work = Background("test-bg").start(long)
    timer = threading.Timer(0.1, _thread.interrupt_main)
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        work.wait()
    assert not work.done  # the caller decides what Ctrl-C means
    work.stop()
    assert work.done and work.cancelled and cleaned == [True] and workers() == []


def test_shutdown_closes_leftover_tasks_async_generators_and_the_loop() -> None:
    closed: list[str] = []
    loops: list[asyncio.AbstractEventLoop] = []

    async def forever() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            closed.append("task")

    async def numbers() -> AsyncIterator[int]:
        try:
            for i in range(10):
                yield i
        finally:
            closed.append("generator")

    async def careless() -> int:
        loops.append(asyncio.get_running_loop())
        left = asyncio.ensure_future(forever())  # never awaited
        gen = numbers()
        first = await gen.__anext__()  # never closed
        await asyncio.sleep(0)
        assert not left.done()
        return first

    work = Background("test-bg").start(careless)
    assert work.result() == 0
    assert sorted(closed) == ["generator", "task"] and loops[0].is_closed()


def test_cancel_after_the_end_does_nothing() -> None:
    async def quick() -> str:
        return "done"

    work = Background("test-bg").start(quick)
    assert work.result() == "done"
    work.cancel()
    work.stop()
    assert not work.cancelled and work.result() == "done"


def test_on_exit_runs_in_the_worker_before_finished_is_set() -> None:
    seen: list[tuple[str, bool, bool]] = []

    def on_exit(work: Background[None]) -> None:
        seen.append((threading.current_thread().name, work.done, work.wait(0)))

    async def nothing() -> None:
        pass

    work = Background("test-bg", on_exit=on_exit).start(nothing)
    assert work.wait(2)
    assert seen == [("test-bg", False, False)]


def test_a_background_runs_one_coroutine() -> None:
    async def nothing() -> None:
        pass

    work = Background("test-bg").start(nothing)
    with pytest.raises(RuntimeError, match="one coroutine"):
        work.start(nothing)
    assert work.wait(2)


def test_the_runner_knows_nothing_of_notebooks() -> None:
    code = (
        "import sys, qwen_magics.runner; "
        "print([m for m in ('IPython', 'ipywidgets', 'httpx', 'pandas') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
