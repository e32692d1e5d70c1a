"""A Batch API job outlives its kernel: sent with wait=False in one kernel, picked up with
``Batch.resume(id)`` in the restarted kernel; the stop button while waiting stops the waiting only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qwen_magics.emulator import Emulator

from .kernels import kernel_env, press_stop, run, running_kernel
from .waiting import wait_until

pytestmark = pytest.mark.kernel


def output(messages: list[dict[str, Any]]) -> str:
    return "".join(m["content"].get("text", "") for m in messages if m["msg_type"] == "stream")


def ok(kc: Any, code: str, timeout: float = 60) -> str:
    reply, messages = run(kc, code, timeout)
    assert reply["status"] == "ok", (reply, output(messages))
    return output(messages)


def test_job_survives_a_kernel_restart(emulator: Emulator, tmp_path: Path) -> None:
    emulator.batches.speed = 20  # still running when the kernel goes
    env = kernel_env(emulator, QWEN_BATCHES=str(tmp_path / "batches"))
    with running_kernel(env) as (km, kc):
        printed = ok(
            kc,
            "import qwen_magics\n"
            "job = qwen_magics.batch([f'question {i}' for i in range(40)], model='qwen-plus', wait=False)\n"
            "print(job.id)",
        )
        job_id = printed.strip().splitlines()[-1]
        assert emulator.batches.batches[job_id].status in ("validating", "in_progress")
        km.restart_kernel(now=True)
        kc.wait_for_ready(timeout=60)
        assert "job" not in ok(kc, "print(sorted(k for k in globals() if not k.startswith('_')))")
        printed = ok(
            kc,
            "import json, qwen_magics\n"
            f"out = qwen_magics.Batch.resume({job_id!r}).result()\n"
            "print(json.dumps([r.text for r in out]))",
        )
    texts = json.loads(printed.strip().splitlines()[-1])
    assert texts == [f"You asked: question {i}. This is the emulator's answer." for i in range(40)]


def test_stop_button_while_waiting_keeps_the_job(emulator: Emulator, tmp_path: Path) -> None:
    emulator.batches.speed = 10
    env = kernel_env(emulator, QWEN_BATCHES=str(tmp_path / "batches"))
    with running_kernel(env) as (km, kc):
        ok(kc, "import qwen_magics\njob = qwen_magics.batch(['a', 'b'] * 30, model='qwen-plus', wait=False)")
        job_id = ok(kc, "print(job.id)").strip()
        msg_id = kc.execute("job.wait()")
        # only wait() reads the batch: its second look means it is in its loop
        wait_until(lambda: sum(r.method == "GET" for r in emulator.requests) >= 2, 20, "the wait to look")
        reply, final, _ = press_stop(km, kc, msg_id)
        assert reply["status"] == "ok"  # stopping the wait is not an error
        assert final is not None and "Stopped waiting; the job goes on" in final["text/plain"]
        assert f'qwen_magics.Batch.resume("{job_id}")' in final["text/plain"]
        assert emulator.batches.batches[job_id].status == "in_progress"
        assert ok(kc, "print(job.interrupted)").strip() == "True"
        emulator.batches.speed = None
        assert ok(kc, "print(len([r for r in job.result() if r.error is None]))").strip() == "60"
