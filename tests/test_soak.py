"""A shortened soak (bench/soak.py): compare and apply under 429s, 500s, cut streams, error chunks and
latency; every request accounted for once, nothing duplicated, no memory, socket or thread left."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SOAK_PATH = Path(__file__).resolve().parents[1] / "bench" / "soak.py"


@pytest.fixture(scope="module")
def soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("qwen_soak", SOAK_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # 20 s of traffic; make test runs it, make test-fast leaves it out
@pytest.mark.timeout(180)  # a deadlock fails here with every thread's stack
def test_soak_accounts_for_every_request_under_faults(soak: ModuleType, clean_env: None) -> None:
    result = soak.run(300, seed=11, warm_up=1)
    print(soak.table(result, None))
    assert result.failures() == []
    cmp, app = result.compare, result.apply
    assert cmp.requests == 150 and app.requests == 150
    # the faults really happened, and each kind of outcome was seen
    assert cmp.s429 + app.s429 > 0 and cmp.s500 + app.s500 > 0
    # compare sends a broken stream once: every cut or error chunk is one kept partial answer
    assert cmp.kept_partial == cmp.cuts + cmp.error_chunks > 0
    assert app.cuts + app.error_chunks > 0 and app.reasked > 0
    assert cmp.completed > 100 and app.completed > 100
    assert result.rss_growth < soak.LIMIT_MB
    assert result.sockets[1] <= result.sockets[0] and result.threads[1] <= result.threads[0]


def test_the_partial_answer_check_rejects_a_repeated_or_foreign_answer(soak: ModuleType) -> None:
    reasoning, text = "I think. ", "You asked: tides. Word0 word1."
    assert soak.is_prefix("I th", "", reasoning, text)
    assert soak.is_prefix(reasoning, "You asked", reasoning, text)
    assert not soak.is_prefix(reasoning, text, reasoning, text)  # whole: not a broken stream
    assert not soak.is_prefix(reasoning, "You asked: tides. You asked", reasoning, text)  # a retry's text
    assert not soak.is_prefix("I th", "You", reasoning, text)  # answer before the reasoning ended
    assert not soak.is_prefix("", "", reasoning, text)  # nothing kept
