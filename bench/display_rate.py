"""What a notebook user sees of a fast stream: %%qwen against Jupyter AI 2's and 3's %%ai, in real kernels.

The emulator (in this process) answers 5,000 tokens at 2,000 tokens/s. A small TCP proxy between the
kernel and the emulator timestamps the first and last token bytes as they reach the socket; a
jupyter_client in this process timestamps each display message as it arrives. Reported: display
messages per second and in the busiest second (target <= 15), last token to final render (target
<= 50 ms), first token at the socket to first visible render (target <= 30 ms), and request to first
visible answer text. The peers, jupyter-ai-magics 2.31.7 and jupyter-ai-magic-commands 0.0.4, run
in their own throwaway venvs (``bench/peer.py``), each pointed at the same emulator as an
OpenAI-compatible server (``peer_cells``). A peer that asks without streaming gets a server that
takes the stream's duration before answering, as a real server generating 5,000 tokens would.
Run: ``python bench/display_rate.py [--peer-venvs DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

from qwen_magics.emulator import Emulator
from qwen_magics.emulator.answers import SimpleGenerator

sys.path.insert(0, str(Path(__file__).parent))
from peer import JUPYTER_AI_2, JUPYTER_AI_3, PEERS, Peer, PeerSpec

TOKENS = 5000
RATE = 2000.0
KEY = "sk-bench-fake-key-for-benchmarks"
MODEL = "qwen-plus"  # thinking off by default: every token is answer text, for both magics
TOKEN_BYTES = re.compile(rb'"(?:reasoning_)?content":\s*"[^"]')
MAX_RATE, FINAL_MS, FIRST_MS = 15.0, 50.0, 30.0
FIRST_WORD = "You"  # the answer's first token: visible text starts when it is on screen


def answer_text() -> str:
    base = len(list(SimpleGenerator().answer("bench")))
    text = "".join(SimpleGenerator(length=TOKENS - base).answer("bench"))
    assert len(list(SimpleGenerator(length=TOKENS - base).answer("bench"))) == TOKENS
    return text


class Proxy:
    """Loopback TCP relay that notes when the request goes out and when token bytes come back."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.reset()
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self) -> None:
        self.request_at: float | None = None
        self.first_token: float | None = None
        self.last_token: float | None = None

    def _accept(self) -> None:
        while True:
            client, _ = self.server.accept()
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, answers: bool) -> None:
        try:
            while data := src.recv(65536):
                now = time.perf_counter()
                if answers and TOKEN_BYTES.search(data):
                    self.first_token = self.first_token or now
                    self.last_token = now
                elif not answers and b"POST" in data[:8] and b"/chat/completions" in data:
                    self.request_at = now
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@dataclass
class Run:
    displays: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    visible: float | None = None  # first message with answer text
    stderr: str = ""  # where a magic that reports instead of raising says what went wrong

    def problem(self) -> str:
        shown = self.displays[-1][1].get("text/plain", "") if self.displays else ""
        return (self.stderr.strip() or shown or "no output").splitlines()[-1][:300]


@dataclass
class PeerResult:
    spec: PeerSpec
    note: str  # how it was asked, or why it could not be measured
    figures: dict[str, Any] | None = None  # None: not measured
    streams: bool = True


def start_kernel(python: str, env: dict[str, str], tmp: Path) -> tuple[KernelManager, Any]:
    spec_dir = tmp / "kernels" / "bench"
    spec_dir.mkdir(parents=True, exist_ok=True)
    argv = [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec_dir / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "bench", "language": "python"})
    )
    km = KernelManager(
        kernel_name="bench", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(tmp / "kernels")])
    )
    km.start_kernel(env=env, stderr=subprocess.DEVNULL)
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=120)
    return km, kc


def run_cell(kc: Any, code: str, marker: str) -> Run:
    msg_id = kc.execute(code)
    run = Run()
    while True:
        msg = kc.get_iopub_msg(timeout=120)
        now = time.perf_counter()
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind in ("display_data", "update_display_data", "execute_result"):
            run.displays.append((now, content["data"]))
        if kind == "error":
            raise RuntimeError(f"the cell failed: {content['ename']}: {content['evalue']}")
        if kind == "stream" and content["name"] == "stderr":
            run.stderr += content["text"]
        text = json.dumps(content.get("data") or content.get("text") or "")
        if run.visible is None and marker in text:
            run.visible = now
        if kind == "status" and content["execution_state"] == "idle":
            break
    reply = kc.get_shell_msg(timeout=30)["content"]
    if reply["status"] != "ok":
        raise RuntimeError(f"the cell failed: {reply}")
    return run


