"""Soak: 2,000 requests through ``compare`` and ``apply`` against the emulator, with injected faults.

Faults, drawn by the emulator's seeded RNG: 10% of first tries answered 429, 5% of all tries 500, 3%
of streams cut mid-answer, 2% ended by an error chunk mid-answer, and random extra latency (30% of
requests +5 ms, 10% +50 ms, 2% +300 ms). Every request is matched with the emulator's log:

- it completed once, with exactly the text the emulator sent, or its error is on its cell or row;
- ``compare`` never re-sends a stream that already gave tokens: a cut answer is kept, marked
  incomplete, and is a prefix of what the emulator was sending; ``apply`` asks again after a broken
  JSON answer (half an object cannot be used) and its row holds one whole answer;
- the client's count of attempts equals the emulator's.

Resident memory, open sockets and threads are measured after a warm-up and at the end; a watchdog
ends the run with every thread's stack if it hangs. The reference row ("peer") is the same load with
no faults. Run: ``python bench/soak.py [--requests 2000] [--seed 7] [--no-reference]``.
"""

from __future__ import annotations

import argparse
import faulthandler
import gc
import json
import os
import re
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from qwen_magics.api.response import Response
from qwen_magics.comparison.compare import compare
from qwen_magics.emulator import Emulator, RequestRecord
from qwen_magics.emulator.answers import PrefixCache, SimpleGenerator, make_completion, split_tokens
from qwen_magics.errors import APIError
from qwen_magics.structured.apply import apply

KEY = "sk-soak-0123456789abcdef"
BATCH = 50  # requests per compare() or apply() call
SEEDS = 25  # compare: 25 seeds x thinking on/off = 50 settings
CONCURRENCY = 8
TOKEN_DELAY = 0.001
LIMIT_MB = 20.0
WARM_UP_ROUNDS = 2  # compare + apply calls before memory, sockets and threads are first measured
FAULTS: list[dict[str, Any]] = [
    {"kind": "status", "status": 429, "first_attempt": True, "probability": 0.10, "times": None},
    {"kind": "status", "status": 500, "probability": 0.05, "times": None},
    # a cut or error chunk lands early, mid-reasoning or mid-answer: 1% each place
    {"kind": "cut", "after": 2, "probability": 0.01, "times": None},
    {"kind": "cut", "after": 9, "probability": 0.01, "times": None},
    {"kind": "cut", "after": 24, "probability": 0.01, "times": None},
    {"kind": "error_chunk", "after": 4, "probability": 0.01, "times": None},
    {"kind": "error_chunk", "after": 20, "probability": 0.01, "times": None},
    {"kind": "latency", "seconds": 0.005, "probability": 0.30, "times": None},
    {"kind": "latency", "seconds": 0.05, "probability": 0.10, "times": None},
    {"kind": "latency", "seconds": 0.3, "probability": 0.02, "times": None},
]


class SoakGenerator(SimpleGenerator):
    """Long enough answers for a cut anywhere; JSON that names its row, so rows cannot mix."""

    def __init__(self) -> None:
        super().__init__(length=24)

    def json_text(self, prompt: str, schema: dict[str, Any] | None, **kw: Any) -> Iterator[str]:
        found = re.search(r"row (\d+)", prompt)
        value = {"row": int(found.group(1)) if found else -1, "words": [f"w{i}" for i in range(10)]}
        yield from split_tokens(json.dumps(value))


# -- what the process holds ---------------------------------------------------------------------
def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def socket_fds() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            pass  # closed while listing
    return count


