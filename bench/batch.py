"""50,000 rows through ``apply(batch=True)`` against the emulator's Batch API, beside live ``apply``
and beside the same job written by hand with the openai SDK's files/batches calls.

Measured for ``apply(batch=True)``: building the JSON lines and uploading them (``apply(...,
batch=True, wait=False)``: lines written, file uploaded, batch created), the build alone, merging the
results back (``job.result()`` once the batch is done and its files downloaded: every line parsed,
mapped by ``custom_id``, read as live apply reads an answer, the frame built), rows per second of
build + merge (target: >= 100,000), and the peak memory of the whole call beside the size of the
input file (traced in a second run, as tracing slows Python down; target: <= 2x). The peers: live
``apply`` at concurrency 16 on 2,000 rows, extrapolated to 50,000 (the emulator waits 200 ms a
request, as the apply bench does), and the openai SDK by hand (``json.dumps`` a line per row,
``files.create``, ``batches.create``, poll, ``files.content``, ``json.loads`` each line back into a
DataFrame: no schema, no validation, no error column). Price: the batch's own tokens at the live
and at the batch price. The emulator runs as its own process (``qwen-magics serve``).
Run: ``python bench/batch.py [--rows N]``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pandas as pd

ROWS = 50_000
LIVE_SAMPLE = 2_000
LATENCY = 0.2
CONCURRENCY = 16
MODEL = "qwen-plus"
TEMPLATE = "Describe the planet {name} as JSON"
RATE_TARGET = 100_000.0
MEMORY_TARGET = 2.0
REPEAT = 5


@contextmanager
def emulator() -> Iterator[str]:
    """The emulator's base URL, in its own process, answering live requests after LATENCY seconds."""
    serve = ["serve", "--port", "0", "--generator", "simple", "--latency", str(LATENCY)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "qwen_magics.cli", *serve],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().rsplit(" on ", 1)[1].strip()
    finally:
        proc.terminate()
        proc.wait()


def frame(rows: int) -> pd.DataFrame:
    return pd.DataFrame({"name": [f"Planet-{i}" for i in range(rows)]}, index=pd.RangeIndex(rows) + 1000)


def run_batch(df: pd.DataFrame) -> dict[str, float]:
    """apply(batch=True), its phases timed."""
    from qwen_magics.structured.apply import apply

    started = time.perf_counter()
    job = apply(df, TEMPLATE, model=MODEL, batch=True, wait=False, progress=False)
    submitted = time.perf_counter()
    job.wait(progress=False)
    waited = time.perf_counter()
    job.download()
    downloaded = time.perf_counter()
    out = job.result()
    merged = time.perf_counter()
    assert out.index.equals(df.index) and out["_error"].isna().all(), out["_error"].dropna().head()
    expected = [TEMPLATE.format(name=n) for n in df["name"]]
    assert out["answer"].tolist() == expected, "answers out of order"
    size = sum(p.input_path.stat().st_size for p in job.parts if p.input_path is not None)
    usage = out.attrs["usage"]
    return {
        "job": job,  # type: ignore[dict-item]
        "submit": submitted - started,
        "wait": waited - submitted,
        "download": downloaded - waited,
        "merge": merged - downloaded,
        "input_bytes": float(size),
        "prompt_tokens": usage["prompt_tokens"],
        "completion_tokens": usage["completion_tokens"],
        "cost": out.attrs["batch"]["cost"] or 0.0,
    }


def finish_only(job: object) -> float:
    """The finisher alone on the downloaded files: every line parsed, the frame built."""
    from qwen_magics.structured.batch import finish

    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        finish(job)  # type: ignore[arg-type]
    return time.perf_counter() - started


def build_only(df: pd.DataFrame) -> float:
    """The lines alone, written to a folder of their own: what submit spends before uploading."""
    from qwen_magics import config
    from qwen_magics.jobs.files import LIMITS
    from qwen_magics.structured.batch import Request, prompts, write_lines

    started = time.perf_counter()
    request = Request(config.settings(model=MODEL), None, False, {"model": MODEL})
    with tempfile.TemporaryDirectory() as folder:
        write_lines(request, prompts(df, TEMPLATE), df.index, Path(folder), LIMITS)
        return time.perf_counter() - started


