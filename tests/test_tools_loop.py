"""The function-calling loop against the emulator over HTTP: calls run, results go back, the trace,
totals, errors sent to the model as text, the limits, interrupts, and the one-line refusals."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import qwen_magics as qm
from qwen_magics.emulator import Emulator
from qwen_magics.errors import ParameterError

from .test_history import rows

PROMPT = "What's the weather in Paris and the time in Tokyo?"


def get_weather(city: str) -> str:
    """Get the current weather for a city."""
    return f"rain in {city}, 12 °C"


def get_time(zone: str) -> str:
    """The current time in a timezone."""
    return "10:00"


def sent(emu: Emulator) -> list[list[dict[str, Any]]]:
    return [r.body["messages"] for r in emu.chat_requests]


def test_calls_run_one_per_step_and_the_answer_uses_their_results(qwen_env: Emulator) -> None:
    r = qm.ask(PROMPT, model="qwen-plus", tools=[get_weather, get_time])
    assert r.text.startswith("get_weather returned rain in Paris, 12 °C. get_time returned 10:00.")
    assert [(c.name, c.args, c.result, c.step) for c in r.tool_calls] == [
        ("get_weather", {"city": "Paris"}, "rain in Paris, 12 °C", 1),
        ("get_time", {"zone": "Tokyo"}, "10:00", 2),
    ]
    assert all(c.seconds is not None and c.seconds >= 0 for c in r.tool_calls)
    assert r.steps == 3 and r.finish_reason == "stop" and not r.incomplete
    last = sent(qwen_env)[-1]
    assert [m["role"] for m in last] == ["user", "assistant", "tool", "assistant", "tool"]
    assert last[2] == {"role": "tool", "tool_call_id": r.tool_calls[0].id, "content": "rain in Paris, 12 °C"}
    assert last[1]["tool_calls"][0]["id"] == r.tool_calls[0].id


def test_each_step_is_recorded_and_the_usage_totals_the_steps(qwen_env: Emulator, history: Path) -> None:
    r = qm.ask(PROMPT, model="qwen-plus", tools=[get_weather, get_time])
    r.complete()
    found = rows(history)
    assert len(found) == 3 and all(row["prompt"] == PROMPT for row in found)
    for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
        assert getattr(r.usage, name) == sum(row[name] for row in found) > 0
    assert r.cost is not None and r.cost > 0


def test_parallel_calls_run_concurrently(qwen_env: Emulator) -> None:
    both = threading.Barrier(2, timeout=5)  # passes only if the two calls run at the same time

    def get_weather(city: str) -> str:
        """Get the current weather for a city."""
        both.wait()
        return "sunny"

    def get_time(zone: str) -> str:
        """The current time in a timezone."""
        both.wait()
        return "noon"

    r = qm.ask(PROMPT, model="qwen-plus", tools=[get_weather, get_time], parallel_tool_calls=True)
    assert r.text.startswith("get_weather returned sunny. get_time returned noon.")
    assert [c.step for c in r.tool_calls] == [1, 1] and r.steps == 2
    assert qwen_env.chat_requests[0].body["parallel_tool_calls"] is True


def test_async_functions_are_awaited_in_ask_and_aask(qwen_env: Emulator) -> None:
    async def get_weather(city: str) -> str:
        """Get the current weather for a city."""
        await asyncio.sleep(0.01)
        return f"fog in {city}"

    assert qm.ask("Weather in Oslo?", tools=[get_weather], model="qwen-plus").text.startswith(
        "get_weather returned fog in Oslo."
    )

    async def main() -> Any:
        r = await qm.aask(PROMPT, tools=[get_weather, get_time], model="qwen-plus", parallel_tool_calls=True)
        return await r.acomplete()

    r = asyncio.run(main())
    assert [c.result for c in r.tool_calls] == ["fog in Paris", "10:00"]
    assert r.text.startswith("get_weather returned fog in Paris.")


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ('{"city": ', "invalid arguments for get_weather: the arguments are not valid JSON"),
        ('{"city": 3}', "invalid arguments for get_weather: city: expected string, got integer 3"),
        ('{"town": "x"}', "missing required field 'city'"),
    ],
)
def test_bad_arguments_go_back_to_the_model_as_the_tools_error(
    qwen_env: Emulator, arguments: str, error: str
) -> None:
    qwen_env.queue_tool_calls(("get_weather", arguments))
    r = qm.ask("Weather in Oslo?", model="qwen-plus", tools=[get_weather])
    assert r.text.startswith("get_weather returned Error: invalid arguments")
    (call,) = r.tool_calls
    assert error in (call.error or "") and call.result is None
    tool_turn = sent(qwen_env)[-1][-1]
    assert tool_turn["role"] == "tool" and tool_turn["content"] == f"Error: {call.error}"


def test_a_functions_exception_and_an_unknown_tool_go_back_as_text(qwen_env: Emulator) -> None:
    def get_weather(city: str) -> str:
        """Get the current weather for a city."""
        raise ValueError(f"no station in {city}")

    qwen_env.queue_tool_calls(("get_weather", '{"city": "Oslo"}'), ("lookup", "{}"))
    r = qm.ask("Weather in Oslo?", model="qwen-plus", tools=[get_weather], parallel_tool_calls=True)
    assert [c.error for c in r.tool_calls] == [
        "ValueError: no station in Oslo",
        "there is no tool named 'lookup'; the tools are get_weather",
    ]
    assert not r.incomplete and r.finish_reason == "stop"


def test_max_steps_ends_with_a_clear_note_and_keeps_the_trace(qwen_env: Emulator) -> None:
    r = qm.ask(PROMPT, model="qwen-plus", tools=[get_weather, get_time], max_steps=2)
    r.complete()
    assert r.steps == 2 and r.finish_reason == "tool_calls"
    assert [c.name for c in r.tool_calls] == ["get_weather", "get_time"]
    assert r.tool_calls[0].ok and r.tool_calls[1].error == "not run: the loop stopped at max_steps=2"
    assert any("stopped after 2 steps with the model still calling get_time" in n for n in r.notes)
    assert len(qwen_env.chat_requests) == 2


def test_thinking_turns_sent_back_keep_their_reasoning(qwen_env: Emulator) -> None:
    r = qm.ask("Weather in Oslo?", model="qwen3.6-plus", tools=[get_weather])
    assert r.reasoning and r.text
    assistant = sent(qwen_env)[1][1]
    assert assistant["role"] == "assistant" and assistant["reasoning_content"].startswith(
        "The question is about"
    )


def test_confirm_refusal_goes_back_to_the_model(qwen_env: Emulator) -> None:
    asked: list[str] = []

    def confirm(call: Any) -> bool:
        asked.append(f"{call.name} {call.arguments}")
        return False

    ran: list[str] = []

    def get_weather(city: str) -> str:
        """Get the current weather for a city."""
        ran.append(city)
        return "x"

    r = qm.ask("Weather in Oslo?", model="qwen-plus", tools=[get_weather], confirm=confirm)
    assert r.text.startswith("get_weather returned Error: the user declined to run this call.")
    assert asked == ['get_weather {"city": "Oslo"}'] and ran == []


def test_ctrl_c_in_a_function_keeps_the_trace(qwen_env: Emulator) -> None:
    def get_time(zone: str) -> str:
        """The current time in a timezone."""
        raise KeyboardInterrupt

    r = qm.ask(PROMPT, model="qwen-plus", tools=[get_weather, get_time])
    with pytest.raises(KeyboardInterrupt):
        r.complete()
    assert [(c.name, c.ok) for c in r.tool_calls] == [("get_weather", True), ("get_time", False)]
    assert r.tool_calls[1].error == "interrupted" and r.interrupted and r.done
    assert len(qwen_env.chat_requests) == 2


def test_interrupt_from_another_thread_ends_the_loop_between_steps(qwen_env: Emulator) -> None:
    started = threading.Event()

    def get_weather(city: str) -> str:
        """Get the current weather for a city."""
        started.set()
        time.sleep(0.3)
        return "hail"

    r = qm.ask(PROMPT, model="qwen-plus", tools=[get_weather, get_time])
    threading.Thread(target=lambda: (started.wait(5), r.interrupt("stopped"))).start()
    r.complete()
    assert r.interrupted and [c.result for c in r.tool_calls] == ["hail"]
    assert len(qwen_env.chat_requests) == 1  # no step after the Stop


@pytest.mark.parametrize(
    ("kw", "param", "words"),
    [
        ({"model": "qwq-plus"}, "tools", "qwq-plus does not take tools; use one that does"),
        ({"n": 2}, "n", "n must be 1 with tools"),
        ({"model": "qwen3.6-plus", "tool_choice": "required"}, "tool_choice", "refused while thinking is on"),
        ({"tool_choice": "lookup"}, "tool_choice", "one of the tools (get_weather); got 'lookup'"),
        ({"max_steps": 0}, "max_steps", "1 or more; got 0"),
        ({"tools": []}, "tools", "tools is empty"),
        ({"tools": [get_weather, get_weather]}, "tools", "two tools are named 'get_weather'"),
        ({"confirm": "yes"}, "confirm", "confirm must be True, False or a function"),
    ],
)
def test_wrong_combinations_are_one_line_errors_before_sending(
    qwen_env: Emulator, kw: dict[str, Any], param: str, words: str
) -> None:
    with pytest.raises(ParameterError) as info:
        qm.ask("Weather in Oslo?", **{"model": "qwen-plus", "tools": [get_weather], **kw})
    assert info.value.param == param and words in str(info.value) and "\n" not in str(info.value)
    assert qwen_env.chat_requests == []


def test_tool_options_without_tools_are_refused(qwen_env: Emulator) -> None:
    with pytest.raises(ParameterError, match="tool_choice goes with tools"):
        qm.ask("hi", tool_choice="auto")


def test_forced_tool_choice_and_none(qwen_env: Emulator) -> None:
    r = qm.ask("Tell me a joke", model="qwen-plus", tools=[get_weather, get_time], tool_choice=get_time)
    assert [c.name for c in r.tool_calls] == ["get_time"]
    assert qwen_env.chat_requests[0].body["tool_choice"] == {
        "type": "function",
        "function": {"name": "get_time"},
    }
    r = qm.ask(PROMPT, model="qwen-plus", tools=[get_weather], tool_choice="none")
    assert r.tool_calls == [] and r.steps == 1


def test_non_streaming_loop(qwen_env: Emulator) -> None:
    r = qm.ask(PROMPT, model="qwen-plus", tools=[get_weather, get_time], stream=False)
    assert [c.result for c in r.tool_calls] == ["rain in Paris, 12 °C", "10:00"] and r.steps == 3
    assert all(req.body["stream"] is False for req in qwen_env.chat_requests)


def test_results_that_are_not_text_are_sent_as_json(qwen_env: Emulator) -> None:
    def get_weather(city: str) -> dict[str, Any]:
        """Get the current weather for a city."""
        return {"city": city, "temp": 12}

    r = qm.ask("Weather in Oslo?", model="qwen-plus", tools=[get_weather])
    assert json.loads(r.tool_calls[0].result or "") == {"city": "Oslo", "temp": 12}


def test_structured_output_after_tools(qwen_env: Emulator) -> None:
    r = qm.ask_json(
        "What's the weather in Paris?", schema="city, summary", model="qwen-plus", tools=[get_weather]
    )
    assert set(r.data) == {"city", "summary"} and [c.name for c in r.tool_calls] == ["get_weather"]
    assert [m["role"] for m in sent(qwen_env)[-1]] == ["system", "user", "assistant", "tool"]
    assert all(req.body["response_format"]["type"] == "json_schema" for req in qwen_env.chat_requests)


def test_a_replayed_tool_step_from_an_older_record_says_it_lacks_the_calls(
    qwen_env: Emulator, history: Path
) -> None:
    from qwen_magics import historydb
    from qwen_magics.api import replay

    qm.ask("Weather in Oslo?", model="qwen-plus", tools=[get_weather], seed=1).complete()
    assert rows(history)
    con = historydb.connect(history)
    assert con is not None
    con.execute("UPDATE answers SET tool_calls = NULL")  # as rows written before the column hold them
    con.close()
    replay.use("on")
    r = qm.ask("Weather in Oslo?", model="qwen-plus", tools=[get_weather], seed=1)
    r.complete()
    assert r.steps == 1 and r.tool_calls == []
    assert any("its record does not keep" in n for n in r.notes)