def busiest_second(times: list[float]) -> int:
    return max((sum(1 for u in times if t <= u < t + 1.0) for t in times), default=0)


def measure(
    python: str,
    env: dict[str, str],
    setup: str,
    cell: str,
    emu: Emulator,
    proxy: Proxy,
    tmp: Path,
    rate: float,
) -> tuple[Run, Proxy, bool]:
    """Warm up, then time one cell. A client that does not stream gets a server that takes as long as
    the stream would before it answers, like a real one generating the same tokens."""
    km, kc = start_kernel(python, env, tmp)
    try:
        run_cell(kc, setup, "\x00")
        asked = len(emu.chat_requests)
        warm = run_cell(kc, cell.replace("bench", "warm up"), FIRST_WORD)  # imports, connections, caches
        if len(emu.chat_requests) == asked:
            raise RuntimeError(f"no request reached the server: {warm.problem()}")
        if warm.visible is None:
            raise RuntimeError(f"no answer shown: {warm.problem()}")
        streams = emu.chat_requests[-1].body.get("stream") is True
        emu.latency = 0.0 if streams else TOKENS / rate
        emu.queue_reply(answer_text())
        proxy.reset()
        run = run_cell(kc, cell, FIRST_WORD)
        emu.latency = 0.0
        if run.visible is None:
            raise RuntimeError(f"no answer shown: {run.problem()}")
        return run, proxy, streams
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def calibrate(emu: Emulator) -> float:
    """Choose the emulator's pause between chunks so its stream runs at RATE tokens/s."""
    import httpx

    delay = 1.0 / RATE
    for _ in range(3):
        emu.token_delay = delay
        emu.queue_reply(answer_text())
        body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "stream": True}
        started = time.perf_counter()
        with httpx.stream(
            "POST",
            f"{emu.base_url}/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=60,
        ) as r:
            for _ in r.iter_raw():
                pass
        rate = TOKENS / (time.perf_counter() - started)
        if abs(rate - RATE) / RATE < 0.05:
            break
        delay *= rate / RATE
    return rate


def figures(run: Run, marks: tuple[float | None, ...]) -> dict[str, Any]:
    request_at, first_token, last_token = marks
    times = [t for t, _ in run.displays]
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    final = times[-1] if times else None
    return {
        "messages": len(times),
        "per_s": len(times) / span if span else None,
        "busiest": busiest_second(times),
        "final": final - last_token if final and last_token else None,
        "first": run.visible - first_token if run.visible and first_token else None,
        "request": run.visible - request_at if run.visible and request_at else None,
    }


def run_peer(
    spec: PeerSpec,
    keep: Path | None,
    base: dict[str, str],
    url: str,
    emu: Emulator,
    proxy: Proxy,
    tmp: Path,
    rate: float,
) -> PeerResult:
    """One peer in its own kernel; when it cannot be measured the result says why, and ours still prints."""
    with Peer(spec, keep) as peer:
        if peer.python is None:
            return PeerResult(spec, f"NOT MEASURED: {peer.why}")
        extra, setup, cell = peer_cells(spec, url)
        env = dict(base, **spec.env, **extra)
        try:
            run, p, streams = measure(str(peer.python), env, setup, cell, emu, proxy, tmp, rate)
        except Exception as exc:  # report ours even when the peer breaks
            return PeerResult(spec, f"NOT MEASURED: {type(exc).__name__}: {exc}")
        final = run.displays[-1][1] if run.displays else {}
        if not any(answer_text() in str(shown) for shown in final.values()):
            return PeerResult(spec, f"NOT MEASURED: its last output is not the answer: {run.problem()}")
        how = f"{cell.splitlines()[0]!r} ({peer.backend_version()})"
        sent = emu.chat_requests[-1].body.get("stream", "not sent")
        note = (
            f"{how} streams"
            if streams
            else f"{how} does not stream (stream: {sent}): "
            f"its server answered after {TOKENS / rate:.2f} s, the time the stream takes"
        )
        return PeerResult(spec, note, figures(run, (p.request_at, p.first_token, p.last_token)), streams)


