"""The offline language model's speed: training on the shipped corpus, and writing answers.

Training is timed in fresh interpreters (median), as the emulator and ``QWEN_OFFLINE`` pay it once per
process on the first request. Writing is the time per 200 answer tokens over ten seeded answers, against
the emulator's other generator (``simple``: fixed text, no model), the floor for the same pieces.
Targets: training < 1 s; the model < 100 ms per 200 tokens (an answer appears at once, far faster than
the stream paces it). The tests keep only bounds ten times looser, which catch a blow-up.
Run: ``python bench/lm_speed.py``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from qwen_magics.emulator.answers import Generator, SimpleGenerator
from qwen_magics.emulator.lm import LanguageModel

TRAIN_TARGET = 1.0
PER_200_TARGET = 0.1
PROMPT = "Explain in detail how energy works"
TRAIN = (
    "import time; t = time.perf_counter(); from qwen_magics.emulator.lm import LanguageModel; "
    "LanguageModel.load(); print(time.perf_counter() - t)"
)


def training(runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", TRAIN], capture_output=True, text=True, check=True)
        times.append(float(out.stdout))
    return statistics.median(times)


def per_200(generator: Generator) -> float:
    start, tokens = time.perf_counter(), 0
    for seed in range(10):
        tokens += len(list(generator.answer(PROMPT, temperature=1.0, seed=seed)))
    return (time.perf_counter() - start) / tokens * 200


def main() -> int:
    trained = training()
    ours, floor = per_200(LanguageModel.load()), per_200(SimpleGenerator(length=200))
    print(f"{'':<28} {'lm':>10} {'simple':>10}  target")
    print(f"{'training (fresh process)':<28} {trained:>9.3f}s {'—':>10}  < {TRAIN_TARGET:.0f} s")
    ms = f"{ours * 1000:>8.1f}ms {floor * 1000:>8.2f}ms"
    print(f"{'per 200 answer tokens':<28} {ms}  < {PER_200_TARGET * 1000:.0f} ms")
    ok = trained < TRAIN_TARGET and ours < PER_200_TARGET
    print(f"targets: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