def settle(sockets: int, threads: int, timeout: float = 5.0) -> tuple[int, int]:
    """Sockets and threads once the last connections wound down (or after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        gc.collect()
        now = socket_fds(), threading.active_count()
        if (now[0] <= sockets and now[1] <= threads) or time.monotonic() > deadline:
            return now
        time.sleep(0.05)


# -- accounting -----------------------------------------------------------------------------------
@dataclass
class Tally:
    """What happened to the requests of one kind (compare or apply)."""

    requests: int = 0
    attempts: int = 0
    s429: int = 0
    s500: int = 0
    cuts: int = 0
    error_chunks: int = 0
    completed: int = 0
    kept_partial: int = 0  # compare: a broken stream's answer kept, marked incomplete
    reasked: int = 0  # apply: a broken JSON answer asked again
    errors_reported: int = 0
    unaccounted: int = 0
    duplicated: int = 0
    wall: float = 0.0
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def count_log(self, records: list[RequestRecord]) -> None:
        self.attempts += len(records)
        self.s429 += sum(r.status == 429 for r in records)
        self.s500 += sum(r.status == 500 for r in records)
        self.cuts += sum(r.status == 200 and r.fault == "cut" for r in records)
        self.error_chunks += sum(r.status == 200 and r.fault == "error_chunk" for r in records)


def request_key(body: dict[str, Any]) -> tuple[str, Any, Any]:
    """One logical request: its question, seed and thinking switch (retries share it)."""
    user = [m["content"] for m in body["messages"] if m.get("role") == "user"][-1]
    return (user, body.get("seed"), body.get("enable_thinking"))


def by_request(emu: Emulator) -> dict[tuple[str, Any, Any], list[RequestRecord]]:
    groups: dict[tuple[str, Any, Any], list[RequestRecord]] = defaultdict(list)
    for record in emu.chat_requests:
        groups[request_key(record.body)].append(record)
    for records in groups.values():
        records.sort(key=lambda r: r.attempt)
    return groups


def sent_text(emu: Emulator, body: dict[str, Any]) -> tuple[str, str]:
    """The reasoning and answer the emulator sends for this body."""
    done = make_completion(body, emu.generator, PrefixCache())
    return "".join(done.reasoning_tokens), "".join(done.answer_tokens)


def numbered(records: list[RequestRecord]) -> bool:
    return [r.attempt for r in records] == list(range(1, len(records) + 1))


def is_prefix(got_reasoning: str, got_text: str, reasoning: str, text: str) -> bool:
    """A broken stream's parts are a strict, non-empty prefix of the reasoning-then-answer sent."""
    if not reasoning.startswith(got_reasoning) or not text.startswith(got_text):
        return False
    if got_text and got_reasoning != reasoning:
        return False
    got = len(got_reasoning) + len(got_text)
    return 0 < got < len(reasoning) + len(text)


def check_compare_cell(
    emu: Emulator, tally: Tally, response: Response, records: list[RequestRecord], name: str
) -> None:
    tally.count_log(records)
    if not numbered(records):
        tally.problem(f"{name}: attempts {[r.attempt for r in records]}")
    if any(r.status == 200 for r in records[:-1]):
        tally.duplicated += 1
        tally.problem(f"{name}: sent again after a 200 stream")
        return
    last = records[-1]
    if last.status != 200:
        ok = isinstance(response.error, APIError) and response.error.status == last.status
        tally.errors_reported += ok
        if not ok:
            tally.problem(f"{name}: gave up on {last.status} but the cell says {response.error!r}")
        return
    if response.attempts != len(records):
        tally.problem(f"{name}: client counted {response.attempts} tries, emulator {len(records)}")
    reasoning, text = sent_text(emu, last.body)
    got_reasoning, got_text = response.partial_reasoning, response.partial_text
    if last.fault in ("cut", "error_chunk"):
        if not (response.incomplete and response.error is not None):
            tally.problem(f"{name}: a broken stream not marked incomplete")
        if is_prefix(got_reasoning, got_text, reasoning, text):
            tally.kept_partial += 1
        else:
            tally.duplicated += 1
            tally.problem(f"{name}: kept {got_reasoning!r} {got_text!r}, not a prefix of what was sent")
        return
    if response.error is None and got_text == text and got_reasoning == reasoning:
        tally.completed += 1
    else:
        tally.duplicated += got_text != text
        tally.problem(f"{name}: answer {got_text!r} (error {response.error!r}), the emulator sent {text!r}")


def run_compare(emu: Emulator, batch: int, tally: Tally) -> None:
    prompt = f"Soak question {batch}: describe the tides and the moon in two short lines."
    started = time.perf_counter()
    result = compare(
        prompt,
        seed=[batch * 1000 + i for i in range(SEEDS)],
        thinking=[True, False],
        concurrency=CONCURRENCY,
        show=False,
        api_key=KEY,
        base_url=emu.base_url,
    )
    tally.wall += time.perf_counter() - started
    groups = by_request(emu)
    for cell in result.cells:
        tally.requests += 1
        key = (prompt, cell.settings["seed"], cell.settings["thinking"])
        records = groups.pop(key, [])
        response = cell.slots[0]
        if response is None or not records or len(cell.slots) != 1:
            tally.unaccounted += 1
            tally.problem(f"compare {cell.label}: {len(records)} log entries, response {response!r}")
            continue
        check_compare_cell(emu, tally, response, records, f"compare {batch} {cell.label}")
    for key, records in groups.items():  # sent, but no cell owns it
        tally.unaccounted += 1
        tally.problem(f"compare {batch}: request {key} ({len(records)} tries) has no cell")


