"""How many bytes the display sends for the text it shows, and how often: today's code and now's.

Three answers stream from the emulator (in this process; model qwen-plus, thinking off; one token a
chunk, calibrated to --rate tokens/s, 200 by default: a fast real model) into real ipykernels:
(a) one 4,000-token Markdown answer (``%%qwen --max-tokens``), (b) a 16-cell comparison of 400-token
answers (``%%qwen --compare``, 4 temperatures x 4 top_p, its default concurrency of 8), (c) a JSON
answer of about 2,000 tokens (``%%qwen --schema ... --multi``). The answers are queued in the
emulator (Markdown built from its corpus: headings, paragraphs, lists, code blocks), so every run
shows the same text. Each runs against "today" (``--today REV``, default 70a79a6, taken with git
archive) and "now" (this working tree), each in its own kernel whose PYTHONPATH is that tree, beside
the floor: the same tokens printed as they arrive with ``print(chunk, end='', flush=True)`` (in the
today kernel; ipykernel sends each flushed print as its own message, so that floor is one per token).

Every iopub message of the cell that shows something (display_data, update_display_data, stream,
execute_result, clear_output) is counted from its raw frames: content bytes (the content JSON as
sent) and wire bytes (every frame: topic, delimiter, signature, header, parent_header, metadata,
content), each divided by the UTF-8 bytes of the answer text; messages per second in the busiest
1-second window and on average. Targets for "now": content <= 3x the text, <= 15 messages a second.

Then, unless --skip-browser, JupyterLab in headless Chromium runs (a) in each tree's kernel. Set
before the cell runs: a ``longtask`` PerformanceObserver (tasks of 50 ms or more) and a
MutationObserver on the output, whose last change is the final render; Chrome's own count of the
main thread's task time (CDP ``Performance.getMetrics`` TaskDuration) gives the busy time in full.
Run: ``python bench/display_bytes.py [--skip-browser] [--tokens A B C] [--today REV] [--rate R]``.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this tree's emulator, and tests.jupyterlab for the browser

import httpx  # noqa: E402
from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402
from jupyter_client.manager import KernelManager  # noqa: E402

from qwen_magics.emulator import Emulator  # noqa: E402
from qwen_magics.emulator.answers import split_tokens  # noqa: E402

KEY = "sk-bench-fake-key-for-benchmarks"
MODEL = "qwen-plus"  # thinking off by default: every token is answer text
SHOWN = {"display_data", "update_display_data", "stream", "execute_result", "clear_output"}
MAX_RATIO, MAX_RATE = 3.0, 15.0
GRID = "temperature=0.1,0.5,0.9,1.3 top_p=0.6,0.7,0.8,0.9"
SCHEMA = "name, order int, summary"
CORPUS = REPO / "qwen_magics" / "emulator" / "corpus"
WARM_UP = [
    f"%%qwen -m {MODEL}\nwarm up",
    f'%%qwen -m {MODEL} --compare "temperature=0.1,0.5"\nwarm up',
    f'%%qwen -m {MODEL} --schema "{SCHEMA}" --multi\nwarm up',
]


def markdown_answer(tokens: int, seed: int) -> str:
    """Exactly ``tokens`` emulator tokens of answer-like Markdown, from the emulator's corpus."""
    rng = random.Random(seed)
    texts = [f.read_text() for f in sorted(CORPUS.glob("*.txt"))]
    paragraphs = [p.strip() for t in texts for p in t.split("\n\n") if p.strip() and p[0] != "#"]
    parts: list[str] = []
    while len(split_tokens("\n\n".join(parts))) < tokens:
        p, kind = rng.choice(paragraphs), rng.random()
        if kind < 0.15:
            parts.append("## " + " ".join(p.split()[:5]).rstrip(".,"))
        elif kind < 0.35:
            parts.append("\n".join(f"- {s}" for s in re.split(r"(?<=\.) ", p)[:4]))
        elif kind < 0.45:
            words = [w.lower().strip(".,") for w in p.split()[:8]]
            parts.append("```python\nwords = [\n" + "".join(f"    {w!r},\n" for w in words) + "]\n```")
        else:
            parts.append(p)
    return "".join(split_tokens("\n\n".join(parts))[:tokens])