def traced_peak(df: pd.DataFrame) -> float:
    """Peak bytes Python allocated during a whole apply(batch=True, wait=True), the frame kept."""
    from qwen_magics.structured.apply import apply

    tracemalloc.start()
    try:
        out = apply(df, TEMPLATE, model=MODEL, batch=True, progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(out) == len(df)
    return float(peak)


def run_live(df: pd.DataFrame) -> float:
    """Seconds live apply takes for the sample at concurrency 16."""
    from qwen_magics.structured.apply import apply

    started = time.perf_counter()
    out = apply(df, TEMPLATE, model=MODEL, concurrency=CONCURRENCY, progress=False)
    wall = time.perf_counter() - started
    assert out["_error"].isna().all()
    return wall


def run_sdk(df: pd.DataFrame, base_url: str) -> dict[str, float]:
    """The same job by hand with the openai SDK: build, upload + create, wait, merge."""
    from openai import OpenAI

    client = OpenAI(api_key="sk-bench", base_url=base_url)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "batch.jsonl"
        with open(path, "w") as f:
            for i, name in enumerate(df["name"]):
                line = {
                    "custom_id": str(i),
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": {
                        "model": MODEL,
                        "messages": [
                            {"role": "system", "content": "Answer with JSON only."},
                            {"role": "user", "content": TEMPLATE.format(name=name)},
                        ],
                        "response_format": {"type": "json_object"},
                        "enable_thinking": False,
                    },
                }
                f.write(json.dumps(line, ensure_ascii=False) + "\n")
        built = time.perf_counter()
        with open(path, "rb") as f:
            uploaded = client.files.create(file=f, purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    submitted = time.perf_counter()
    while batch.status not in ("completed", "failed", "expired", "cancelled"):
        time.sleep(0.25)
        batch = client.batches.retrieve(batch.id)
    waited = time.perf_counter()
    assert batch.output_file_id is not None
    text = client.files.content(batch.output_file_id).text
    records: list[dict[str, object]] = [{} for _ in range(len(df))]
    for raw in text.splitlines():
        line = json.loads(raw)
        content = line["response"]["body"]["choices"][0]["message"]["content"]
        records[int(line["custom_id"])] = json.loads(content)
    out = pd.DataFrame(records, index=df.index)
    merged = time.perf_counter()
    assert len(out) == len(df)
    return {
        "build": built - started,
        "submit": submitted - started,
        "wait": waited - submitted,
        "merge": merged - waited,
    }


def main(argv: list[str]) -> int:
    from qwen_magics.models import estimate_cost

    rows = int(argv[argv.index("--rows") + 1]) if "--rows" in argv else ROWS
    df = frame(rows)
    with tempfile.TemporaryDirectory() as store, emulator() as base_url:
        os.environ.update(QWEN_BATCHES=store, DASHSCOPE_BASE_URL=base_url, DASHSCOPE_API_KEY="sk-bench")
        os.environ["QWEN_HISTORY"] = "off"
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            ours = run_batch(df)
            # the machine may be shared: the best of REPEAT runs of each step, as timeit reports
            build = min(build_only(df) for _ in range(REPEAT))
            parse = min(finish_only(ours["job"]) for _ in range(REPEAT))
            peak = traced_peak(df)
        sdk = run_sdk(df, base_url)
        sample = min(LIVE_SAMPLE, rows)
        live = run_live(df.iloc[:sample]) * rows / sample
        root = base_url.split("/compatible-mode")[0]
        httpx.post(f"{root}/_emulator/reset")

    live_price = estimate_cost(MODEL, int(ours["prompt_tokens"]), int(ours["completion_tokens"])) or 0.0
    rate = rows / (build + parse)
    ratio = peak / ours["input_bytes"]
    rate_ok = "PASS" if rate >= RATE_TARGET else "FAIL"
    memory_ok = "PASS" if ratio <= MEMORY_TARGET else "FAIL"
    mb = ours["input_bytes"] / 2**20
    print(
        f"batch apply: {rows:,} rows, model {MODEL}, template {TEMPLATE!r}; input file {mb:.1f} MB; "
        f"emulator in its own process ({LATENCY * 1000:.0f} ms a live request)\n"
    )
    head = ("method", "build+upload s", "wait s", "merge s", "build+merge rows/s", "peak memory", "price $")
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("-" * (len(h) + 2) for h in head) + "|")
    print(
        f"| apply(batch=True) | {ours['submit']:.2f} (build {build:.2f}) | {ours['wait']:.1f} | "
        f"{ours['merge']:.2f} (finish {parse:.2f}) | {rate:,.0f} | "
        f"{peak / 2**20:.1f} MB = {ratio:.2f}x input | "
        f"{ours['cost']:.4f} |"
    )
    sdk_rate = rows / (sdk["build"] + sdk["merge"])
    print(
        f"| openai SDK by hand | {sdk['submit']:.2f} (build {sdk['build']:.2f}) | {sdk['wait']:.1f} | "
        f"{sdk['merge']:.2f} | {sdk_rate:,.0f} | - | {live_price / 2:.4f} |"
    )
    print(
        f"| live apply, concurrency {CONCURRENCY} ({sample:,} measured, x{rows / sample:g}) | - | "
        f"{live:.1f} | - | {rows / live:,.0f} (answered) | - | {live_price:.4f} |"
    )
    print(
        f"\nbuild + merge: {rate:,.0f} rows/s (build {build:.3f} s + finish {parse:.3f} s, best of "
        f"{REPEAT}; target >= {RATE_TARGET:,.0f}): {rate_ok}\n"
        f"peak memory: {ratio:.2f}x the input file (target <= {MEMORY_TARGET:g}x): {memory_ok}\n"
        f"price for the same tokens: live ${live_price:.4f}, batch ${ours['cost']:.4f} "
        f"({ours['cost'] / live_price:.0%} of live)"
        if live_price
        else ""
    )
    return 0 if rate_ok == memory_ok == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
