"""apply() over 500 rows against a loop of ask_json calls, on an emulator that takes 200 ms a request.

Rows: the sequential peer (a plain ``for`` loop of ``ask_json``, what one writes without ``apply``;
measured on the first 25 rows and extrapolated to 500 unless ``--full-sequential``), and ``apply``
with concurrency 16 on all 500 rows (target: >= 60 rows/s, every row answered, in order).
The emulator runs as its own process (``qwen-magics serve``), as a service would; ``--in-process``
runs it in a thread of this process instead, where it competes with the client for the GIL.
Run: ``python bench/apply_throughput.py [--full-sequential] [--in-process]``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pandas as pd

from qwen_magics.structured.apply import apply
from qwen_magics.structured.ask import ask_json

ROWS = 500
LATENCY = 0.2
CONCURRENCY = 16
TARGET = 60.0
SEQUENTIAL_SAMPLE = 25
TEMPLATE = "Describe the planet {name} as JSON"


@contextmanager
def emulator(in_process: bool) -> Iterator[str]:
    """The emulator's base URL, answering with the simple generator after LATENCY seconds."""
    if in_process:
        from qwen_magics.emulator import Emulator

        with Emulator(generator="simple", latency=LATENCY) as emu:
            yield emu.base_url
        return
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "qwen_magics.cli",
            "serve",
            "--port",
            "0",
            "--generator",
            "simple",
            "--latency",
            str(LATENCY),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().rsplit(" on ", 1)[1].strip()
    finally:
        proc.terminate()
        proc.wait()


def requests_sent(base_url: str) -> int:
    root = base_url.split("/compatible-mode")[0]
    log = httpx.get(f"{root}/_emulator/requests").json()["requests"]
    return sum(r["path"].endswith("/chat/completions") for r in log)


def main(argv: list[str]) -> int:
    in_process = "--in-process" in argv
    df = pd.DataFrame({"name": [f"Planet-{i}" for i in range(ROWS)]})
    expected = [TEMPLATE.format(name=n) for n in df["name"]]
    rows: list[tuple[str, float, float, str, str]] = []
    with emulator(in_process) as base_url:
        where = {"api_key": "sk-bench", "base_url": base_url}
        root = base_url.split("/compatible-mode")[0]

        sample = ROWS if "--full-sequential" in argv else SEQUENTIAL_SAMPLE
        started = time.perf_counter()
        answers = [ask_json(TEMPLATE.format(name=n), **where).data["answer"] for n in df["name"][:sample]]
        wall = time.perf_counter() - started
        wrong = sum(a != e for a, e in zip(answers, expected, strict=False))
        per_row = wall / sample
        name = "ask_json loop" + (
            " (measured)" if sample == ROWS else f" ({sample} measured, x{ROWS // sample})"
        )
        rows.append((name, per_row * ROWS, 1 / per_row, str(wrong), "peer"))

        httpx.post(f"{root}/_emulator/reset")
        started = time.perf_counter()
        out = apply(df, TEMPLATE, concurrency=CONCURRENCY, progress=False, **where)
        wall = time.perf_counter() - started
        errors = int(out["_error"].notna().sum())
        in_order = out["answer"].tolist() == expected
        rate = ROWS / wall
        verdict = "PASS" if rate >= TARGET and errors == 0 and in_order else "FAIL"
        rows.append(
            (
                f"apply, concurrency {CONCURRENCY}",
                wall,
                rate,
                str(errors) + ("" if in_order else ", out of order"),
                f">= {TARGET:.0f} rows/s: {verdict}",
            )
        )
        sent = requests_sent(base_url)

    where_text = "in this process" if in_process else "in its own process"
    print(
        f"apply throughput: {ROWS} rows; emulator {where_text}, {LATENCY * 1000:.0f} ms per request; "
        f"apply sent {sent} requests\n"
    )
    print(f"| {'method':<36} | {'wall s':>7} | {'rows/s':>6} | {'errors':>6} | result")
    print(f"|{'-' * 38}|{'-' * 9}|{'-' * 8}|{'-' * 8}|{'-' * 24}")
    for name, wall, rate, errs, note in rows:
        print(f"| {name:<36} | {wall:>7.2f} | {rate:>6.1f} | {errs:>6} | {note}")
    print(
        f"\nspeed-up over the loop: {rows[-1][2] / rows[0][2]:.1f}x "
        f"(ideal at concurrency {CONCURRENCY}: {CONCURRENCY / LATENCY:.0f} rows/s)"
    )
    return 0 if rows[-1][4].endswith("PASS") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