def json_answer(tokens: int, seed: int) -> str:
    """A valid ``{"items": [...]}`` answer for SCHEMA: as many records as fit in ``tokens``."""
    rng = random.Random(seed)
    sentences = re.split(r"(?<=\.) ", markdown_answer(tokens, seed).replace("\n", " "))
    items: list[dict[str, Any]] = []
    while True:
        n = len(items) + 1
        record = {"name": f"item {n}", "order": n, "summary": rng.choice(sentences)}
        if items and len(split_tokens(json.dumps({"items": [*items, record]}, indent=2))) > tokens:
            return json.dumps({"items": items}, indent=2)
        items.append(record)


@dataclass
class Scenario:
    name: str
    cell: str  # the magic, as a user types it
    replies: list[str]  # the emulator's answers, one per request

    @property
    def text_bytes(self) -> int:
        return sum(len(r.encode()) for r in self.replies)

    def floor(self) -> str:
        """The same tokens printed as they arrive (8 streams at once for the grid, like compare)."""
        most = max(len(split_tokens(r)) for r in self.replies) + 1
        run = "_floor(0)"
        if len(self.replies) > 1:
            run = f"with ThreadPoolExecutor(8) as p:\n    list(p.map(_floor, range({len(self.replies)})))"
        return (
            "import qwen_magics\nfrom concurrent.futures import ThreadPoolExecutor\n\ndef _floor(_):\n"
            f"    for e in qwen_magics.ask('bench', model={MODEL!r}, max_tokens={most}):\n"
            "        if e.type == 'text':\n            print(e.text, end='', flush=True)\n\n" + run
        )


@dataclass
class Stats:
    times: list[float] = field(default_factory=list)  # arrival of each shown message
    content: int = 0
    wire: int = 0
    error: str | None = None

    def figures(self, text: int) -> list[str]:
        """Messages, content KB, content / text, wire / text, the busiest second, the mean rate."""
        mean = self.mean()
        ratios = [f"{self.content / 1000:,.1f}", f"{self.content / text:,.1f}x", f"{self.wire / text:,.1f}x"]
        return [str(len(self.times)), *ratios, str(self.peak()), f"{mean:,.1f}" if mean else "-"]

    def peak(self) -> int:
        """The most messages in any 1-second window (one starts at each message)."""
        t = self.times
        return max((bisect.bisect_left(t, s + 1.0) - i for i, s in enumerate(t)), default=0)

    def mean(self) -> float | None:
        span = self.times[-1] - self.times[0] if len(self.times) > 1 else 0.0
        return (len(self.times) - 1) / span if span else None


def calibrate(emu: Emulator, rate: float) -> float:
    """Set the emulator's pause between chunks so that its stream runs at ``rate`` tokens/s."""
    text = markdown_answer(int(rate), 0)  # a second's worth
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "stream": True}
    emu.token_delay = 1.0 / rate
    for _ in range(4):
        emu.queue_reply(text)
        started = time.perf_counter()
        url, auth = f"{emu.base_url}/chat/completions", {"Authorization": f"Bearer {KEY}"}
        with httpx.stream("POST", url, json=body, headers=auth, timeout=60) as r:
            for _ in r.iter_raw():
                pass
        got = int(rate) / (time.perf_counter() - started)
        if abs(got - rate) / rate < 0.03:
            break
        emu.token_delay *= got / rate
    return got


def write_spec(kernels: Path, name: str, env: dict[str, str] | None = None) -> None:
    """A kernel spec running this interpreter's ipykernel (``env``: its extra variables)."""
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (kernels / name).mkdir(parents=True, exist_ok=True)
    spec = {"argv": argv, "display_name": name, "language": "python", "env": env or {}}
    (kernels / name / "kernel.json").write_text(json.dumps(spec))


