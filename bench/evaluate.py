"""compare() judging a matrix of answers against promptfoo running the same matrix, on one emulator.

50 test cases × 4 settings (temperatures) × 3 samples = 600 answers from the emulator, which waits
200 ms before each answer (its ``latency``); each answer gets three local checks and one judge (a
model grading it against a rubric through structured output), so 1,200 requests in all. The peer is
promptfoo (the npm package, installed by this script into a throwaway folder with ``npm install``)
with the same prompt, the four temperatures as four ``openai:chat`` providers pointed at the
emulator (``apiBaseUrl``), the cases as ``tests`` with ``vars``, ``--repeat 3`` and equivalent
assertions: ``icontains`` for ``icontains("{animal}")``, ``regex`` for ``regex``, ``javascript``
(``output.length <= N``) for ``max_length(N)`` and ``llm-rubric`` for ``judge``, its grader
(``defaultTest.options.provider``) the same emulator asked for the same JSON through
``response_format``. Both run at the same concurrency (``compare(concurrency=16)``, promptfoo
``--max-concurrency 16``) with no cache. promptfoo's slot asks for an answer, then its grade;
compare's limit is on the answers and each answer's checks run on their own threads, as many, so a
second row runs compare at concurrency 8: at most 16 requests at once, as promptfoo.

The emulator's "simple" generator answers "You asked: <the prompt's first 12 words>. This is the
emulator's answer at temperature T.", so both sides get the same answers and each check's pass rate
must agree exactly; the judge gets the midpoint of its score's range (0.5, a pass on both sides).
The table: wall time (promptfoo's is its process, Node's start included; its own timer is shown
too), requests the emulator received, answers judged, and the pass rate of each check. Target: our
wall time at most promptfoo's. The last line times the three local checks over 10,000 answers as
``bench/checks_speed.py`` does (target: at most 100 ms).

Run: ``python bench/evaluate.py [--promptfoo DIR]`` (DIR: a folder where ``npm install promptfoo``
already ran, to skip the install). Without npm or the registry, it says so and prints our side.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import qwen_magics as qm
from qwen_magics.checks import icontains, judge, max_length, regex
from qwen_magics.comparison.compare import compare
from qwen_magics.emulator import Emulator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from checks_speed import answers, best

PROMPTFOO = "promptfoo@0.121.20"  # the version measured; newer ones may refuse Node 20
INSTALL_TIMEOUT = 900  # seconds; about 150 here, with a cold npm cache
LATENCY = 0.2
CONCURRENCY = 16
SAMPLES = 3
MODEL = "qwen-plus"  # thinking off by default, JSON Schema mode: the answer and the judge alike
TEMPERATURES = [0.1, 0.5, 0.9, 1.3]
TEMPLATE = "{sentence} Which creature is it?"
PATTERN = r"temperature 0\.[15]\b"  # the two lowest settings
LIMIT = 110
RUBRIC = "Names the creature the sentence is about."
JUDGE_SCHEMA = {  # the grade llm-rubric parses: reason, score and pass
    "type": "object",
    "properties": {
        "reason": {"type": "string"},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "pass": {"type": "boolean"},
    },
    "required": ["reason", "score", "pass"],
}

ANIMALS = ["owl", "turtle", "bee", "dog", "penguin", "snake", "bat", "elephant", "fox", "whale"]
SENTENCES = [
    "The {a} slept.",
    "A {a} crossed the road at dawn.",
    "Out in the garden behind the old house, a {a} waited.",
    "Early this morning, long before anyone in the village was awake, a {a} walked by.",
    "Nobody who lives on our quiet street had ever seen anything like the {a} in the pond.",
]


def cases() -> list[dict[str, str]]:
    """50 cases; in the longer sentences the animal comes after the 12 words the answer repeats."""
    return [{"sentence": s.format(a=a), "animal": a} for s in SENTENCES for a in ANIMALS]


def our_checks() -> list[Any]:
    return [icontains("{animal}"), regex(PATTERN), max_length(LIMIT), judge(RUBRIC)]


CHECK_LABELS = ["icontains {animal}", f"regex {PATTERN}", f"max_length {LIMIT}", "judge / llm-rubric"]


def run_ours(emu: Emulator, concurrency: int) -> dict[str, Any]:
    qm.configure(api_key="sk-bench", base_url=emu.base_url, model=MODEL)  # where the judge asks
    emu.reset()
    started = time.perf_counter()
    c = compare(
        TEMPLATE,
        cases=cases(),
        checks=our_checks(),
        temperature=TEMPERATURES,
        samples=SAMPLES,
        concurrency=concurrency,
        show=False,
        api_key="sk-bench",
        base_url=emu.base_url,
        model=MODEL,
    )
    wall = time.perf_counter() - started
    verdicts = [v for cell in c.cells for v in cell.verdicts if v is not None]
    rates = []
    for k in range(len(CHECK_LABELS)):
        scored = [v.results[k] for v in verdicts if v.results and not v.results[k].errored]
        rates.append((sum(bool(r.passed) for r in scored), len(scored)))
    return {
        "wall": wall,
        "own": wall,
        "requests": len(emu.chat_requests),
        "answers": sum(1 for r in c.responses if r.error is None and r.done),
        "judged": rates[-1][1],
        "rates": rates,
        "errors": sum(1 for r in c.responses if r.error is not None),
    }


# -- promptfoo -------------------------------------------------------------------------------------
def install_promptfoo(where: Path) -> Path | str:
    """promptfoo's executable, installed into ``where``; or why it could not be."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        return "npm or node is not installed"
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", PROMPTFOO],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return (
            f"npm install {PROMPTFOO} did not finish in {INSTALL_TIMEOUT} s (is the npm registry reachable?)"
        )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return f"npm install {PROMPTFOO} failed: {' / '.join(tail)}"
    print(f"installed {PROMPTFOO} in {time.perf_counter() - started:.0f} s into {where}", file=sys.stderr)
    return where / "node_modules" / ".bin" / "promptfoo"


