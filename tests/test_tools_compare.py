"""compare(tools=...): every cell runs the same tool loop; a cell the loop would refuse is named."""

from __future__ import annotations

import pytest

import qwen_magics as qm
from qwen_magics.emulator import Emulator
from qwen_magics.errors import ParameterError


def get_weather(city: str) -> str:
    """Get the current weather for a city."""
    return f"rain in {city}"


def test_each_cell_runs_the_loop(qwen_env: Emulator) -> None:
    c = qm.compare(
        "What's the weather in Paris?", model=["qwen-plus", "qwen3.6-plus"], tools=[get_weather], show=False
    )
    assert list(c.df["text"].str.startswith("get_weather returned rain in Paris.")) == [True, True]
    assert len(qwen_env.chat_requests) == 4  # two steps a cell
    assert all(r.body["tools"][0]["function"]["name"] == "get_weather" for r in qwen_env.chat_requests)


def test_a_cell_the_loop_refuses_is_named_before_sending(qwen_env: Emulator) -> None:
    with pytest.raises(ParameterError, match='the cell "qwq-plus": qwq-plus does not take tools'):
        qm.compare("x", model=["qwen-plus", "qwq-plus"], tools=[get_weather], show=False)
    assert qwen_env.chat_requests == []


def test_confirm_asks_for_each_cells_calls_from_the_thread_that_shows_the_grid(
    qwen_env: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    asked: list[tuple[str, bool]] = []

    def answer(prompt: str) -> str:
        asked.append((prompt, threading.current_thread() is threading.main_thread()))
        return "y" if len(asked) == 1 else "n"

    monkeypatch.setattr("builtins.input", answer)
    c = qm.compare(
        "What's the weather in Paris?",
        model=["qwen-plus", "qwen3.6-plus"],
        tools=[get_weather],
        confirm=True,
        show=False,
    )
    assert asked == [("Run get_weather(city='Paris')? [y/N] ", True)] * 2  # asked here, one at a time
    outcomes = sorted(str((call.result, call.error)) for r in c.responses for call in r.tool_calls)
    assert outcomes == sorted(
        [str((None, "the user declined to run this call")), str(("rain in Paris", None))]
    )


def test_a_confirm_function_is_called_for_each_cell(qwen_env: Emulator) -> None:
    seen: list[str] = []
    qm.compare(
        "What's the weather in Paris?",
        temperature=[0.2, 0.8],
        model="qwen-plus",
        tools=[get_weather],
        confirm=lambda call: seen.append(call.name) or True,
        show=False,
    )
    assert seen == ["get_weather", "get_weather"]
