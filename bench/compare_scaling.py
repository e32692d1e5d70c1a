"""compare() against asking the same 16 settings one after another, on an emulator that takes 1 s.

Rows: the sequential peer (``compare`` with concurrency 1, measured), 16 settings with concurrency
16 (target: wall <= 1.3 s), and the same with a quarter of first attempts answered 429 (the
emulator's fault, seeded), where every setting must complete exactly once with status 200.
Run: ``python bench/compare_scaling.py [--skip-sequential]`` (then the sequential time is computed
as the sum of the concurrent requests' own times, and the row says so).
"""

from __future__ import annotations

import sys
import time
from collections import Counter

from qwen_magics.comparison.compare import COMPARE_RETRY, Comparison, compare
from qwen_magics.emulator import Emulator

LATENCY = 1.0
GRID = {"temperature": [0.2, 0.6, 1.0, 1.4], "top_p": [0.5, 0.7, 0.9, 1.0]}  # 16 settings
TARGET = 1.3
SEEDS_429 = (1, 2, 3, 4, 5)


def run(emu: Emulator, concurrency: int) -> tuple[Comparison, float]:
    started = time.perf_counter()
    c = compare(
        "Name a colour.",
        concurrency=concurrency,
        thinking=False,
        api_key="sk-bench",
        base_url=emu.base_url,
        show=False,
        **GRID,
    )
    return c, time.perf_counter() - started


def tally(emu: Emulator, c: Comparison) -> dict[str, int]:
    """Requests sent, 429s, settings answered, and settings answered more than once (duplicates)."""
    log = emu.chat_requests
    ok = Counter((r.params["temperature"], r.params["top_p"]) for r in log if r.status == 200)
    return {
        "requests": len(log),
        "429s": sum(r.status == 429 for r in log),
        "completed": sum(1 for r in c.responses if r.error is None and r.text),
        "duplicates": sum(n - 1 for n in ok.values() if n > 1) + (len(c) - len(ok)),
    }


def main(argv: list[str]) -> int:
    rows: list[tuple[str, dict[str, int], float, str]] = []
    failures = 0
    with Emulator(generator="simple", latency=LATENCY) as emu:
        c, wall = run(emu, 16)
        t = tally(emu, c)
        verdict = "PASS" if wall <= TARGET and t["completed"] == 16 else "FAIL"
        failures += verdict == "FAIL"
        concurrent = ("compare, concurrency 16", t, wall, f"wall <= {TARGET} s: {verdict}")
        if "--skip-sequential" in argv:
            summed = sum(r.elapsed or 0.0 for r in c.responses)
            rows.append(("sequential (computed: sum)", t, summed, "peer"))
        else:
            emu.reset()
            seq, seq_wall = run(emu, 1)
            rows.append(("sequential (measured)", tally(emu, seq), seq_wall, "peer"))
        rows.append(concurrent)
    for seed in SEEDS_429:
        with Emulator(generator="simple", latency=LATENCY, seed=seed) as emu:
            emu.add_fault("status", status=429, first_attempt=True, probability=0.25, times=None)
            c, wall = run(emu, 16)
            t = tally(emu, c)
        ok = t["completed"] == 16 and t["duplicates"] == 0
        failures += not ok
        rows.append(
            (f"+ 25% first tries 429 (seed {seed})", t, wall, "all 16, once: " + ("PASS" if ok else "FAIL"))
        )

    r = COMPARE_RETRY
    print(
        f"compare_scaling: emulator latency {LATENCY:.1f} s a request; 16 settings (4 temperatures × 4 top_p)"
    )
    print(
        f"retry: attempts={r.attempts} backoff={r.backoff}s (×2 each try, jitter {r.jitter:.0%}) shared gate"
    )
    header = f"{'run':<34} {'requests':>8} {'429s':>5} {'completed':>9} {'dupes':>5} {'wall s':>7}  check"
    print(header)
    print("-" * len(header))
    for name, t, wall, check in rows:
        print(
            f"{name:<34} {t['requests']:>8} {t['429s']:>5} {t['completed']:>9} {t['duplicates']:>5} "
            f"{wall:>7.2f}  {check}"
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
