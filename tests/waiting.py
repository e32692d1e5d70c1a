"""Waiting for what another thread or process does: on a condition with a deadline, never a fixed sleep.

A fixed sleep is too short on a loaded machine and too long on an idle one; ``wait_until`` returns as
soon as the condition holds and fails with a message naming what never happened.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

POLL = 0.005  # seconds between looks: far below anything the tests wait for


def wait_until(
    condition: Callable[[], object], timeout: float = 10.0, what: str = "the condition", every: float = POLL
) -> None:
    """Return once ``condition()`` is true, looking ``every`` seconds; fail after ``timeout`` seconds
    (a deadline for a hang, not a guess at how long a loaded machine takes)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


class CtrlC:
    """Press Ctrl-C (SIGINT to the main thread, as a terminal does, and Jupyter's stop button to a
    kernel) from another thread once ``condition()`` holds, so the main thread is where the test wants
    it: ``with CtrlC(lambda: ..., what="the answer to show") as ctrl_c: <the code to interrupt>``.

    ``pressed_at`` is when the signal went (``time.perf_counter()``). Leaving the block withdraws a
    press not yet made, so none lands in a later test.
    """

    def __init__(
        self, condition: Callable[[], object], timeout: float = 10.0, what: str = "the moment"
    ) -> None:
        self.condition, self.timeout, self.what = condition, timeout, what
        self.pressed_at: float | None = None
        self._lock = threading.Lock()
        self._withdrawn = False
        self._main = threading.main_thread().ident
        self._thread = threading.Thread(target=self._press, name="test-ctrl-c", daemon=True)

    def __enter__(self) -> CtrlC:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._withdrawn = True
        self._thread.join()
        if exc[0] is None and self.pressed_at is None:
            raise AssertionError(f"Ctrl-C was never pressed: the code ended before {self.what}")

    def _press(self) -> None:
        deadline = time.monotonic() + self.timeout
        while not self.condition():
            if self._withdrawn or time.monotonic() > deadline:
                return
            time.sleep(POLL)
        with self._lock:
            if self._withdrawn:
                return
            self.pressed_at = time.perf_counter()
            signal.pthread_kill(self._main, signal.SIGINT)  # type: ignore[arg-type]
