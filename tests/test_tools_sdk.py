"""The openai SDK, an independent client, reads the emulator's tool-call streams as we do."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from qwen_magics.api.client import Client
from qwen_magics.emulator import Emulator
from qwen_magics.tools import as_tools

from .conftest import TEST_KEY


def get_weather(city: str, unit: str = "celsius") -> str:
    """Get the current weather for a city."""
    return "rain"


def get_time(zone: str) -> str:
    """The current time in a timezone."""
    return "10:00"


TOOLS = [t.spec for t in as_tools([get_weather, get_time])]
MESSAGES: list[Any] = [{"role": "user", "content": "What's the weather in Paris and the time in Tokyo?"}]
CALLS = [
    {
        "id": "call_0123456789abcdef01234567",
        "name": "get_weather",
        "arguments": '{"city": "Paris", "unit": "celsius"}',
    },
    {"id": "call_89abcdef0123456789abcdef", "name": "get_time", "arguments": '{"zone": "Asia/Tokyo"}'},
]


@pytest.fixture
def sdk(emulator: Emulator):  # type: ignore[no-untyped-def]
    client = openai.OpenAI(api_key=TEST_KEY, base_url=emulator.base_url, max_retries=0)
    yield client
    client.close()


def ours(emulator: Emulator, **kw: Any) -> list[tuple[str, str, str]]:
    with Client(api_key=TEST_KEY, base_url=emulator.base_url) as client:
        r = client.ask_once(messages=MESSAGES, model=kw.pop("model", "qwen-plus"), tools=TOOLS, **kw)
        return [(c.id, c.name, c.arguments) for c in r.tool_calls]


@pytest.mark.parametrize("model", ["qwen-plus", "qwen3.6-plus"])
def test_sdk_stream_accumulator_agrees_with_our_parser(
    sdk: openai.OpenAI, emulator: Emulator, model: str
) -> None:
    emulator.queue_tool_calls(*CALLS)
    emulator.queue_tool_calls(*CALLS)
    with sdk.chat.completions.stream(model=model, messages=MESSAGES, tools=TOOLS) as stream:  # type: ignore[arg-type]
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    theirs = [(c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls or []]
    assert theirs == ours(emulator, model=model) == [(c["id"], c["name"], c["arguments"]) for c in CALLS]


def test_sdk_raw_chunks_join_to_the_same_calls(sdk: openai.OpenAI, emulator: Emulator) -> None:
    stream = sdk.chat.completions.create(
        model="qwen-plus",
        messages=MESSAGES,
        tools=TOOLS,
        stream=True,
        parallel_tool_calls=True,  # type: ignore[arg-type]
    )
    joined: dict[int, dict[str, str]] = {}
    for chunk in stream:
        for choice in chunk.choices:
            for frag in choice.delta.tool_calls or []:
                call = joined.setdefault(frag.index, {"id": "", "name": "", "arguments": ""})
                call["id"] = call["id"] or (frag.id or "")
                if frag.function is not None:
                    call["name"] = call["name"] or (frag.function.name or "")
                    call["arguments"] += frag.function.arguments or ""
    found = [(c["name"], json.loads(c["arguments"])) for c in joined.values()]
    assert found == [("get_weather", {"city": "Paris"}), ("get_time", {"zone": "Tokyo"})]
    assert [(n, json.loads(a)) for _, n, a in ours(emulator, parallel_tool_calls=True)] == found


def test_sdk_non_stream_and_a_tool_turn_sent_back(sdk: openai.OpenAI, emulator: Emulator) -> None:
    emulator.queue_tool_calls(CALLS[0])
    first = sdk.chat.completions.create(model="qwen-plus", messages=MESSAGES, tools=TOOLS)  # type: ignore[arg-type]
    message = first.choices[0].message
    assert message.tool_calls and message.tool_calls[0].id == CALLS[0]["id"]
    turns = [
        *MESSAGES,
        message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": CALLS[0]["id"], "content": "rain"},
    ]
    second = sdk.chat.completions.create(model="qwen-plus", messages=turns, tools=TOOLS)  # type: ignore[arg-type]
    (call,) = second.choices[0].message.tool_calls or []  # the weather is known: the clock is next
    assert call.function.name == "get_time" and json.loads(call.function.arguments) == {"zone": "Tokyo"}