def start_kernel(tree: Path, env: dict[str, str], tmp: Path, name: str) -> tuple[KernelManager, Any]:
    write_spec(tmp / "kernels", name)
    specs = KernelSpecManager(kernel_dirs=[str(tmp / "kernels")])
    km = KernelManager(kernel_name=name, kernel_spec_manager=specs)
    # cwd is not the repository: `python -m` puts it on sys.path ahead of PYTHONPATH
    km.start_kernel(env=dict(env, PYTHONPATH=str(tree)), cwd=str(tmp), stderr=subprocess.DEVNULL)
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=120)
    return km, kc


def run_cell(kc: Any, code: str) -> Stats:
    """Run one cell; count its shown messages from their raw frames as they arrive."""
    msg_id = kc.execute(code)
    stats, channel = Stats(), kc.iopub_channel
    while True:
        if not channel.socket.poll(180_000):
            raise TimeoutError("no message from the kernel in 180 s")
        frames = channel.socket.recv_multipart()
        now = time.perf_counter()
        _, parts = channel.session.feed_identities(frames)  # signature, header, parent, metadata, content
        msg = channel.session.deserialize(parts, content=True)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind = msg["msg_type"]
        if kind in SHOWN:
            stats.times.append(now)
            stats.content += len(parts[4])
            stats.wire += sum(len(f) for f in frames)
        elif kind == "error":
            stats.error = f"{msg['content']['ename']}: {msg['content']['evalue']}"[:100]
        elif kind == "status" and msg["content"]["execution_state"] == "idle":
            break
    kc.get_shell_msg(timeout=30)
    return stats


def measure(
    tree: Path, env: dict[str, str], tmp: Path, emu: Emulator, scenarios: list[Scenario], floor: bool
) -> tuple[str, dict[str, Stats]]:
    """One kernel on ``tree``: warm up each kind of cell, then run every scenario (and its floor)."""
    km, kc = start_kernel(tree, env, tmp, tree.name)
    results: dict[str, Stats] = {}
    try:
        msg_id = kc.execute(
            "%load_ext qwen_magics", user_expressions={"f": "__import__('qwen_magics').__file__"}
        )
        reply = kc.get_shell_msg(timeout=60)
        while reply["parent_header"].get("msg_id") != msg_id:  # a late kernel_info_reply
            reply = kc.get_shell_msg(timeout=60)
        content = reply["content"]
        if content.get("status") != "ok":
            raise RuntimeError(f"%load_ext qwen_magics failed in {tree}: {content.get('evalue')}")
        where = content["user_expressions"]["f"]["data"]["text/plain"]
        for code in [*WARM_UP, Scenario("", "", ["warm up"]).floor()]:
            run_cell(kc, code)
        for sc in scenarios:
            steps = [("floor", sc.floor()), ("cell", sc.cell)] if floor else [("cell", sc.cell)]
            for kind, code in steps:
                emu.reset()
                for reply in sc.replies:
                    emu.queue_reply(reply)
                stats = results[f"{sc.name}/{kind}"] = run_cell(kc, code)
                asked = len(emu.chat_requests)
                if asked != len(sc.replies) and not stats.error:
                    stats.error = f"{asked} requests for {len(sc.replies)} answers"
        return where.strip("'"), results
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


# -- the browser --------------------------------------------------------------------------------
_START = """(idx) => {
  const panel = window.jupyterapp.shell.currentWidget, cell = panel.content.widgets[idx];
  const m = {tasks: [], start: performance.now(), last: null, done: null};
  window.__bench = m;
  new PerformanceObserver(l => { for (const e of l.getEntries()) m.tasks.push([e.startTime, e.duration]); })
    .observe({type: 'longtask'});
  new MutationObserver(() => { m.last = performance.now(); })
    .observe(cell.outputArea.node, {childList: true, subtree: true, characterData: true});
  panel.content.activeCellIndex = idx;
  window.jupyterapp.commands.execute('notebook:run-cell').then(() => { m.done = performance.now(); });
}"""
_QUIET = "() => window.__bench.done !== null && performance.now() - (window.__bench.last || 0) > 1000"
_OUTPUT = "(i) => window.jupyterapp.shell.currentWidget.content.widgets[i].outputArea.node.innerText"