def run_apply(emu: Emulator, batch: int, tally: Tally) -> None:
    import pandas as pd

    rows = range(batch * 1000, batch * 1000 + BATCH)
    df = pd.DataFrame({"row": list(rows), "name": [f"item{r}" for r in rows]}, index=[f"r{r}" for r in rows])
    started = time.perf_counter()
    out = apply(
        df,
        "Describe row {row} ({name}) as JSON.",
        concurrency=CONCURRENCY,
        progress=False,
        api_key=KEY,
        base_url=emu.base_url,
    )
    tally.wall += time.perf_counter() - started
    groups = by_request(emu)
    if list(out.index) != list(df.index):
        tally.problem(f"apply {batch}: rows out of order or lost")
    for index, row in zip(df.index, rows, strict=True):
        tally.requests += 1
        name = f"apply {batch} row {row}"
        records = groups.pop((f"Describe row {row} (item{row}) as JSON.", None, False), [])
        if not records:
            tally.unaccounted += 1
            tally.problem(f"{name}: never sent")
            continue
        tally.count_log(records)
        if not numbered(records):
            tally.problem(f"{name}: attempts {[r.attempt for r in records]}")
        tally.reasked += sum(r.status == 200 for r in records[:-1])
        if any(r.status == 200 and r.fault is None for r in records[:-1]):
            tally.duplicated += 1
            tally.problem(f"{name}: a whole answer was asked again")
        error = out.loc[index, "_error"]
        last = records[-1]
        if last.status == 200 and last.fault is None:
            want = json.loads(sent_text(emu, last.body)[1])
            got = {"row": out.loc[index, "row"], "words": out.loc[index, "words"]}
            if pd.isna(error) and got["row"] == want["row"] and list(got["words"]) == want["words"]:
                tally.completed += 1
            else:
                tally.duplicated += 1
                tally.problem(f"{name}: row holds {got} (error {error!r}), the emulator sent {want}")
        elif isinstance(error, str) and error:
            tally.errors_reported += 1
        else:
            tally.unaccounted += 1
            tally.problem(f"{name}: last try {last.status} {last.fault} but no _error")
    for key, records in groups.items():
        tally.unaccounted += 1
        tally.problem(f"apply {batch}: request {key[0]!r} ({len(records)} tries) has no row")


# -- the run --------------------------------------------------------------------------------------
@dataclass
class Soak:
    compare: Tally
    apply: Tally
    wall: float
    rss_start: float
    rss_end: float
    sockets: tuple[int, int]
    threads: tuple[int, int]
    leftover_threads: list[str]
    rss_trace: list[float] = field(default_factory=list)  # after every 10 calls (500 requests)

    @property
    def rss_growth(self) -> float:
        return self.rss_end - self.rss_start

    def failures(self) -> list[str]:
        """What breaks the promises; empty when the run passed."""
        out = []
        for name, t in (("compare", self.compare), ("apply", self.apply)):
            if t.unaccounted or t.duplicated or t.problems:
                out.append(
                    f"{name}: {t.unaccounted} unaccounted, {t.duplicated} duplicated: {t.problems[:5]}"
                )
            if t.completed + t.kept_partial + t.errors_reported != t.requests:
                outcomes = t.completed + t.kept_partial + t.errors_reported
                out.append(f"{name}: {t.requests} requests but {outcomes} outcomes")
        if self.rss_growth >= LIMIT_MB:
            out.append(f"resident memory grew {self.rss_growth:.1f} MB (limit {LIMIT_MB:.0f})")
        if self.sockets[1] > self.sockets[0]:
            out.append(f"sockets: {self.sockets[0]} before, {self.sockets[1]} after")
        if self.threads[1] > self.threads[0]:
            out.append(f"threads: {self.threads[0]} before, {self.threads[1]} after: {self.leftover_threads}")
        return out


def add_faults(emu: Emulator) -> None:
    for spec in FAULTS:
        emu.add_fault(**spec)


