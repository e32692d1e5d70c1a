"""How long ``%load_ext`` takes: qwen_magics against Jupyter AI's magics, versions 2 and 3.

The figure is the wall time of ``ipython -c "%load_ext X"`` minus that of ``ipython -c pass`` in the
same environment (median of fresh processes, run alternately). The peers, jupyter-ai-magics 2.31.7
and jupyter-ai-magic-commands 0.0.4, are installed by the script into throwaway venvs
(``bench/peer.py``). Targets: ours <= 0.15 s and >= 10x less than each peer's.
Run: ``python bench/load_time.py [--runs 15] [--peer-venvs DIR]`` (DIR keeps one venv per peer).
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
from peer import PEERS, Peer

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
    parser.add_argument(
        "--peer-venvs", type=Path, default=None, help="reuse (and keep) the peers' venvs in DIR/<peer>"
    )
    args = parser.parse_args()

    ipython_dir = tempfile.mkdtemp(prefix="qwen-bench-ipython-")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DASHSCOPE_", "QWEN_", "OPENAI_"))}
    base["IPYTHONDIR"] = ipython_dir  # a fresh profile: no user startup files
    with_key = dict(base, DASHSCOPE_API_KEY="sk-bench-fake-key-for-benchmarks")
    rows: list[tuple[str, float | None, float | None, str]] = []

    verified = check(sys.executable, "qwen_magics", "qwen", with_key)
    bare, loaded = load_cost(sys.executable, "qwen_magics", with_key, args.runs)
    ours = loaded - bare
    rows.append(("qwen-magics (key set)", bare, loaded, f"%%qwen registered: {verified}"))
    bare_off, loaded_off = load_cost(sys.executable, "qwen_magics", base, max(5, args.runs // 3))
    rows.append(("qwen-magics (no key: offline)", bare_off, loaded_off, "starts the local simulator"))

    peer_costs: dict[str, float] = {}
    for spec in PEERS:
        with Peer(spec, args.peer_venvs) as peer:
            if peer.python is None:
                rows.append((spec.name, None, None, f"NOT MEASURED: {peer.why}"))
                continue
            env = dict(base, **spec.env)
            verified = check(peer.python, spec.extension, "ai", env)
            if verified != "True":  # a failed load would time as fast
                rows.append((spec.name, None, None, f"NOT MEASURED: %load_ext {spec.extension}: {verified}"))
                continue
            p_bare, p_loaded = load_cost(peer.python, spec.extension, env, args.runs)
            peer_costs[spec.name] = p_loaded - p_bare
            rows.append((spec.name, p_bare, p_loaded, f"%%ai registered: True ({peer.backend_version()})"))

    print(f"load_time: ipython -c '%load_ext X' minus ipython -c pass, median of {args.runs} fresh processes")
    print(f"{'extension':<32} {'pass s':>7} {'load s':>7} {'cost s':>7}  note")
    for name, b, loaded_s, note in rows:
        if b is None or loaded_s is None:
            print(f"{name:<32} {'—':>7} {'—':>7} {'—':>7}  {note}")
        else:
            print(f"{name:<32} {b:>7.3f} {loaded_s:>7.3f} {loaded_s - b:>7.3f}  {note}")
    ok = ours <= TARGET
    print(f"qwen-magics load cost {ours:.3f} s (target <= {TARGET} s): {'PASS' if ok else 'FAIL'}")
    for spec in PEERS:
        if spec.name not in peer_costs:
            print(f"{spec.name} / qwen-magics: not measured (see its row)")
            continue
        ratio = peer_costs[spec.name] / ours if ours > 0 else float("inf")
        ok_ratio = ratio >= RATIO
        ok = ok and ok_ratio
        print(
            f"{spec.name} / qwen-magics = {ratio:.1f}x (target >= {RATIO:.0f}x): "
            f"{'PASS' if ok_ratio else 'FAIL'}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
