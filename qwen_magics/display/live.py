"""One live output that redraws at a bounded rate: the one mechanism every streaming view draws with.

In the spirit of rich's ``Live``: a ``Live`` owns its target (a display id in the cell's output, or a
``publish(bundle, update)`` callback that draws into a widget), the rate limit (at most ``max_rate``
display messages in any rolling second, one of them kept for the final render) and the final exact
draw, which is never held back; ``stop`` and ``drain`` settle a stream after a Ctrl-C or Stop.
``freeze`` leaves the current output (only ``redraw_frozen`` draws it again) and sends later draws
to a new output below it, so a view can send each finished piece once and redraw only the open
tail. ``growth``, ``step`` and ``quiet`` let a view skip redraws that would re-send a large frame
for a small change: a redraw is then due when the first text arrives, when the frame grew by
``growth`` (a fraction) plus ``step`` characters, or when ``quiet`` seconds went by without one
(``quiet`` alone: one frame each ``quiet`` seconds); after a freeze, the new output waits ``quiet``
seconds for its first due redraw, so a piece that finishes sooner is sent once, frozen. A view whose
first frame already shows its layout (the grid) sets ``eager=False``: the first text then waits for
the next beat like any other change.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..api.response import Response

__all__ = ["MAX_RATE", "Live", "drain", "is_rich_frontend", "stop"]

MAX_RATE = 15.0

Publish = Callable[[dict[str, str], bool], None]


def is_rich_frontend() -> bool:
    """True inside a Jupyter kernel (display messages reach a browser), False in terminal IPython."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ != "TerminalInteractiveShell"


class Live:
    """A redrawn output. ``due()`` says whether a redraw may go out now; ``draw`` sends one."""

    def __init__(
        self,
        *,
        max_rate: float = MAX_RATE,
        publish: Publish | None = None,
        growth: float = 0.0,
        step: int = 0,
        quiet: float = 0.0,
        eager: bool = True,
    ) -> None:
        self.max_rate = max_rate
        self.eager = eager
        # One draw a second is kept for the final render, so the steady rate is max_rate - 1.
        self.interval = 1.0 / max(max_rate - 1, 1.0) if max_rate > 0 else 0.0
        self.growth = growth
        self.step = step
        self.quiet = quiet
        self.publish = publish
        self.draws = 0  # display messages sent
        self._handle: Any = None
        self._frozen: list[Any] = []  # the display handles of the outputs left by ``freeze``
        self._shown = False
        self._recent: deque[float] = deque()
        self._size = 0  # the size the last redraw was made at (for ``growth``)
        self._opened = float("-inf")  # when the current output opened after a freeze

    @property
    def can_freeze(self) -> bool:
        """Frozen outputs need the cell's own output area; a widget target is one output."""
        return self.publish is None

    @property
    def shown(self) -> bool:
        return self._shown

    def due(self, size: int | None = None, *, now: float | None = None) -> bool:
        """A redraw may go out: ``interval`` since the last one, room left in the last second, and
        (given ``size``) the first text, or the frame grew enough since the last redraw, or ``quiet``
        seconds passed."""
        now = time.perf_counter() if now is None else now
        recent = self._recent
        if recent and now - recent[-1] < self.interval:
            return False
        while recent and now - recent[0] >= 1.0:
            recent.popleft()
        if len(recent) >= self.max_rate - 1:
            return False
        if size is None or not (self.growth or self.step or self.quiet):
            return True
        if now - self._opened < self.quiet:
            return False  # a piece that finishes this soon goes straight to its frozen output
        if size and not self._size and self.eager:
            return True  # the first text
        if (self.growth or self.step) and size >= self._size * (1.0 + self.growth) + self.step:
            return True
        last = recent[-1] if recent else float("-inf")
        return now - last >= self.quiet

    def draw(
        self, bundle: dict[str, str], *, size: int | None = None, metadata: dict[str, Any] | None = None
    ) -> None:
        """Send ``bundle`` to the current output (opening it if needed), whatever the rate.
        ``metadata`` goes with it into the saved notebook (a widget target has none)."""
        self.draws += 1
        self._recent.append(time.perf_counter())
        if size is not None:
            self._size = size
        update = self._shown
        self._shown = True
        if self.publish is not None:
            self.publish(bundle, update)
            return
        if self._handle is None:
            from IPython.display import display

            self._handle = display(bundle, raw=True, display_id=True, metadata=metadata)
        elif metadata is not None:
            self._handle.update(bundle, raw=True, metadata=metadata)
        else:
            self._handle.update(bundle, raw=True)

    def freeze(self, bundle: dict[str, str] | None = None) -> None:
        """Leave the current output for good (drawn as ``bundle`` first, when given); the next draw
        opens a new output below it."""
        if bundle is not None:
            self.draw(bundle)
        if self.can_freeze:
            if self._handle is not None:
                self._frozen.append(self._handle)
            self._handle = None
            self._shown = False
            self._size = 0
            self._opened = time.perf_counter()

    def redraw_frozen(self, bundles: list[dict[str, str]]) -> None:
        """Draw the frozen outputs again, oldest first (a view changed after they were left)."""
        if len(bundles) != len(self._frozen):
            raise ValueError(f"{len(bundles)} bundles for {len(self._frozen)} frozen outputs")
        for handle, bundle in zip(self._frozen, bundles, strict=True):
            self.draws += 1
            self._recent.append(time.perf_counter())
            handle.update(bundle, raw=True)


def stop(response: Response) -> None:
    """After Ctrl-C or Stop: close the connection and settle the Response with what arrived."""
    response.interrupt()
    if response.done:
        return
    try:
        for _ in response:  # the closed connection ends the stream at once
            pass
    except Exception:  # reading a closed stream fails; what arrived is kept
        pass


def drain(response: Response) -> None:
    """Read a stream to its end without drawing; a Ctrl-C on the way stops it, keeping what arrived."""
    try:
        for _ in response:
            pass
    except KeyboardInterrupt:
        stop(response)
    except Exception:  # reading a closed stream may fail; what arrived is kept
        if not response.done:
            response.interrupt()
