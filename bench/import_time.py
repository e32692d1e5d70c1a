"""Fresh-process import time: `import qwen_magics` against `import httpx` and `import openai`.

Each figure is the median over fresh interpreters of the time the import statement takes.
Targets: qwen_magics <= httpx + 0.05 s, and <= 1/4 of openai. `import qwen_magics` loads the HTTP
client (and httpx) on first use, so the table also shows that first use: ``qwen_magics.Client``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys

CODE = "import time; t = time.perf_counter(); import {mod}; print(time.perf_counter() - t)"
FIRST_USE = "qwen_magics; qwen_magics.Client"  # the client and httpx, loaded by the first request


def measure(module: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", CODE.format(mod=module)], capture_output=True, text=True, check=True
        )
        times.append(float(out.stdout.strip()))
    return statistics.median(times)


def main(runs: int = 15) -> None:
    modules = ("httpx", "openai", "qwen_magics", FIRST_USE)
    for module in modules:  # warm the file cache once
        measure(module, 1)
    figures = {module: measure(module, runs) for module in modules}
    print(f"import_time: fresh interpreter, median of {runs}")
    print(f"{'import':<34} {'seconds':>8}")
    for module, seconds in figures.items():
        print(f"{module:<34} {seconds:>8.3f}")
    ours, httpx_time, openai_time = figures["qwen_magics"], figures["httpx"], figures["openai"]
    first_use = figures[FIRST_USE]
    ok_httpx = ours <= httpx_time + 0.05
    ok_openai = ours <= openai_time / 4
    verdict = "PASS" if ok_httpx else "FAIL"
    print(f"qwen_magics - httpx = {ours - httpx_time:+.3f} s (target <= +0.050): {verdict}")
    print(
        f"qwen_magics / openai = {ours / openai_time:.2f} (target <= 0.25): {'PASS' if ok_openai else 'FAIL'}"
    )
    verdict = "PASS" if first_use <= httpx_time + 0.05 else "FAIL"
    print(f"with the client loaded: httpx {first_use - httpx_time:+.3f} s (target <= +0.050): {verdict}")


if __name__ == "__main__":
    main()
