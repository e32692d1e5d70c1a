"""Offline mode: with no key and no base URL, the emulator runs in this process on loopback.

Its answers come from a small language model that samples real text; they are not Qwen's. Every
footer says "offline". Set DASHSCOPE_API_KEY to use Qwen Cloud instead.
"""

from __future__ import annotations

import os
import secrets
from typing import TYPE_CHECKING

from . import config

if TYPE_CHECKING:
    from .emulator import Emulator

__all__ = ["NOTICE", "is_active", "needed", "start", "stop"]

NOTICE = (
    "qwen-magics: offline simulator. No DASHSCOPE_API_KEY is set, so answers are generated locally "
    "by a small sampling model and are not Qwen's. Set DASHSCOPE_API_KEY to use Qwen Cloud."
)
DEFAULT_TOKENS_PER_SECOND = 50.0

_emulator: Emulator | None = None


def needed() -> bool:
    """QWEN_OFFLINE=1, or neither a key nor a base URL anywhere."""
    env = os.environ
    if env.get("QWEN_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    configured = config.configured()
    if configured.get("offline"):
        return True
    has_key = env.get("DASHSCOPE_API_KEY") or configured.get("api_key")
    has_url = env.get("DASHSCOPE_BASE_URL") or configured.get("base_url")
    return not has_key and not has_url


def is_active() -> bool:
    return _emulator is not None


def start(tokens_per_second: float | None = None) -> Emulator:
    """Start the in-process emulator (once) and point the configuration at it."""
    global _emulator
    if _emulator is None:
        from .emulator import Emulator

        rate = tokens_per_second
        if rate is None:
            rate = float(os.environ.get("QWEN_OFFLINE_TOKENS_PER_SECOND", DEFAULT_TOKENS_PER_SECOND))
        key = "sk-offline-" + secrets.token_hex(12)
        emulator = Emulator(api_key=key, token_delay=1.0 / rate if rate > 0 else 0.0)
        emulator.start()
        config.configure(base_url=emulator.base_url, api_key=key, offline=True)
        _emulator = emulator
    return _emulator


def stop() -> None:
    global _emulator
    if _emulator is not None:
        _emulator.stop()
        _emulator = None
        config.configure(base_url=None, api_key=None, offline=None)
