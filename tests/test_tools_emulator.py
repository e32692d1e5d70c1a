"""The emulator's function calling over HTTP: which tools a prompt calls, the stream's pieces, the
answer from the results, and the checks DashScope makes of tools and tool turns."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from qwen_magics.emulator import Emulator

from .conftest import TEST_KEY

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
CLOCK = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The current time in a timezone",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]},
    },
}
PROMPT = "What's the weather in Paris and the time in Tokyo?"


def post(emu: Emulator, **body: Any) -> httpx.Response:
    body = {"model": "qwen-plus", "messages": [{"role": "user", "content": PROMPT}], **body}
    return httpx.post(
        f"{emu.base_url}/chat/completions", json=body, headers={"Authorization": f"Bearer {TEST_KEY}"}
    )


def chunks(resp: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in resp.text.split("\n\n") if line.startswith("data: {")]


def test_prompt_naming_a_tool_gets_a_call_with_arguments_from_its_words(emulator: Emulator) -> None:
    resp = post(emulator, tools=[WEATHER, CLOCK], stream=False)
    choice = resp.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]  # parallel calls are off by default
    assert call["id"].startswith("call_") and len(call["id"]) == 29 and call["index"] == 0
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert choice["message"]["content"] == ""


def test_parallel_calls_come_in_one_turn_each_with_its_own_arguments(emulator: Emulator) -> None:
    resp = post(emulator, tools=[WEATHER, CLOCK], stream=False, parallel_tool_calls=True)
    calls = resp.json()["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_time"]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [{"city": "Paris"}, {"zone": "Tokyo"}]


def test_a_prompt_about_nothing_the_tools_do_gets_text(emulator: Emulator) -> None:
    resp = post(
        emulator, tools=[WEATHER], stream=False, messages=[{"role": "user", "content": "Tell a joke"}]
    )
    choice = resp.json()["choices"][0]
    assert choice["finish_reason"] == "stop" and "tool_calls" not in choice["message"]


def test_stream_sends_calls_in_pieces_as_qwen_plus_does(emulator: Emulator) -> None:
    resp = post(emulator, tools=[WEATHER, CLOCK], stream=True, parallel_tool_calls=True)
    data = chunks(resp)
    first = data[0]["choices"][0]["delta"]
    assert first["role"] == "assistant" and first["content"] is None
    frag = first["tool_calls"][0]
    assert frag["id"].startswith("call_") and frag["function"]["name"] == "get_weather"
    later = [c["choices"][0]["delta"]["tool_calls"][0] for c in data[1:-1]]
    assert all(f["id"] == "" and f["type"] == "function" for f in later if "name" not in f["function"])
    assert later[-1]["function"]["arguments"] is None  # the trailing fragment
    assert "finish_reason" not in data[-2]["choices"][0]
    assert data[-1]["choices"][0] == {
        "delta": {},
        "finish_reason": "tool_calls",
        "index": 0,
        "logprobs": None,
    }
    joined: dict[int, str] = {}
    for f in [first["tool_calls"][0], *later]:
        joined[f["index"]] = joined.get(f["index"], "") + (f["function"].get("arguments") or "")
    assert [json.loads(v) for v in joined.values()] == [{"city": "Paris"}, {"zone": "Tokyo"}]
    assert len(later) > 4  # arguments really arrive in fragments


def test_results_sent_back_are_used_in_the_answer(emulator: Emulator) -> None:
    message = post(emulator, tools=[WEATHER], stream=False).json()["choices"][0]["message"]
    result = {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": "rain, 12 °C"}
    turns = [{"role": "user", "content": PROMPT}, message, result]
    answer = post(emulator, tools=[WEATHER], stream=False, messages=turns).json()["choices"][0]
    assert answer["finish_reason"] == "stop"
    assert answer["message"]["content"].startswith("get_weather returned rain, 12 °C.")


def test_without_parallel_calls_the_next_tool_comes_after_the_first_result(emulator: Emulator) -> None:
    message = post(emulator, tools=[WEATHER, CLOCK], stream=False).json()["choices"][0]["message"]
    result = {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": "sunny"}
    turns = [{"role": "user", "content": PROMPT}, message, result]
    second = post(emulator, tools=[WEATHER, CLOCK], stream=False, messages=turns).json()["choices"][0]
    assert [c["function"]["name"] for c in second["message"]["tool_calls"]] == ["get_time"]


def test_thinking_model_reasons_before_its_call(emulator: Emulator) -> None:
    data = chunks(post(emulator, model="qwen3.6-plus", tools=[WEATHER], stream=True))
    deltas = [c["choices"][0].get("delta", {}) for c in data if c["choices"]]
    assert deltas[0]["role"] == "assistant" and deltas[0]["reasoning_content"]
    kinds = [
        "r" if d.get("reasoning_content") else "t"
        for d in deltas
        if d.get("reasoning_content") or d.get("tool_calls")
    ]
    assert kinds == sorted(kinds)  # all reasoning, then the calls


def test_n_is_forced_to_one_with_tools(emulator: Emulator) -> None:
    body = post(emulator, tools=[WEATHER], stream=False, n=3).json()
    assert len(body["choices"]) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"tools": [{"type": "function", "function": {"name": "search"}}]},
            "Tool names are not allowed to be [search]",
        ),
        ({"model": "qwq-plus", "stream": True, "tools": [WEATHER]}, "The tool call is not supported."),
        (
            {"tools": [WEATHER], "tool_choice": "sometimes"},
            'tool_choice is one of the strings that should be ["none", "auto"]',
        ),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            'no function named "nope"',
        ),
        (
            {"model": "qwen3.6-plus", "tools": [WEATHER], "tool_choice": "required"},
            "does not support being set to required or object in thinking mode",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "tool", "tool_call_id": "call_1", "content": "x"},
                ]
            },
            'Messages with role "tool" must be a response to a preceding message with "tool_calls"',
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {
                        "role": "assistant",
                        "content": "",
                        "tool_calls": [
                            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                        ],
                    },
                    {"role": "user", "content": "and?"},
                ]
            },
            "The following tool_call_ids did not have response messages: call_1",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {
                        "role": "assistant",
                        "content": "",
                        "tool_calls": [
                            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                        ],
                    },
                    {"role": "tool", "tool_call_id": "call_2", "content": "x"},
                ]
            },
            "Invalid tool_call_id 'call_2'",
        ),
    ],
)
def test_refusals_in_the_services_words_and_shape(
    emulator: Emulator, body: dict[str, Any], message: str
) -> None:
    resp = post(emulator, **{"stream": False, **body})
    assert resp.status_code == 400
    error = resp.json()["error"] if not body.get("stream") else json.loads(resp.text[6:])["error"]
    assert message in error["message"]
    assert error["code"] == "invalid_parameter_error" and error["type"] == "invalid_request_error"


def test_queued_calls_are_sent_as_they_are(emulator: Emulator) -> None:
    emulator.queue_tool_calls(("get_weather", '{"city": '))
    call = post(emulator, tools=[WEATHER], stream=False).json()["choices"][0]["message"]["tool_calls"][0]
    assert call["function"] == {"arguments": '{"city": ', "name": "get_weather"}


def test_quoted_comparisons_fill_filters_and_quoted_words_the_other_strings(emulator: Emulator) -> None:
    table = {
        "type": "function",
        "function": {
            "name": "sales_aggregate",
            "description": "The total of a column of the sales table",
            "parameters": {
                "type": "object",
                "properties": {
                    "column": {"type": "string"},
                    "where": {"type": "string", "default": ""},
                    "by": {"type": "string"},
                },
                "required": ["column"],
            },
        },
    }
    ask = "The total `amount` of sales by `region` where `amount > 100`"
    body = post(emulator, tools=[table], stream=False, messages=[{"role": "user", "content": ask}]).json()
    call = body["choices"][0]["message"]["tool_calls"][0]
    assert json.loads(call["function"]["arguments"]) == {
        "column": "amount",
        "where": "amount > 100",
        "by": "region",
    }


def test_after_a_result_only_a_tool_the_prompt_names_anew_is_called(emulator: Emulator) -> None:
    count = {"type": "function", "function": {"name": "sales_count", "description": "Count the sales rows"}}
    head = {"type": "function", "function": {"name": "sales_head", "description": "The first sales rows"}}
    turns: list[dict[str, Any]] = [{"role": "user", "content": "Count the sales rows"}]
    first = post(emulator, tools=[count, head], stream=False, messages=turns).json()["choices"][0]["message"]
    assert [c["function"]["name"] for c in first["tool_calls"]] == ["sales_count"]
    turns += [first, {"role": "tool", "tool_call_id": first["tool_calls"][0]["id"], "content": "4"}]
    second = post(emulator, tools=[count, head], stream=False, messages=turns).json()["choices"][0]
    assert second["finish_reason"] == "stop"  # "sales" was answered; "head" was never asked for