def browser(trees: dict[str, Path], emu: Emulator, sc: Scenario, tmp: Path) -> list[list[str]] | str:
    """(a) in JupyterLab per tree: the main thread's busy time while it streams, time to final render."""
    try:
        import playwright  # noqa: F401
        import pytest

        from tests.jupyterlab import CHROMIUM, Notebook, chromium, lab_server
    except ImportError as exc:
        return f"needs JupyterLab, playwright and pytest ({exc})"
    if not os.access(CHROMIUM, os.X_OK):
        return f"Chromium is missing ({CHROMIUM}): apt-get install chromium"
    lab_tmp = tmp / "lab"
    for name, tree in trees.items():  # Lab reads kernel specs from its JUPYTER_DATA_DIR, lab_tmp/data
        write_spec(lab_tmp / "data" / "kernels", f"bench-{name}", {"PYTHONPATH": str(tree)})
    cells = ["%load_ext qwen_magics\nprint(__import__('qwen_magics').__file__)", WARM_UP[0], sc.cell]
    rows = []
    try:
        server_env = {"DASHSCOPE_BASE_URL": emu.base_url, "DASHSCOPE_API_KEY": KEY}
        with lab_server(lab_tmp, env=server_env) as lab, chromium() as chrome:
            for name in trees:
                path = lab.write_notebook(f"{name}.ipynb", cells)
                nb = json.loads(path.read_text())
                nb["metadata"]["kernelspec"] = {"name": f"bench-{name}", "display_name": name}
                path.write_text(json.dumps(nb))
                page = chrome.new_page(viewport={"width": 1200, "height": 1400})
                Notebook(page, lab).open(path.name)
                cdp = page.context.new_cdp_session(page)
                cdp.send("Performance.enable")
                for i in range(3):
                    if i == 2:
                        emu.reset()
                        emu.queue_reply(sc.replies[0])
                        before = task_seconds(cdp)
                    page.evaluate(_START, i)
                    page.wait_for_function(_QUIET, timeout=300_000, polling=100)
                busy, m = task_seconds(cdp) - before, page.evaluate("() => window.__bench")
                end = m["last"] or m["done"]
                wall = (end - m["start"]) / 1000
                tasks = [d for s, d in m["tasks"] if m["start"] <= s <= end]
                shown = sc.replies[0].split()[-1].strip("`*#-,.'") in page.evaluate(_OUTPUT, 2)
                figures = [f"{wall:.2f} s", f"{busy:.2f} s ({busy / wall:.0%})", f"{sum(tasks) / 1000:.2f} s"]
                longest = f"{max(tasks, default=0):,.0f} ms"
                where = page.evaluate(_OUTPUT, 0).strip()
                rows.append([name, *figures, len(tasks), longest, "yes" if shown else "NO", where])
                page.evaluate("() => window.jupyterapp.serviceManager.sessions.shutdownAll()")
                page.close()
    except (Exception, pytest.fail.Exception) as exc:
        return f"the browser run failed: {type(exc).__name__}: {str(exc)[:300]}"
    return rows


def task_seconds(cdp: Any) -> float:
    """Chrome's running total of the main thread's task time."""
    metrics = cdp.send("Performance.getMetrics")["metrics"]
    return next(m["value"] for m in metrics if m["name"] == "TaskDuration")


def table(rows: list[list[Any]], right: str) -> None:
    """Columns as wide as their widest cell; those whose letter in ``right`` is 'r' align right."""
    widths = [max(len(str(c)) for c in col) for col in zip(*rows, strict=True)]
    for r in rows:
        cells = [f"{c:>{w}}" if a == "r" else f"{c:<{w}}" for c, w, a in zip(r, widths, right, strict=True)]
        print("  ".join(cells).rstrip())