def provider(base_url: str, label: str, **config: Any) -> dict[str, Any]:
    return {
        "id": f"openai:chat:{MODEL}",
        "label": label,
        "config": {"apiBaseUrl": base_url, "apiKey": "sk-bench", **config},
    }


def promptfoo_config(base_url: str) -> dict[str, Any]:
    grader = provider(
        base_url,
        "grader",
        temperature=0,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "grade", "strict": True, "schema": JUDGE_SCHEMA},
        },
    )
    return {
        "description": "bench/evaluate.py",
        "prompts": [TEMPLATE.replace("{sentence}", "{{sentence}}")],
        "providers": [provider(base_url, f"temperature={t}", temperature=t) for t in TEMPERATURES],
        "defaultTest": {
            "options": {"provider": grader},
            "assert": [
                {"type": "icontains", "value": "{{animal}}"},
                {"type": "regex", "value": PATTERN},
                {"type": "javascript", "value": f"output.length <= {LIMIT}"},
                {"type": "llm-rubric", "value": RUBRIC},
            ],
        },
        "tests": [{"vars": case} for case in cases()],
    }


def run_promptfoo(emu: Emulator, exe: Path, folder: Path) -> dict[str, Any]:
    config, out = folder / "promptfooconfig.json", folder / "results.json"
    config.write_text(json.dumps(promptfoo_config(emu.base_url), indent=1))
    env = {
        **os.environ,
        "PROMPTFOO_DISABLE_TELEMETRY": "1",
        "PROMPTFOO_DISABLE_UPDATE": "1",
        "PROMPTFOO_CONFIG_DIR": str(folder / "home"),  # its database and logs, thrown away with the folder
        "OPENAI_API_KEY": "sk-bench",
        "NODE_NO_WARNINGS": "1",
    }
    emu.reset()
    command = [str(exe), "eval", "-c", str(config), "-o", str(out), "--repeat", str(SAMPLES)]
    command += ["--max-concurrency", str(CONCURRENCY), "--no-cache", "--no-progress-bar", "--no-table"]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if not out.exists():
        raise RuntimeError(f"promptfoo eval wrote no results (exit {done.returncode}): {done.stderr[-800:]}")
    running = [line.strip() for line in done.stdout.splitlines() if line.startswith("Running ")]
    print(f"promptfoo: {running[0] if running else done.stdout.strip()[:200]}", file=sys.stderr)
    report = json.loads(out.read_text())["results"]
    results = report["results"]
    rates = [(0, 0) for _ in CHECK_LABELS]
    answered = 0
    for row in results:
        response = row.get("response") or {}
        answered += bool(response.get("output")) and not response.get("error")
        parts = ((row.get("gradingResult") or {}).get("componentResults")) or []
        for k, part in enumerate(parts[: len(CHECK_LABELS)]):
            if part.get("error"):
                continue
            passed, n = rates[k]
            rates[k] = (passed + bool(part.get("pass")), n + 1)
    return {
        "wall": wall,
        "own": report["stats"]["durationMs"] / 1000,  # its own timer: the eval without Node's start
        "requests": len(emu.chat_requests),
        "answers": answered,
        "judged": rates[-1][1],
        "rates": rates,
        "errors": sum(1 for row in results if row.get("error")),
    }