def peer_cells(spec: PeerSpec, url: str) -> tuple[dict[str, str], str, str]:
    """How each peer is pointed at an OpenAI-compatible server: its environment, setup cell and cell."""
    if spec is JUPYTER_AI_2:
        env = {"OPENAI_API_KEY": KEY, "OPENAI_API_BASE": url}
        return env, f"%load_ext {spec.extension}", f"%%ai openai-chat-custom:{MODEL}\nbench"
    if spec is JUPYTER_AI_3:
        # LiteLLM's `openai/<model>` with an api_base; %%ai refuses ids outside LiteLLM's model list
        # ("not a known model or alias"), so the id is given as an alias, which carries the api_base.
        setup = f"%load_ext {spec.extension}\n%ai alias qwen openai/{MODEL} --api-base {url}"
        return {"OPENAI_API_KEY": KEY}, setup, "%%ai qwen\nbench"
    raise ValueError(f"no cells for {spec.name}")


def ms(x: float | None) -> str:
    return "—" if x is None else f"{x * 1000:,.0f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--peer-venvs", type=Path, default=None, help="reuse (and keep) the peers' venvs in DIR/<peer>"
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="qwen-bench-display-"))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DASHSCOPE_", "QWEN_", "OPENAI_"))}
    base["IPYTHONDIR"] = str(tmp / "ipython")

    with Emulator(generator="simple", api_key=KEY) as emu:
        rate = calibrate(emu)
        proxy = Proxy(emu.port)
        url = f"http://127.0.0.1:{proxy.port}/compatible-mode/v1"
        ours_env = dict(base, DASHSCOPE_BASE_URL=url, DASHSCOPE_API_KEY=KEY)
        ours, p, ours_stream = measure(
            sys.executable,
            ours_env,
            "%load_ext qwen_magics",
            f"%%qwen -m {MODEL}\nbench",
            emu,
            proxy,
            tmp,
            rate,
        )
        ours_marks = (p.request_at, p.first_token, p.last_token)

        peers = [run_peer(spec, args.peer_venvs, base, url, emu, proxy, tmp, rate) for spec in PEERS]

    o = figures(ours, ours_marks)
    print(
        f"display_rate: {TOKENS:,} tokens at {RATE:,.0f} tokens/s (emulator measured {rate:,.0f}), "
        f"real kernels, model {MODEL}; ours streamed: {ours_stream}"
    )
    heads = [f"%%ai ({peer.spec.short})" for peer in peers]
    print(f"{'':<36} {'%%qwen':>12} " + " ".join(f"{h:>20}" for h in heads) + "  target")

    def cells(key: str, show: Callable[[Any], str]) -> list[str]:
        out = [show(o[key])]
        for peer in peers:
            star = " *" if key == "first" and not peer.streams else ""
            out.append(show(peer.figures[key]) + star if peer.figures else "not measured")
        return out

    def per_second(x: float | None) -> str:
        return "—" if not x else f"{x:.1f}"

    rows = [
        ("display messages", cells("messages", str), ""),
        ("display messages per second", cells("per_s", per_second), f"<= {MAX_RATE:.0f}"),
        ("display messages in busiest second", cells("busiest", str), f"<= {MAX_RATE:.0f}"),
        ("first token at socket -> visible", cells("first", ms), f"<= {FIRST_MS:.0f} ms"),
        ("last token -> final render", cells("final", ms), f"<= {FINAL_MS:.0f} ms"),
        ("request sent -> first visible text", cells("request", ms), ""),
    ]
    for name, (a, *bs), target in rows:
        print(f"{name:<36} {a:>12} " + " ".join(f"{b:>20}" for b in bs) + f"  {target}")
    for peer in peers:
        print(f"peer {peer.spec.name}: {peer.note}")
    if any(peer.figures and not peer.streams for peer in peers):
        print("  * a peer that does not stream gets its first token with the whole answer, at the end")
    final_data = ours.displays[-1][1] if ours.displays else {}
    checks = {
        "exact final render": answer_text() in final_data.get("text/markdown", ""),
        "rate": o["per_s"] is not None and o["per_s"] <= MAX_RATE and o["busiest"] <= MAX_RATE,
        "final": o["final"] is not None and o["final"] * 1000 <= FINAL_MS,
        "first": o["first"] is not None and o["first"] * 1000 <= FIRST_MS,
    }
    print("targets: " + ", ".join(f"{k} {'PASS' if v else 'FAIL'}" for k, v in checks.items()))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