def run(requests: int = 2000, *, seed: int = 7, faults: bool = True, warm_up: int = WARM_UP_ROUNDS) -> Soak:
    """``requests`` requests, half through compare and half through apply, in batches of 50."""
    with Emulator(generator=SoakGenerator(), api_key=KEY, seed=seed, token_delay=TOKEN_DELAY) as emu:
        # warm-up, not counted: imports, pandas, and the allocator's per-thread arenas filling up
        for call in (run_compare, run_apply) * warm_up:
            if faults:
                add_faults(emu)
            call(emu, 0, Tally())
            emu.reset()
        sockets0, threads0 = settle(0, 0, timeout=0.5)
        before = {t.ident for t in threading.enumerate()}
        rss0 = rss_mb()
        cmp, app = Tally(), Tally()
        trace: list[float] = []
        started = time.perf_counter()
        batches = max(1, requests // BATCH)
        for b in range(1, batches + 1):
            if faults:
                add_faults(emu)
            (run_compare if b % 2 else run_apply)(emu, b, cmp if b % 2 else app)
            emu.reset()  # the log was checked; keep the emulator's memory flat too
            if b % 10 == 0:
                gc.collect()
                trace.append(rss_mb())
        wall = time.perf_counter() - started
        sockets1, threads1 = settle(sockets0, threads0)
        rss1 = rss_mb()
        leftover = [t.name for t in threading.enumerate() if t.ident not in before]
    return Soak(cmp, app, wall, rss0, rss1, (sockets0, sockets1), (threads0, threads1), leftover, trace)


def table(soak: Soak, reference: Soak | None) -> str:
    cols = (
        f"{'run':<26} {'requests':>8} {'tries':>6} {'429':>4} {'500':>4} {'cut':>4} {'err':>4} "
        f"{'done':>5} {'kept':>5} {'asked':>5} {'error':>5} {'lost':>4} {'dup':>4} {'wall s':>7}"
    )
    lines = [cols, "-" * len(cols)]
    runs = [("faults", soak)] + ([("no faults (peer)", reference)] if reference else [])
    for label, s in runs:
        for kind, t in (("compare", s.compare), ("apply", s.apply)):
            lines.append(
                f"{kind + ', ' + label:<26} {t.requests:>8} {t.attempts:>6} {t.s429:>4} {t.s500:>4} "
                f"{t.cuts:>4} {t.error_chunks:>4} {t.completed:>5} {t.kept_partial:>5} {t.reasked:>5} "
                f"{t.errors_reported:>5} {t.unaccounted:>4} {t.duplicated:>4} {t.wall:>7.1f}"
            )
    lines.append("")
    res = f"{'run':<18} {'RSS MB start':>12} {'end':>7} {'growth':>7} {'sockets':>9} {'threads':>9}"
    res += f" {'wall s':>7}"
    lines += [res, "-" * len(res)]
    for label, s in runs:
        lines.append(
            f"{label:<18} {s.rss_start:>12.1f} {s.rss_end:>7.1f} {s.rss_growth:>+7.1f} "
            f"{s.sockets[0]:>4}→{s.sockets[1]:<4} {s.threads[0]:>4}→{s.threads[1]:<4} {s.wall:>7.1f}"
        )
    for label, s in runs:
        if s.rss_trace:
            trace = " ".join(f"{x:.1f}" for x in s.rss_trace)
            lines.append(f"RSS MB every {10 * BATCH} requests, {label}: {trace}")
    return "\n".join(lines)


LEGEND = (
    "tries: attempts the emulator logged; cut/err: streams cut or ended by an error chunk mid-answer; "
    "done: completed with exactly the text sent; kept: compare kept a broken stream's partial answer "
    "(a prefix of what was sent, marked incomplete, not re-sent); asked: apply asked again after a "
    "broken JSON answer; error: the failure is on its cell or row; lost: requests not accounted for; "
    "dup: text duplicated or re-sent after a whole answer."
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7, help="the emulator's fault RNG")
    parser.add_argument("--timeout", type=float, default=900, help="watchdog: seconds before giving up")
    parser.add_argument("--no-reference", action="store_true", help="skip the run without faults")
    args = parser.parse_args(argv)
    faulthandler.dump_traceback_later(args.timeout, exit=True)  # a deadlock ends with every stack
    soak = run(args.requests, seed=args.seed)
    reference = None if args.no_reference else run(args.requests, seed=args.seed, faults=False)
    faulthandler.cancel_dump_traceback_later()
    print(
        f"soak: {args.requests} requests (half compare, half apply; {BATCH} a call, concurrency "
        f"{CONCURRENCY}), emulator seed {args.seed}, {TOKEN_DELAY * 1000:.0f} ms between chunks"
    )
    print("faults: 10% first tries 429, 5% tries 500, 3% streams cut, 2% error chunks, latency +5/50/300 ms")
    print(table(soak, reference))
    print(LEGEND)
    failures = soak.failures() + (reference.failures() if reference else [])
    for failure in failures:
        print("FAIL:", failure)
    print("PASS" if not failures else f"FAIL ({len(failures)})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