# -- the table -------------------------------------------------------------------------------------
def rate(passed: int, n: int) -> str:
    return f"{passed / n:.1%} ({passed}/{n})" if n else "–"


def print_table(rows: list[tuple[str, dict[str, Any]]]) -> None:
    head = ["run", "wall s", "its own timer s", "requests", "answers", "judged", *CHECK_LABELS]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name, r in rows:
        cells = [name, f"{r['wall']:.2f}", f"{r['own']:.2f}"]
        cells += [str(r["requests"]), str(r["answers"]), str(r["judged"])]
        cells += [rate(*x) for x in r["rates"]]
        print("| " + " | ".join(cells) + " |")


def local_checks_ms() -> float:
    """The three local checks of this benchmark over 10,000 finished answers, best of 5 (ms)."""
    batch = answers(10_000)
    per_case = [{"animal": "Paris" if i % 2 else "Seine"} for i in range(len(batch))]  # words they hold
    return best(our_checks()[:3], batch, per_case) * 1000


def main(argv: list[str]) -> int:
    given = argv[argv.index("--promptfoo") + 1] if "--promptfoo" in argv else None
    n = len(cases()) * len(TEMPERATURES) * SAMPLES
    print(
        f"evaluate: {len(cases())} cases × {len(TEMPERATURES)} temperatures × {SAMPLES} samples = "
        f"{n} answers, "
        f"3 local checks + 1 judge each; emulator {LATENCY * 1000:.0f} ms a request (in this process); "
        f"concurrency {CONCURRENCY}\n"
    )
    rows: list[tuple[str, dict[str, Any]]] = []
    note = ""
    with (
        tempfile.TemporaryDirectory(prefix="bench-promptfoo-") as tmp,
        Emulator(generator="simple", latency=LATENCY) as emu,
    ):
        rows.append((f"qwen-magics compare, concurrency {CONCURRENCY}", run_ours(emu, CONCURRENCY)))
        half = CONCURRENCY // 2  # its judges on as many threads again: as many requests at once as promptfoo
        rows.append((f"qwen-magics compare, concurrency {half}", run_ours(emu, half)))
        folder = Path(tmp)
        exe = Path(given) / "node_modules" / ".bin" / "promptfoo" if given else install_promptfoo(folder)
        if isinstance(exe, str):
            note = f"promptfoo not measured: {exe}"
        else:
            version = PROMPTFOO.split("@")[1]
            try:
                peer = run_promptfoo(emu, exe, folder)
            except (OSError, RuntimeError, KeyError, ValueError) as exc:
                note = f"promptfoo not measured: {type(exc).__name__}: {exc}"
            else:
                rows.append((f"promptfoo {version}, --max-concurrency {CONCURRENCY}", peer))
    print_table(rows)
    ours = rows[0][1]
    if note:
        print(f"\n{note}")
        verdict = "not compared"
    else:
        peer = rows[-1][1]
        same = [a == b for a, b in zip(ours["rates"][:3], peer["rates"][:3], strict=True)]
        verdict = "PASS" if ours["wall"] <= peer["wall"] else "FAIL"
        print(
            f"\nwall: {ours['wall']:.2f} s against {peer['wall']:.2f} s "
            f"({peer['wall'] / ours['wall']:.1f}× faster; {peer['own'] / ours['wall']:.1f}× against the eval "
            f"promptfoo times itself, {peer['own']:.2f} s); target <= promptfoo's: {verdict}"
        )
        print(f"local checks agree with promptfoo's assertions: {'yes' if all(same) else 'NO ' + str(same)}")
    took = local_checks_ms()
    print(
        f"local checks (icontains {{animal}}, regex, max_length) over 10,000 answers: {took:.1f} ms "
        f"(target <= 100 ms: {'PASS' if took <= 100 else 'FAIL'}; bench/checks_speed.py has more sets)"
    )
    return 0 if verdict != "FAIL" and all(r["errors"] == 0 for _, r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