def scenarios(a: int, b: int, c: int) -> list[Scenario]:
    ask, grid = f"%%qwen -m {MODEL}", [markdown_answer(b, 100 + i) for i in range(16)]
    c_text = json_answer(c, 7)
    n = len(split_tokens(c_text))
    return [
        Scenario(f"(a) one {a:,}-token answer", f"{ask} --max-tokens {a}\nbench", [markdown_answer(a, 1)]),
        Scenario(f"(b) 16 cells x {b:,} tokens", f'{ask} --max-tokens {b} --compare "{GRID}"\nbench', grid),
        Scenario(f"(c) --json, {n:,} tokens", f'{ask} --schema "{SCHEMA}" --multi\nbench', [c_text]),
    ]


def run(args: argparse.Namespace, tmp: Path) -> int:
    today = tmp / "today"
    today.mkdir()
    git = ["git", "-C", str(REPO), "archive", args.today, "qwen_magics"]
    tar = subprocess.run(git, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(today)], input=tar, check=True)
    trees, cases = {"today": today, "now": REPO}, scenarios(*args.tokens)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DASHSCOPE_", "QWEN_", "JUPYTER"))}
    with Emulator(generator="simple", api_key=KEY) as emu:
        rate = calibrate(emu, args.rate)
        env = dict(base, DASHSCOPE_BASE_URL=emu.base_url, DASHSCOPE_API_KEY=KEY, IPYTHONDIR=str(tmp / "ipy"))
        files, results = {}, {}
        for name, tree in trees.items():
            files[name], found = measure(tree, env, tmp, emu, cases, floor=name == "today")
            results.update({f"{k}/{name}": v for k, v in found.items()})
        web = None if args.skip_browser else browser(trees, emu, cases[0], tmp)

    print(
        f"display_bytes: emulator at {rate:,.0f} tokens/s, model {MODEL}, real kernels; "
        f"today = {args.today} ({files['today'].replace(str(tmp), 'TMP')}), now = {files['now']}"
    )
    head = "scenario|run|text KB|msgs|content KB|content/text|wire/text|peak/s|mean/s|target (now)"
    rows: list[list[Any]] = [head.split("|")]
    passed = True
    for sc in cases:
        for kind, key in (("print", "floor/today"), ("today", "cell/today"), ("now", "cell/now")):
            s, text = results[f"{sc.name}/{key}"], sc.text_bytes
            verdict = f"ERROR {s.error} " if s.error else ""
            if kind == "now":
                ok = s.error is None and s.content / text <= MAX_RATIO and s.peak() <= MAX_RATE
                verdict += (
                    f"{'PASS' if ok else 'FAIL'} (content <= {MAX_RATIO:.0f}x, peak <= {MAX_RATE:.0f}/s)"
                )
                passed = passed and ok
            name = sc.name if kind == "print" else ""
            rows.append([name, kind, f"{text / 1000:,.1f}", *s.figures(text), verdict])
    table(rows, "llrrrrrrrl")
    if web is not None:
        print(f"\nJupyterLab, {cases[0].name}, headless Chromium's main thread while it streams:")
        if isinstance(web, str):
            print(f"  SKIPPED: {web}")
        else:
            head = "run|to final render|busy (CDP)|long tasks|count|longest|final text|package"
            table([head.split("|"), *[[*r[:-1], r[-1].replace(str(tmp), "TMP")] for r in web]], "lrrrrrll")
    return 0 if passed else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-browser", action="store_true", help="only the kernel table")
    parser.add_argument(
        "--tokens", type=int, nargs=3, default=[4000, 400, 2000], metavar=("A", "B", "C"),
        help="tokens of the answer (a), of each grid cell (b) and of the JSON answer (c)",
    )  # fmt: skip
    parser.add_argument("--today", default="70a79a6", metavar="REV", help="the revision called today")
    parser.add_argument("--rate", type=float, default=200.0, help="the emulator's tokens per second")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="qwen-bench-bytes-") as tmp:
        code = run(args, Path(tmp))
    print(f"took {time.perf_counter() - started:,.0f} s")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
