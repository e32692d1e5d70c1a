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
