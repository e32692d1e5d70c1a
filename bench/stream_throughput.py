"""Stream parsing speed: one recorded 10,000-chunk SSE stream, read by our client and by the openai SDK.

Both clients get the same bytes from memory through httpx.MockTransport (no network), so the figure
is the cost of reading the stream: SSE framing, JSON, and the objects each client builds per chunk.
Target: ours >= 3x the openai SDK's chunks per second.
"""

from __future__ import annotations

import json
import statistics
import time

import httpx
import openai

from qwen_magics import Client

CHUNKS = 10_000
PIECE = 16_384  # bytes per read, like a socket delivering a busy stream
BASE = "http://bench.local/compatible-mode/v1"


def recorded_stream(n: int = CHUNKS) -> bytes:
    """A qwen3.6-plus thinking stream in DashScope's framing: role, reasoning, answer, finish, usage."""
    meta = {
        "object": "chat.completion.chunk",
        "usage": None,
        "created": 1782800450,
        "system_fingerprint": None,
        "model": "qwen3.6-plus",
        "id": "chatcmpl-5c204aa7-23bd-90ab-bf79-8850297aefde",
    }
    out = []
    words = ["the", " tide", " rises", " as", " the", " moon", " pulls", " on", " the", " sea", ","]
    reasoning = n // 3
    for i in range(n - 2):
        word = words[i % len(words)]
        if i < reasoning:
            delta = {"content": None, "reasoning_content": word}
        else:
            delta = {"content": word, "reasoning_content": None}
        if i == 0:
            delta["role"] = "assistant"
        out.append(
            {"choices": [{"delta": delta, "finish_reason": None, "index": 0, "logprobs": None}], **meta}
        )
    out.append(
        {
            "choices": [
                {
                    "delta": {"content": "", "reasoning_content": None},
                    "finish_reason": "stop",
                    "index": 0,
                    "logprobs": None,
                }
            ],
            **meta,
        }
    )
    usage = {
        "prompt_tokens": 30,
        "completion_tokens": n - 2,
        "total_tokens": n + 28,
        "completion_tokens_details": {"reasoning_tokens": reasoning, "text_tokens": n - 2},
    }
    out.append({**meta, "choices": [], "usage": usage})
    lines = [b"data: " + json.dumps(c, separators=(",", ":")).encode() + b"\n\n" for c in out]
    return b"".join(lines) + b"data: [DONE]\n\n"


def transport(body: bytes) -> httpx.MockTransport:
    pieces = [body[i : i + PIECE] for i in range(0, len(body), PIECE)]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": "text/event-stream;charset=UTF-8"}, content=iter(pieces)
        )

    return httpx.MockTransport(handler)


def ours(body: bytes) -> tuple[float, int]:
    with Client(transport=transport(body), api_key="sk-bench", base_url=BASE) as client:
        start = time.perf_counter()
        response = client.ask("Explain the tides", model="qwen3.6-plus")
        count = sum(1 for e in response if e.type in ("text", "reasoning"))
        return time.perf_counter() - start, count


def theirs(body: bytes) -> tuple[float, int]:
    http = httpx.Client(transport=transport(body))
    client = openai.OpenAI(api_key="sk-bench", base_url=BASE, http_client=http, max_retries=0)
    start = time.perf_counter()
    stream = client.chat.completions.create(
        model="qwen3.6-plus",
        messages=[{"role": "user", "content": "Explain the tides"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    count = 0
    for chunk in stream:
        for choice in chunk.choices:
            if choice.delta.content or getattr(choice.delta, "reasoning_content", None):
                count += 1
    elapsed = time.perf_counter() - start
    client.close()
    return elapsed, count


def main(repeats: int = 7) -> None:
    body = recorded_stream()
    ours(body), theirs(body)  # warm up both
    rows = []
    for name, run in (("qwen-magics", ours), (f"openai {openai.__version__}", theirs)):
        times = []
        for _ in range(repeats):
            elapsed, count = run(body)
            assert count == CHUNKS - 2, (name, count)
            times.append(elapsed)
        rows.append((name, statistics.median(times)))
    print(
        f"stream_throughput: one {CHUNKS:,}-chunk SSE stream ({len(body) / 1e6:.1f} MB) from memory, "
        f"median of {repeats}"
    )
    print(f"{'client':<16} {'seconds':>9} {'chunks/s':>12}")
    for name, seconds in rows:
        print(f"{name:<16} {seconds:>9.4f} {CHUNKS / seconds:>12,.0f}")
    ratio = rows[1][1] / rows[0][1]
    verdict = "PASS" if ratio >= 3 else "FAIL"
    print(f"ratio: qwen-magics is {ratio:.1f}x the openai SDK (target >= 3x): {verdict}")


if __name__ == "__main__":
    main()
