"""The stop button pressed at random moments across 50 streams in a real kernel: before the request,
while waiting for the first token, mid-stream and after the end. The kernel stays usable, partial
answers are kept, and no connection or thread is left behind, in the kernel or in the server."""

from __future__ import annotations

import json
import queue
import random
import time
from collections.abc import Iterator
from typing import Any

import pytest
from jupyter_client.manager import KernelManager

from qwen_magics.emulator import Emulator
from qwen_magics.emulator.answers import SimpleGenerator

from .conftest import open_connections
from .kernels import kernel_env, run, running_kernel
from .waiting import wait_until

pytestmark = pytest.mark.kernel

STREAMS = 50
LENGTH = 30  # filler words: about 40 chunks, 0.4 s at 10 ms a chunk
TOKEN_DELAY = 0.01

# run in the kernel: what each stream kept, and the kernel's own sockets and threads
PROBE = """
import json, os, threading
def _socket_fds():
    found = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            found[fd] = target
    import psutil
    for c in psutil.Process().net_connections(kind="inet"):
        if str(c.fd) in found:
            found[str(c.fd)] = f"{c.laddr} -> {c.raddr} {c.status}"
    return found
_kept = {}
for _i in range(%d):
    _r = globals().get(f"r{_i}")
    if _r is not None:
        _kept[_i] = [_r.done, _r.interrupted, _r.incomplete, _r.partial_text]
print(json.dumps({"kept": _kept, "sockets": _socket_fds(),
                  "threads": sorted(t.name for t in threading.enumerate())}))
"""


def probe(kc: Any) -> dict[str, Any]:
    reply, messages = run(kc, PROBE % STREAMS)
    assert reply["status"] == "ok", reply
    out = "".join(m["content"].get("text", "") for m in messages if m["msg_type"] == "stream")
    return dict(json.loads(out.strip().splitlines()[-1]))


@pytest.fixture
def slow_kernel(emulator: Emulator) -> Iterator[tuple[KernelManager, Any]]:
    emulator.generator = SimpleGenerator(length=LENGTH)
    emulator.token_delay = TOKEN_DELAY
    with running_kernel(kernel_env(emulator)) as km_kc:
        yield km_kc


def finish(kc: Any, msg_id: str, timeout: float = 20) -> dict[str, Any]:
    """Wait for the cell to end; its reply. A press that lands in ipykernel's own dispatch code is
    logged by the kernel ("KeyboardInterrupt caught in kernel") and the cell gets no reply."""
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if (
            msg["parent_header"].get("msg_id") == msg_id
            and msg["msg_type"] == "status"
            and msg["content"]["execution_state"] == "idle"
        ):
            break
    while True:
        try:
            reply = kc.get_shell_msg(timeout=2)
        except queue.Empty:
            return {"status": "no reply"}
        if reply["parent_header"].get("msg_id") == msg_id:
            return dict(reply["content"])


@pytest.mark.timeout(180)
def test_stop_at_random_moments_keeps_partial_answers_and_leaves_nothing_open(
    emulator: Emulator, slow_kernel: tuple[KernelManager, Any]
) -> None:
    km, kc = slow_kernel
    reply, _ = run(kc, "%load_ext qwen_magics")
    assert reply["status"] == "ok"
    reply, _ = run(kc, "%%qwen --no-thinking -o warm\nWarm up.")  # imports, the connection pool
    assert reply["status"] == "ok"
    took = time.perf_counter()
    reply, _ = run(kc, "%%qwen --no-thinking -o timed\nStory timed: tell a long story.")
    took = time.perf_counter() - took  # one whole stream, as the kernel runs it
    before = probe(kc)
    full_length = len("".join(SimpleGenerator(length=LENGTH).answer("Story 0: tell a long story.")))

    rng = random.Random(8)
    replies = []
    started = time.perf_counter()
    for i in range(STREAMS):
        msg_id = kc.execute(f"%%qwen --no-thinking -o r{i}\nStory {i}: tell a long story.")
        # early (before or at the first token), during the stream, or after it ended
        moment = rng.choices([(0.0, 0.03), (0.03, took), (took, 1.5 * took)], weights=[2, 6, 2])[0]
        time.sleep(rng.uniform(*moment))
        km.interrupt_kernel()
        replies.append(finish(kc, msg_id))
    spent = time.perf_counter() - started

    # the kernel is usable: it runs code, and a new stream completes
    reply, _ = run(kc, "%%qwen --no-thinking -o after\nStory after: tell a long story.")
    assert reply["status"] == "ok"
    after = probe(kc)
    failed = [r for r in replies if r["status"] != "ok"]
    # the earliest presses land before the magic runs, in IPython's or ipykernel's own code: a plain
    # KeyboardInterrupt, or (ipykernel: "KeyboardInterrupt caught in kernel") no reply at all
    assert all(r["status"] == "no reply" or r["ename"] == "KeyboardInterrupt" for r in failed), failed
    assert len(failed) <= STREAMS // 5, failed

    kept = {int(i): v for i, v in after["kept"].items()}
    stopped, whole = 0, 0
    for i, (done, interrupted, incomplete, partial) in kept.items():
        sent = "".join(SimpleGenerator(length=LENGTH).answer(f"Story {i}: tell a long story."))
        assert done, f"r{i} is still streaming"
        assert sent.startswith(partial) and partial, f"r{i} kept {partial!r}, not a prefix of the answer"
        if interrupted:
            stopped += 1
            assert incomplete
        else:
            whole += 1
            assert partial == sent and not incomplete
    not_started = STREAMS - len(kept)  # stopped before the first token: nothing kept, by design
    assert stopped >= 10 and whole >= 1, (stopped, whole, not_started)

    # nothing left open: the kernel's sockets and threads, and the server's connections
    new = {fd: what for fd, what in after["sockets"].items() if before["sockets"].get(fd) != what}
    assert len(after["sockets"]) <= len(before["sockets"]), new
    assert after["threads"] == before["threads"]
    # the kernel's one idle keep-alive connection; the server closes the others as it sees them go
    wait_until(
        lambda: len(open_connections(emulator)) <= 1, timeout=5, what="the server's connections to close"
    )
    # a press while the request body was on its way leaves the server half a body: not JSON
    records = {r.body["messages"][-1]["content"]: r for r in emulator.chat_requests if r.body}
    cut_short = [i for i, (_, stop, _, partial) in kept.items() if stop and len(partial) < full_length - 40]
    for i in cut_short:  # stopped well before the end: the server saw the connection close
        assert records[f"Story {i}: tell a long story."].client_closed is not None, (
            f"r{i}: streamed to nobody"
        )
    assert len(cut_short) >= 5
    early = not_started - len(failed)
    print(
        f"{STREAMS} presses, {took:.2f}s a stream, {spent:.1f}s in all: {stopped} mid-stream, {whole} after"
    )
    print(f"the end, {early} before the first token, {len(failed)} before the magic started")
