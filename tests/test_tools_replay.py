"""Replay of a tool loop, from the history and from a saved notebook's records: the recorded trace
(calls, arguments, results and errors, steps) and the answer, without calling the functions again
and without a server. A real shell, the emulator over HTTP, stopped where replay must not need it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

import qwen_magics as qm
from qwen_magics import historydb
from qwen_magics.api import replay
from qwen_magics.emulator import Emulator

from .outputs import magic, rendered_markdown
from .test_replay import notebook, records

PROMPT = "What's the weather in Paris and the time in Tokyo?"
ran: list[str] = []


def get_weather(city: str) -> str:
    """Get the current weather for a city."""
    ran.append(city)
    return f"rain in {city}, 12 C"


def get_time(zone: str) -> str:
    """The current time in a timezone."""
    ran.append(zone)
    raise RuntimeError("the clock is broken")


TOOLS = [get_weather, get_time]


def trace(r: qm.Response) -> list[tuple[Any, ...]]:
    return [(c.step, c.name, c.arguments, c.result, c.error) for c in r.tool_calls]


@pytest.fixture(autouse=True)
def fresh() -> None:
    ran.clear()


def test_ask_with_tools_replays_the_trace_from_the_history_without_calling_the_functions(
    history: Path, qwen_env: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = qm.ask(PROMPT, model="qwen-plus", tools=TOOLS).complete()
    assert ran == ["Paris", "Tokyo"] and a.steps == 3
    historydb.flush(10)
    rows = historydb.search(history)[::-1]  # oldest first: the steps in order
    kept = [c for row in rows if row["tool_calls"] for c in json.loads(row["tool_calls"])]
    assert [(c["name"], c.get("result"), c.get("error")) for c in kept] == [
        ("get_weather", "rain in Paris, 12 C", None),
        ("get_time", None, "RuntimeError: the clock is broken"),
    ]
    ran.clear()
    qwen_env.stop()
    monkeypatch.delenv("DASHSCOPE_API_KEY")
    replay.use("only")
    b = qm.ask(PROMPT, model="qwen-plus", tools=TOOLS).complete()
    assert ran == []  # the functions did not run again
    assert trace(b) == trace(a) and b.text == a.text and b.steps == a.steps
    assert [c.seconds for c in b.tool_calls] == [pytest.approx(c.seconds, abs=1e-3) for c in a.tool_calls]
    assert b.usage == a.usage
    assert "replayed" in b.footer()


def test_aask_with_tools_replays_too(history: Path, qwen_env: Emulator) -> None:
    async def asked() -> qm.Response:
        return await (await qm.aask(PROMPT, model="qwen-plus", tools=TOOLS)).acomplete()

    a = asyncio.run(asked())
    historydb.flush(10)
    ran.clear()
    qwen_env.requests.clear()
    replay.use("only")
    b = asyncio.run(asked())
    assert ran == [] and qwen_env.chat_requests == []
    assert trace(b) == trace(a) and b.text == a.text


def test_a_tools_cell_replays_from_the_saved_notebook(
    ip: Any, tmp_path: Path, qwen_env: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    ip.user_ns.update(get_weather=get_weather, get_time=get_time)
    first = magic(ip, "-m qwen-plus --tools get_weather,get_time -o a", PROMPT)
    a = ip.user_ns["a"]
    kept = records(first.outputs)
    assert len(kept) == 3  # each step of the loop, the calls with what came of them
    assert [c["name"] for r in kept for c in r.get("tool_calls", [])] == ["get_weather", "get_time"]
    saved = notebook(tmp_path / "tools.ipynb", first.outputs)
    ran.clear()
    qwen_env.stop()
    monkeypatch.delenv("DASHSCOPE_API_KEY")
    magic(ip, f"replay only {saved}")
    again = magic(ip, "-m qwen-plus --tools get_weather,get_time -o b", PROMPT)
    b = ip.user_ns["b"]
    assert ran == []
    assert trace(b) == trace(a) and b.text == a.text and b.steps == 3
    md = rendered_markdown(again.outputs)
    assert "rain in Paris, 12 C" in md and "the clock is broken" in md and "replayed" in md
    assert len(records(again.outputs)) == 3  # the replay keeps the records: still a cassette


def test_confirm_is_not_asked_on_replay(history: Path, qwen_env: Emulator) -> None:
    a = qm.ask(PROMPT, model="qwen-plus", tools=TOOLS, confirm=lambda call: True).complete()
    historydb.flush(10)
    asked: list[str] = []
    replay.use("only")
    b = qm.ask(PROMPT, model="qwen-plus", tools=TOOLS, confirm=lambda call: asked.append(call.name) or True)
    assert trace(b.complete()) == trace(a) and asked == []


def test_a_record_without_the_outcomes_ends_the_replayed_loop_with_a_note(
    history: Path, qwen_env: Emulator
) -> None:
    qm.ask(PROMPT, model="qwen-plus", tools=TOOLS).complete()
    historydb.flush(10)
    con = historydb.connect(history)
    assert con is not None
    con.execute("UPDATE answers SET tool_calls = json_remove(tool_calls, '$[0].result')")
    con.close()
    ran.clear()
    qwen_env.requests.clear()
    replay.use("only")
    b = qm.ask(PROMPT, model="qwen-plus", tools=TOOLS).complete()
    assert ran == [] and qwen_env.chat_requests == []
    assert b.tool_calls[0].error == "not run: its record does not keep what came of it"
    assert any("turn replay off to run the tools" in n for n in b.notes)


def test_a_loop_stopped_at_its_confirm_question_replays_no_further(history: Path, qwen_env: Emulator) -> None:
    def stop(call: Any) -> bool:
        raise KeyboardInterrupt

    try:
        qm.ask(PROMPT, model="qwen-plus", tools=TOOLS, confirm=stop).complete()
    except KeyboardInterrupt:
        pass
    historydb.flush(10)
    kept = [
        c for row in historydb.search(history) if row["tool_calls"] for c in json.loads(row["tool_calls"])
    ]
    assert kept and not any("interrupted" in str(c.get("error")) for c in kept)  # a Stop is no outcome
    qwen_env.requests.clear()
    replay.use("only")
    b = qm.ask(PROMPT, model="qwen-plus", tools=TOOLS).complete()
    assert ran == [] and qwen_env.chat_requests == []
    assert b.tool_calls[0].error == "not run: its record does not keep what came of it"
