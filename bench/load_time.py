"""How long ``%load_ext`` takes: qwen_magics against jupyter-ai-magics 2.31.7.

The figure is the wall time of ``ipython -c "%load_ext X"`` minus that of ``ipython -c pass`` in the
same environment (median of fresh processes, run alternately). The peer is installed by the script
into a throwaway venv (``bench/peer.py``). Targets: ours <= 0.15 s and >= 10x less than the peer's.
Run: ``python bench/load_time.py [--runs 15] [--peer-venv DIR]`` (DIR is reused and kept).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from peer import PEER, Peer

TARGET = 0.15
RATIO = 10.0


def ipython(python: Path | str, code: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [str(python), "-m", "IPython", "--no-banner", "-c", code], env=env, check=True, capture_output=True
    )
    return time.perf_counter() - started


def check(python: Path | str, extension: str, magic: str, env: dict[str, str]) -> str:
    """Load once and say whether the cell magic exists (a failed load would time as fast)."""
    code = f"%load_ext {extension}\nprint('{magic}' in get_ipython().magics_manager.magics['cell'])"
    out = subprocess.run(
        [str(python), "-m", "IPython", "--no-banner", "-c", code], env=env, capture_output=True, text=True
    )
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr.strip()[-200:]


def load_cost(python: Path | str, extension: str, env: dict[str, str], runs: int) -> tuple[float, float]:
    """Median wall time of `ipython -c pass` and of `ipython -c "%load_ext X"`."""
    ipython(python, "pass", env)  # warm the file cache
    ipython(python, f"%load_ext {extension}", env)
    bare, loaded = [], []
    for _ in range(runs):
        bare.append(ipython(python, "pass", env))
        loaded.append(ipython(python, f"%load_ext {extension}", env))
    return statistics.median(bare), statistics.median(loaded)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--peer-venv", type=Path, default=None, help="reuse (and keep) the peer's venv here")
    args = parser.parse_args()

    ipython_dir = tempfile.mkdtemp(prefix="qwen-bench-ipython-")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DASHSCOPE_", "QWEN_", "OPENAI_"))}
    base["IPYTHONDIR"] = ipython_dir  # a fresh profile: no user startup files
    with_key = dict(base, DASHSCOPE_API_KEY="sk-bench-fake-key-for-benchmarks")
    rows: list[tuple[str, float, float, str]] = []

    verified = check(sys.executable, "qwen_magics", "qwen", with_key)
    bare, loaded = load_cost(sys.executable, "qwen_magics", with_key, args.runs)
    ours = loaded - bare
    rows.append(("qwen-magics (key set)", bare, loaded, f"%%qwen registered: {verified}"))
    bare_off, loaded_off = load_cost(sys.executable, "qwen_magics", base, max(5, args.runs // 3))
    rows.append(("qwen-magics (no key: offline)", bare_off, loaded_off, "starts the local simulator"))

    peer_cost = None
    with Peer(args.peer_venv) as peer:
        if peer.python is not None:
            peer_verified = check(peer.python, "jupyter_ai_magics", "ai", base)
            p_bare, p_loaded = load_cost(peer.python, "jupyter_ai_magics", base, args.runs)
            peer_cost = p_loaded - p_bare
            rows.append((PEER, p_bare, p_loaded, f"%%ai registered: {peer_verified}"))
        else:
            print(f"\nPEER NOT MEASURED: {peer.why}\n")

    print(f"load_time: ipython -c '%load_ext X' minus ipython -c pass, median of {args.runs} fresh processes")
    print(f"{'extension':<32} {'pass s':>7} {'load s':>7} {'cost s':>7}  note")
    for name, b, loaded_s, note in rows:
        print(f"{name:<32} {b:>7.3f} {loaded_s:>7.3f} {loaded_s - b:>7.3f}  {note}")
    ok = ours <= TARGET
    print(f"qwen-magics load cost {ours:.3f} s (target <= {TARGET} s): {'PASS' if ok else 'FAIL'}")
    if peer_cost is not None:
        ratio = peer_cost / ours if ours > 0 else float("inf")
        ok_ratio = ratio >= RATIO
        ok = ok and ok_ratio
        print(
            f"jupyter-ai / qwen-magics = {ratio:.1f}x (target >= {RATIO:.0f}x): "
            f"{'PASS' if ok_ratio else 'FAIL'}"
        )
    else:
        print("jupyter-ai comparison: not measured (the peer could not be installed; see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
