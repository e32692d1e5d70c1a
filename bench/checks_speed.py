"""Local checks over 10,000 answers: the time ``evaluate`` takes for typical sets of three checks.

Issue 15's target: at most 100 ms in all for 10,000 answers (the judge, which asks a model, is not
local and is left out). The answers are finished Responses with usage, a third of them failing each
set somewhere, so failing Results (which carry reasons) are timed too. Each figure is the best of
nine runs, in this process's CPU time (other work on a shared machine stretches the wall clock, not
this). The first row is the typical set the target is for, and the exit status follows it; the
others (a case column and the word similarity; JSON found and validated against a schema) do
more per answer and are shown against the same mark.
"""

from __future__ import annotations

import random
import sys
import time

from qwen_magics.api.response import Event, Response, Usage
from qwen_magics.checks import (
    Check,
    contains,
    equals,
    evaluate,
    icontains,
    is_json,
    matches_schema,
    max_length,
    max_tokens,
    regex,
    similar,
)

N = 10_000
TARGET = 0.100
RUNS = 9
SENTENCE = "the capital of France is Paris a city on the Seine with 2 million people"
WORDS = SENTENCE.split()


def answers(n: int, json_share: float = 0.0) -> list[Response]:
    rng = random.Random(15)
    out = []
    for i in range(n):
        if rng.random() < json_share:
            text = f'{{"city": "Paris", "people": {rng.randint(1, 9)}}}' if i % 3 else "not json"
        else:
            text = " ".join(rng.choices(WORDS, k=rng.randint(5, 40)))
        tokens = len(text) // 4
        events = [
            Event("start", data={"model": "qwen-plus"}),
            Event("text", text),
            Event("finish", data="stop"),
            Event("usage", data=Usage(20, tokens, 0, 0, 20 + tokens)),
        ]
        response = Response(request={"model": "qwen-plus", "messages": []}, params={}, source=iter(events))
        out.append(response.complete())
    return out


def best(checks: list[Check], batch: list[Response], cases: list[dict[str, str]] | None) -> float:
    times = []
    for _ in range(RUNS):
        start = time.process_time()
        for i, response in enumerate(batch):
            evaluate(checks, response, cases[i] if cases else None)
        times.append(time.process_time() - start)
    return min(times)


def main() -> int:
    text, mixed = answers(N), answers(N, json_share=1.0)
    cases = [{"expected": "Paris" if i % 2 else "Seine"} for i in range(N)]
    sets: list[tuple[str, list[Check], list[Response], list[dict[str, str]] | None]] = [
        (
            "contains, regex, max_length",
            [contains("Paris"), regex(r"\d+ million"), max_length(200)],
            text,
            None,
        ),
        ("icontains, max_tokens, equals", [icontains("paris"), max_tokens(50), equals("Paris")], text, None),
        (
            "contains {expected}, similar, regex",
            [contains("{expected}"), similar("Paris is the capital"), regex(r"^the")],
            text,
            cases,
        ),
        (
            "is_json, matches_schema, max_length",
            [is_json(), matches_schema("city, people int"), max_length(200)],
            mixed,
            None,
        ),
    ]
    print(
        f"checks_speed: {N:,} answers, three local checks each, best of {RUNS} in CPU time "
        f"(target <= {TARGET * 1000:.0f} ms)"
    )
    print(f"{'checks':<40} {'ms':>8} {'us/answer':>10}  result")
    failed = False
    for row, (label, chosen, batch, per_case) in enumerate(sets):
        took = best(chosen, batch, per_case)
        ok = took <= TARGET
        failed |= row == 0 and not ok
        print(f"{label:<40} {took * 1000:>8.1f} {took / N * 1e6:>10.2f}  {'PASS' if ok else 'FAIL'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
