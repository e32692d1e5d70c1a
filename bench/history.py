"""The history against simonw/llm's logs: time on the asking thread, full-text search, size per answer.

Both log the same answers (a deterministic corpus of prompts and 80-word answers): ours through the
client's hook (``api/record.recorder``, what every Response runs when it ends) into
``history.db``; llm's through its Python API, ``Response.log_to_db`` on a ``logs.db`` set up by
its own migrations, with a stand-in model that answers the corpus (no network for either). llm
0.36 is installed by the script into a throwaway venv (the newest llm if 0.36 cannot be had; the
table says which ran).

- **time added per answer on the asking thread** (target: median <= 1 ms): ours, the hook's work
  (the row built, queued; the write happens on the writer thread) over 2,000 finished Responses;
  llm's, ``log_to_db`` over 2,000 responses (it writes on the caller's thread).
- **full-text search over 100,000 answers** (target: <= 50 ms and faster than llm's): the same
  words searched for, newest first, 50 rows; ours with ``qwen_magics.history.rows(q=...)``
  in this process, llm's with ``llm logs -q WORD -n 50`` (its CLI, so its start-up is shown apart).
  The first 2,000 answers are the timed ones; llm logs the others the same way (0.36 writes its
  content-addressed threads, turns, messages and parts tables and their ``turn_search`` index,
  about 6 ms an answer: 100,000 take some ten minutes), ours go straight to the writer thread.
- **database size per answer**, both after a checkpoint.
- **replay of a 50-answer notebook with no network** (target: <= 1 s in all): 50 answers recorded
  against the emulator and saved as a notebook's outputs (their records in the outputs' metadata),
  the emulator stopped, then ``%qwen replay only NOTEBOOK`` and the 50 questions asked again
  through the client (each read to its end); the same from the history database. llm has no
  replay (llm #1201), so its column is empty.

Run: ``python bench/history.py [--answers 100000] [--llm-venv DIR]`` (DIR keeps llm's venv);
``--replay-only`` measures the replay row alone (seconds, not the full run's twelve minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TIMED = 2000
TARGET_HOOK_MS = 1.0
TARGET_SEARCH_MS = 50.0
WORDS = ("tide", "salt", "jupiter", "kneser")  # common, common, rare, absent-ish: the searches
LLM_VERSION = "0.36"

# the corpus: the same in this process and in llm's venv
CORPUS = r"""
import random

_VOCAB = ("sea salt tide moon planet orbit river rain cloud wind storm rock mineral ocean wave shore "
          "sand island current deep water light heat cold ice energy sun star gravity mass jupiter saturn "
          "mars venus earth comet dust field magnet iron carbon oxygen life cell leaf root seed tree forest "
          "valley mountain desert plain lake delta reef coral fish whale bird wing flight song voice word "
          "kneser").split()


def answer(i):
    rng = random.Random(i)
    prompt = " ".join(rng.choice(_VOCAB) for _ in range(12)).capitalize() + "?"
    text = " ".join(rng.choice(_VOCAB[:-1]) for _ in range(80)).capitalize() + "."
    return prompt, text
"""
_corpus: dict[str, object] = {}
exec(CORPUS, _corpus)
answer = _corpus["answer"]

LLM_SIDE = r"""
import json, statistics, sys, time
from pathlib import Path
import llm
import sqlite_utils
from llm.migrations import migrate

exec(CORPUS)
path, total, timed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])


class Corpus(llm.Model):
    model_id = "qwen3.6-plus"
    can_stream = True

    def execute(self, prompt, stream, response, conversation=None):
        yield answers[prompt.prompt]


