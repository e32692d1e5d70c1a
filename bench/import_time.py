"""Fresh-process import time: `import qwen_magics` against `import httpx` and `import openai`.

Each figure is the median over fresh interpreters of the time the import statement takes.
Targets: qwen_magics <= httpx + 0.05 s, and <= 1/4 of openai.
"""

from __future__ import annotations

import statistics
import subprocess
import sys

CODE = "import time; t = time.perf_counter(); import {mod}; print(time.perf_counter() - t)"


def measure(module: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", CODE.format(mod=module)], capture_output=True, text=True, check=True
        )
        times.append(float(out.stdout.strip()))
    return statistics.median(times)


def main(runs: int = 15) -> None:
    for module in ("httpx", "openai", "qwen_magics"):  # warm the file cache once
        measure(module, 1)
    figures = {module: measure(module, runs) for module in ("httpx", "openai", "qwen_magics")}
    print(f"import_time: fresh interpreter, median of {runs}")
    print(f"{'module':<12} {'seconds':>8}")
    for module, seconds in figures.items():
        print(f"{module:<12} {seconds:>8.3f}")
    ours, httpx_time, openai_time = figures["qwen_magics"], figures["httpx"], figures["openai"]
    ok_httpx = ours <= httpx_time + 0.05
    ok_openai = ours <= openai_time / 4
    verdict = "PASS" if ok_httpx else "FAIL"
    print(f"qwen_magics - httpx = {ours - httpx_time:+.3f} s (target <= +0.050): {verdict}")
    print(
        f"qwen_magics / openai = {ours / openai_time:.2f} (target <= 0.25): {'PASS' if ok_openai else 'FAIL'}"
    )


if __name__ == "__main__":
    main()
