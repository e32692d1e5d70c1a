"""Async work started from a cell or a button: one coroutine on its own event loop in a worker thread.

A kernel's main thread already runs an event loop and must stay free (for Ctrl-C, the Stop button,
the next cell), so ``compare``, ``apply`` and the panel stream their requests on a ``Background``.
``cancel()``, from any thread, cancels the task on its own loop: every ``async with`` and
``finally`` runs, so the streams close their connections and keep what arrived. The loop then shuts
down the way ``asyncio.run`` does. The caller's thread waits with ``wait()``, drawing in between;
Ctrl-C raises KeyboardInterrupt there, in the caller, which decides what stopping means:

    work = Background("qwen-apply").start(lambda: ask_all(rows))
    try:
        while not work.wait(0.1):
            redraw()
    except KeyboardInterrupt:
        work.stop()  # cancel, and wait for the streams to close
    work.result()  # the coroutine's exception, raised here
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

__all__ = ["Background"]

T = TypeVar("T")
_SLICE = 0.1  # seconds: how often wait() lets a pending Ctrl-C in


class Background(Generic[T]):
    """Runs one coroutine on a fresh event loop in a daemon thread named ``name``.

    ``finished`` is set once the coroutine ended, the loop closed and ``on_exit(self)`` (called in
    the worker thread, for a button's caller that has no thread waiting) returned.
    """

    def __init__(
        self, name: str = "qwen-background", *, on_exit: Callable[[Background[T]], object] | None = None
    ) -> None:
        self.name = name
        self.finished = threading.Event()
        self._on_exit = on_exit
        self._lock = threading.Lock()  # between cancel() in any thread and the task's birth and death
        self._cancel_requested = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[T] | None = None
        self._thread: threading.Thread | None = None
        self._value: T | None = None
        self._error: BaseException | None = None
        self._cancelled = False

    def __repr__(self) -> str:
        state = "not started" if self._thread is None else ("finished" if self.done else "running")
        return f"<Background {self.name!r} {state}>"

    # -- state ------------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.finished.is_set()

    @property
    def cancel_requested(self) -> bool:
        """``cancel()`` was called (the coroutine may have finished anyway)."""
        return self._cancel_requested

    @property
    def cancelled(self) -> bool:
        """The coroutine ended by cancellation: its CancelledError reached the top, or it never ran."""
        return self._cancelled

    @property
    def error(self) -> BaseException | None:
        """The exception the coroutine raised (not its cancellation)."""
        return self._error

    # -- control ----------------------------------------------------------------------------------
    def start(self, make: Callable[[], Coroutine[Any, Any, T]]) -> Background[T]:
        """Run ``make()``'s coroutine in the worker thread; return at once."""
        if self._thread is not None:
            raise RuntimeError("a Background runs one coroutine; make another one")
        self._thread = threading.Thread(target=self._main, args=(make,), name=self.name, daemon=True)
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Cancel the coroutine on its loop, from any thread; before it started, it never runs."""
        with self._lock:
            self._cancel_requested = True
            if self._loop is not None and self._task is not None:
                self._loop.call_soon_threadsafe(self._task.cancel)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the work is over (True) or ``timeout`` passed (False).

        Ctrl-C in the calling thread raises KeyboardInterrupt here; the work goes on until cancelled.
        """
        if self._thread is None:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        # in slices: a thread blocked on a lock sees no Ctrl-C on Windows, nor a simulated one
        # (_thread.interrupt_main); between two slices the pending KeyboardInterrupt is raised
        while True:
            left = _SLICE if deadline is None else min(_SLICE, deadline - time.monotonic())
            if self.finished.wait(max(left, 0.0)):
                break
            if deadline is not None and time.monotonic() >= deadline:
                return False
        if threading.current_thread() is not self._thread:
            self._thread.join()  # it has nothing left to do but exit
        return True

    def stop(self) -> None:
        """Cancel and wait for the end; a Ctrl-C meanwhile cancels again rather than leaving it running."""
        while True:
            self.cancel()
            try:
                self.wait()
                return
            except KeyboardInterrupt:
                continue

    def result(self) -> T | None:
        """What the coroutine returned (None if cancelled); its exception is raised here.

        Waits for the end, except in ``on_exit``, where the coroutine has ended already.
        """
        if threading.current_thread() is not self._thread:
            self.wait()
        if self._error is not None:
            raise self._error
        return self._value

    # -- the worker thread ------------------------------------------------------------------------
    def _main(self, make: Callable[[], Coroutine[Any, Any, T]]) -> None:
        loop = asyncio.new_event_loop()
        try:
            asyncio.set_event_loop(loop)
            try:
                with self._lock:
                    task = loop.create_task(make())
                    self._loop, self._task = loop, task
                    if self._cancel_requested:
                        task.cancel()
                self._value = loop.run_until_complete(task)
            except asyncio.CancelledError:
                self._cancelled = True
            except BaseException as exc:  # a bug must reach the caller, not die with the thread
                self._error = exc
            finally:
                with self._lock:
                    self._loop = self._task = None  # cancel() from now on has nothing to cancel
                _shutdown(loop)
        finally:
            asyncio.set_event_loop(None)
            loop.close()
            try:
                if self._on_exit is not None:
                    self._on_exit(self)
            finally:
                self.finished.set()


def _shutdown(loop: asyncio.AbstractEventLoop) -> None:
    """What ``asyncio.run`` does at the end: cancel leftover tasks, close async generators and the
    default executor's threads."""
    leftover = asyncio.all_tasks(loop)
    for task in leftover:
        task.cancel()
    if leftover:
        loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
    for task in leftover:
        if not task.cancelled() and task.exception() is not None:
            loop.call_exception_handler(
                {"message": "unhandled exception while a Background shut down", "exception": task.exception()}
            )
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.run_until_complete(loop.shutdown_default_executor())
