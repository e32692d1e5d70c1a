"""Real Jupyter kernels for tests: started with the emulator in their environment, driven by messages."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from jupyter_client.manager import KernelManager

from qwen_magics.emulator import Emulator

from .conftest import ENV_VARS, TEST_KEY


def kernel_env(emulator: Emulator, key: str = TEST_KEY, **extra: str) -> dict[str, str]:
    """The kernel finds the emulator the way a user's kernel finds Qwen: through its environment."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env.update(DASHSCOPE_BASE_URL=emulator.base_url, DASHSCOPE_API_KEY=key, **extra)
    return env


@contextmanager
def running_kernel(env: dict[str, str]) -> Iterator[tuple[KernelManager, Any]]:
    """A python3 kernel and its client, shut down afterwards."""
    km = KernelManager(kernel_name="python3")
    km.start_kernel(env=env)
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def run(kc: Any, code: str, timeout: float = 30) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Execute code; return the reply and the iopub messages of this execution."""
    msg_id = kc.execute(code)
    messages = []
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        messages.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    return kc.get_shell_msg(timeout=timeout)["content"], messages


def press_stop(km: Any, kc: Any, msg_id: str) -> tuple[dict[str, Any], dict[str, str] | None, float]:
    """Interrupt the kernel as Jupyter's stop button does; wait for the cell to end.

    Returns the cell's reply, the last display update it sent (the final render) and the seconds
    from the press to that update.
    """
    km.interrupt_kernel()
    pressed = time.perf_counter()
    final, final_at = None, pressed
    while True:
        msg = kc.get_iopub_msg(timeout=10)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "update_display_data":
            final, final_at = msg["content"]["data"], time.perf_counter()
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    return kc.get_shell_msg(timeout=10)["content"], final, final_at - pressed
