"""The offline simulator: the emulator in this process on loopback, answering in Qwen Cloud's place.

Its answers come from a small language model that samples real text; they are not Qwen's. Footers
and ``Response.offline`` say "offline". It starts:

* in Jupyter, when ``%load_ext qwen_magics`` finds neither a key nor a base URL, or QWEN_OFFLINE=1;
* anywhere, with ``qwen_magics.offline()``, or at the first request when QWEN_OFFLINE=1 is set.

A request that passes its own ``api_key`` or ``base_url`` goes where it says. A key or base URL
set after it started (``login()``, ``configure()``, the environment) takes its place: the next
request goes there, the simulator stops and says so once (``handover``). QWEN_OFFLINE=1 keeps it.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING

from . import config
from .errors import ConfigError

if TYPE_CHECKING:
    from .emulator import Emulator

__all__ = [
    "NOTICE",
    "NOTICE_FORCED",
    "ensure",
    "forced",
    "handover",
    "is_active",
    "needed",
    "offline",
    "start",
    "stop",
]

NOTICE = (
    "qwen-magics: offline simulator. No DASHSCOPE_API_KEY is set, so answers are generated locally "
    "by a small sampling model and are not Qwen's. Run %qwen login or set DASHSCOPE_API_KEY to use "
    "Qwen Cloud."
)
NOTICE_FORCED = (
    "qwen-magics: offline simulator (QWEN_OFFLINE=1): answers are generated locally by a small "
    "sampling model and are not Qwen's. Unset QWEN_OFFLINE to use Qwen Cloud."
)
DEFAULT_TOKENS_PER_SECOND = 50.0

_emulator: Emulator | None = None
_lock = threading.RLock()  # compare and apply resolve their settings from several threads


def forced() -> bool:
    """QWEN_OFFLINE=1: every request without its own key or base URL goes to the simulator."""
    return config.offline_forced()


def needed() -> bool:
    """QWEN_OFFLINE=1, or neither a key nor a base URL anywhere (a .env file included): what
    ``%load_ext`` asks."""
    if forced():
        return True
    env = config.environ()
    configured = config.configured()
    has_key = env.get("DASHSCOPE_API_KEY") or configured.get("api_key")
    has_url = env.get("DASHSCOPE_BASE_URL") or configured.get("base_url")
    return not has_key and not has_url


def is_active() -> bool:
    return _emulator is not None


def offline(tokens_per_second: float | None = None) -> Emulator:
    """Answer this process's requests from the offline simulator: no key, no network.

    For scripts and tests, what ``%load_ext qwen_magics`` does in Jupyter without a key. Returns the
    running Emulator (``.chat_requests`` is its log of what was sent); calling it again returns the
    same one. ``tokens_per_second`` (default QWEN_OFFLINE_TOKENS_PER_SECOND or 50; 0 for as fast as
    it can) paces the stream like a real model.
    """
    return start(tokens_per_second)


def ensure(*, explicit: bool = False) -> None:
    """Before a request: start the simulator when QWEN_OFFLINE=1 asks for it and the request names
    no key or base URL of its own (``explicit``). Says so once, on stderr, so stdout stays the
    script's. A key or base URL that took the simulator's place stops it first (``handover``)."""
    notice = handover()
    if notice:
        print(notice, file=sys.stderr)
    if explicit or _emulator is not None or not forced():
        return
    with _lock:
        if _emulator is not None:
            return
        start()
    print(NOTICE_FORCED, file=sys.stderr)


def start(tokens_per_second: float | None = None) -> Emulator:
    """Start the in-process emulator (once) and point the configuration at it."""
    global _emulator
    with _lock:
        if _emulator is None:
            import secrets

            from .emulator import Emulator

            rate = tokens_per_second
            if rate is None:
                pace = config.environ().get("QWEN_OFFLINE_TOKENS_PER_SECOND")
                rate = float(pace) if pace else DEFAULT_TOKENS_PER_SECOND
            key = "sk-offline-" + secrets.token_hex(12)
            emulator = Emulator(api_key=key, token_delay=1.0 / rate if rate > 0 else 0.0)
            emulator.start()
            config.use_simulator(emulator.base_url, key)
            _emulator = emulator
        return _emulator


def stop() -> None:
    global _emulator
    with _lock:
        if _emulator is not None:
            _emulator.stop()
            _emulator = None
            config.drop_simulator()


def handover() -> str | None:
    """Once a key or base URL of the user's own took the simulator's place (``config.on_simulator``),
    stop the simulator; return the words that say where answers come from now, once, else None."""
    with _lock:
        if _emulator is None or config.on_simulator():
            return None
        stop()
    try:
        settings = config.settings()
    except ConfigError:  # a bad region or URL: the next request says what is wrong
        return "qwen-magics: the offline simulator stopped: a key or base URL of your own is set."
    if settings.base_url_source == "region":
        return (
            f"qwen-magics: key set; answers now come from Qwen Cloud ({settings.where}), "
            "not the offline simulator."
        )
    return f"qwen-magics: answers now come from {settings.base_url}, not the offline simulator."
