"""A batch job's progress while ``wait`` watches it: state, counts, elapsed time, the estimate before
and the cost after.

In a notebook it is one live output (``display/live.py``) with a ``<progress>`` bar that ends as a
line of text; in a terminal or a script, a line on stderr redrawn in place, then the same summary
on stdout. The clock keeps ticking between looks at the service.
"""

from __future__ import annotations

import html
import sys
import time
from typing import TYPE_CHECKING

from ..display.live import Live, is_rich_frontend

if TYPE_CHECKING:
    from .job import Batch, Status

__all__ = ["Watch", "resume_hint"]

TICK = 0.25  # seconds between redraws of the clock


def resume_hint(job_id: str) -> str:
    return f'qwen_magics.Batch.resume("{job_id}")'


class Watch:
    def __init__(self, job: Batch, *, enabled: bool) -> None:
        self.job = job
        self.enabled = enabled
        self.rich = enabled and is_rich_frontend()
        self.live = Live(quiet=TICK)
        self.started = time.time()
        self._line = ""

    def _text(self, status: Status) -> str:
        return f"qwen batch {self.job.id}: {status}"

    def show(self, status: Status) -> None:
        if not self.enabled:
            return
        text = self._text(status)
        if self.rich:
            done = status.completed + status.failed
            bar = f"<progress value='{done}' max='{max(status.total, 1)}' style='width:240px'></progress>"
            self.live.draw({"text/html": f"{bar} <span>{html.escape(text)}</span>", "text/plain": text})
        elif text != self._line:
            sys.stderr.write("\r" + text.ljust(len(self._line)))
            sys.stderr.flush()
        self._line = text

    def sleep(self, seconds: float, status: Status) -> None:
        """Wait ``seconds``, redrawing the elapsed time as it goes."""
        end = time.monotonic() + seconds
        base = status.elapsed - (time.time() - self.started)
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(TICK, left))
            if self.enabled and self.live.due(1):
                status.elapsed = base + (time.time() - self.started)
                self.show(status)

    def close(self, status: Status | None, *, interrupted: bool = False) -> None:
        """Leave the last state as text (and, after Ctrl-C, how to pick the job up again: said even
        without a progress display)."""
        if not self.enabled and not interrupted:
            return
        if self.rich is False and self._line:
            sys.stderr.write("\r" + " " * len(self._line) + "\r")
            sys.stderr.flush()
        if status is None:
            return
        text = self._text(status)
        if status.errors:
            text += "\n" + "\n".join(status.errors)
        if interrupted:
            text += (
                f"\nStopped waiting; the job goes on at the service. Pick it up with "
                f"{resume_hint(self.job.id)} (.status(), .wait(), .result())."
            )
        if self.rich:
            self.live.draw({"text/plain": text})
        else:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