answers = {}
model = Corpus()
db = sqlite_utils.Database(path)
migrate(db)
times = []
for i in range(total):
    prompt, text = answer(i)
    answers[prompt] = text
    response = model.prompt(prompt)
    response.text()
    started = time.perf_counter()
    response.log_to_db(db)
    if i < timed:
        times.append(time.perf_counter() - started)
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
print(json.dumps({"median_ms": statistics.median(times) * 1000}))
"""


def install_llm(root: Path) -> tuple[Path | None, str]:
    """llm 0.36 in a venv at ``root`` (else the newest llm); its python and the version, or None
    and why."""
    python = root / "bin" / "python"
    probe = [str(python), "-c", "import importlib.metadata as m; print(m.version('llm'))"]
    if python.exists():
        done = subprocess.run(probe, capture_output=True, text=True)
        if done.returncode == 0:
            return python, done.stdout.strip()
    print(f"installing llm {LLM_VERSION} into {root} (a minute)...", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, capture_output=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    why = ""
    for spec in (f"llm=={LLM_VERSION}", "llm"):
        out = subprocess.run([*pip, spec], capture_output=True, text=True, timeout=900)
        if out.returncode == 0:
            done = subprocess.run(probe, capture_output=True, text=True)
            return python, done.stdout.strip()
        why = (out.stderr or out.stdout).strip().splitlines()[-1:] or [str(out.returncode)]
        why = f"pip install {spec} failed: {why[0][:200]}"
    return None, why


def ours(folder: Path, total: int) -> dict[str, float]:
    """Our hook's time per answer, then the search over ``total`` answers and the size."""
    path = folder / "history.db"
    os.environ["QWEN_HISTORY"] = str(path)
    from qwen_magics import historydb
    from qwen_magics.api.record import recorder, row
    from qwen_magics.api.response import Event, Response, Usage
    from qwen_magics.recall import history

    def finished(i: int) -> Response:
        prompt, text = answer(i)  # type: ignore[operator]
        request = {
            "model": "qwen3.6-plus",
            "messages": [{"role": "user", "content": prompt}],
            "temperature": 0.7,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        events = [
            Event("start", data={"id": f"chatcmpl-{i}", "model": "qwen3.6-plus"}),
            Event("text", text),
            Event("finish", data="stop"),
            Event("usage", data=Usage(20, 110, 0, 0, 130)),
        ]
        return Response(
            request=request, params={"temperature": 0.7}, base_url="http://127.0.0.1:8000/v1", head=events
        )

    times = []
    for i in range(TIMED):
        response = finished(i)
        started = time.perf_counter()
        hook = recorder()  # what the client does as it sends ...
        assert hook is not None
        hook(response)  # ... and what the Response does as it ends
        times.append(time.perf_counter() - started)
    assert historydb.flush(60)
    for i in range(TIMED, total):
        historydb.write(path, row(finished(i), {}))
    assert historydb.flush(600)
    searches = []
    for word in WORDS:
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            history.rows(q=word, limit=50)
            runs.append(time.perf_counter() - started)
        searches.append(statistics.median(runs))
    con = historydb.connect(path)
    assert con is not None
    count = historydb.count(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    size = sum(p.stat().st_size for p in folder.iterdir())
    return {
        "hook_ms": statistics.median(times) * 1000,
        "search_ms": max(searches) * 1000,
        "bytes": size / count,
        "count": count,
    }


def theirs(python: Path, folder: Path, total: int) -> dict[str, float]:
    env = {**os.environ, "LLM_USER_PATH": str(folder)}
    out = subprocess.run(
        [
            str(python),
            "-c",
            f"CORPUS = {CORPUS!r}\n" + LLM_SIDE,
            str(folder / "logs.db"),
            str(total),
            str(TIMED),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    logged = json.loads(out.stdout.strip().splitlines()[-1])
    cli = str(python.parent / "llm")

    def wall(args: list[str]) -> float:
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            subprocess.run([cli, *args], capture_output=True, env=env, check=True)
            runs.append(time.perf_counter() - started)
        return statistics.median(runs)

    startup = wall(["--version"])
    searches = [wall(["logs", "-q", word, "-n", "50"]) for word in WORDS]
    size = sum(p.stat().st_size for p in folder.iterdir() if p.name.startswith("logs.db"))
    return {
        "hook_ms": logged["median_ms"],
        "search_ms": max(searches) * 1000,
        "startup_ms": startup * 1000,
        "bytes": size / total,
    }


REPLAYED = 50
TARGET_REPLAY_S = 1.0


def replay(folder: Path) -> dict[str, float]:
    """Seconds to replay ``REPLAYED`` answers from a saved notebook and from the history, the
    emulator stopped: every answer read through the client, as a cell reads it."""
    import qwen_magics as qm
    from qwen_magics import historydb
    from qwen_magics.api import record
    from qwen_magics.api import replay as replaying
    from qwen_magics.emulator import Emulator

    os.environ["QWEN_HISTORY"] = str(folder / "history.db")
    prompts = [answer(i)[0] for i in range(REPLAYED)]  # type: ignore[operator]
    with Emulator(generator="simple", api_key="sk-bench") as emu:
        where = {"base_url": emu.base_url, "api_key": "sk-bench"}
        answers = [qm.ask(p, temperature=0.7, **where).complete() for p in prompts]
    outputs = [
        {"output_type": "display_data", "data": {"text/plain": r.text}, "metadata": record.metadata([r])}
        for r in answers
    ]
    cells = [
        {"cell_type": "code", "source": p, "metadata": {}, "outputs": [o]}
        for p, o in zip(prompts, outputs, strict=True)
    ]
    notebook = folder / "recorded.ipynb"
    notebook.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    historydb.flush(30)
    out: dict[str, float] = {}
    for name, source in (("notebook_s", notebook), ("history_s", folder / "history.db")):
        replaying.use(f"only {source}")
        started = time.perf_counter()
        again = [qm.ask(p, temperature=0.7, **where).text for p in prompts]
        out[name] = time.perf_counter() - started
        assert again == [r.text for r in answers], f"replay from {source} gave other answers"
    replaying.use(None)
    return out


def print_replay(played: dict[str, float]) -> bool:
    ok = max(played.values()) <= TARGET_REPLAY_S
    print(
        f"| {f'replay of a {REPLAYED}-answer notebook, no network, s':<48} | {played['notebook_s']:>12.3f} | "
        f"{'—':>12} | <= 1 s in all: {'PASS' if ok else 'FAIL'}"
    )
    label = f"  the same {REPLAYED} from the history database, s"
    print(f"| {label:<48} | {played['history_s']:>12.3f} | {'—':>12} |")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--answers", type=int, default=100_000)
    parser.add_argument("--llm-venv", type=Path, help="keep llm's venv here (reused when present)")
    parser.add_argument("--replay-only", action="store_true", help="only the replay row (seconds)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="qwen-bench-history-"))
    if args.replay_only:
        try:
            played = replay(work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(f"replay: {REPLAYED} answers recorded against the emulator, replayed with it stopped\n")
        print(f"| {'':<48} | {'qwen-magics':>12} | {'llm':>12} | target")
        print(f"|{'-' * 50}|{'-' * 14}|{'-' * 14}|{'-' * 30}")
        return 0 if print_replay(played) else 1
    try:
        (work / "ours").mkdir()
        (work / "llm").mkdir()
        mine = ours(work / "ours", args.answers)
        (work / "replay").mkdir()
        played = replay(work / "replay")
        python, version = install_llm(args.llm_venv or work / "venv")
        peer = theirs(python, work / "llm", args.answers) if python is not None else None
    finally:
        shutil.rmtree(work, ignore_errors=True)

    hook_ok = mine["hook_ms"] <= TARGET_HOOK_MS
    search_ok = mine["search_ms"] <= TARGET_SEARCH_MS and (
        peer is None or mine["search_ms"] < peer["search_ms"]
    )
    name = f"llm {version}" if python is not None else "llm"
    print(
        f"history: {args.answers:,} answers of 80 words; {TIMED:,} logged one by one and timed; "
        f"searches for {', '.join(WORDS)} (the slowest shown); peer {name}"
        + ("" if python is not None else f" not measured: {version}")
        + "\n"
    )
    print(f"| {'':<48} | {'qwen-magics':>12} | {name:>12} | target")
    print(f"|{'-' * 50}|{'-' * 14}|{'-' * 14}|{'-' * 30}")

    def cell(value: float | None, fmt: str) -> str:
        return "—" if value is None else format(value, fmt)

    print(
        f"| {'time added per answer on the asking thread, ms':<48} | {mine['hook_ms']:>12.3f} | "
        f"{cell(peer and peer['hook_ms'], '.3f'):>12} | median <= 1 ms: {'PASS' if hook_ok else 'FAIL'}"
    )
    print(
        f"| {f'full-text search, {args.answers:,} answers, ms':<48} | {mine['search_ms']:>12.1f} | "
        f"{cell(peer and peer['search_ms'], '.1f'):>12} | <= 50 ms, faster: {'PASS' if search_ok else 'FAIL'}"
    )
    if peer is not None:
        startup = f"{peer['startup_ms']:>12.1f}"
        print(f"| {'  of which llm start-up (llm --version), ms':<48} | {'':>12} | {startup} |")
    print(
        f"| {'database size per answer, bytes':<48} | {mine['bytes']:>12,.0f} | "
        f"{cell(peer and peer['bytes'], ',.0f'):>12} |"
    )
    replay_ok = print_replay(played)
    return 0 if hook_ok and search_ok and replay_ok else 1


if __name__ == "__main__":
    sys.exit(main())
