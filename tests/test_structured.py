"""ask_json against the real emulator: JSON modes per model, extraction paths, re-asks."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import httpx
import pydantic
import pytest

from qwen_magics import ask
from qwen_magics.emulator import Emulator
from qwen_magics.emulator.answers import split_tokens
from qwen_magics.errors import BadRequestError, ParameterError, StructuredOutputError
from qwen_magics.structured.ask import ask_json

from .conftest import TEST_KEY

PLANETS = {
    "planets": [
        {"name": "Mercury", "order": 1, "moons": 0, "facts": {"type": "rocky"}},
        {"name": "Venus", "order": 2, "moons": 0, "facts": {"type": "rocky"}},
        {"name": "Jupiter", "order": 5, "moons": 95, "facts": {"type": "gas giant"}},
    ]
}


def system_text(body: dict) -> str:
    return "\n".join(m["content"] for m in body["messages"] if m["role"] == "system")


def test_json_mode_turns_thinking_off_on_a_model_that_thinks_by_default(qwen_env: Emulator) -> None:
    r = ask_json("list three planets as JSON")  # qwen3.6-plus, the default model, thinks by default
    body = qwen_env.chat_requests[-1].body
    assert body["model"] == "qwen3.6-plus"
    assert body["enable_thinking"] is False
    assert body["response_format"] == {"type": "json_object"}
    assert "json" in json.dumps(body["messages"]).lower()
    assert r.data == {"answer": "list three planets as JSON"}
    assert r.json_path == "json"
    assert r.json_attempts == 1
    assert "thinking off for JSON mode" in r.notes
    assert "thinking off for JSON mode" in r.footer()


def test_json_instruction_is_added_when_no_message_mentions_json(qwen_env: Emulator) -> None:
    # without the word "json" DashScope refuses JSON mode
    with pytest.raises(BadRequestError, match="json"):
        ask("list three planets", response_format={"type": "json_object"}, thinking=False)
    r = ask_json("list three planets")
    body = qwen_env.chat_requests[-1].body
    assert "JSON" in system_text(body)
    assert body["messages"][-1] == {"role": "user", "content": "list three planets"}
    assert isinstance(r.data, dict)


def test_no_instruction_when_the_prompt_mentions_json(qwen_env: Emulator) -> None:
    ask_json("Give me a json object about Mars")
    assert [m["role"] for m in qwen_env.chat_requests[-1].body["messages"]] == ["user"]


def test_the_users_system_message_is_kept_and_extended(qwen_env: Emulator) -> None:
    ask_json("list three planets", system="You are terse.")
    sent = system_text(qwen_env.chat_requests[-1].body)
    assert sent.startswith("You are terse.")
    assert "JSON" in sent


def test_thinking_forced_on_uses_plain_text_and_extraction(qwen_env: Emulator) -> None:
    qwen_env.queue_reply(
        'Here they are:\n```json\n{"name": "Mars", "moons": 2}\n```\nAnything else?',
        reasoning="Mars has two moons.",
    )
    r = ask_json("Mars as JSON", thinking=True)
    body = qwen_env.chat_requests[-1].body
    assert "response_format" not in body
    assert body["enable_thinking"] is True
    assert r.data == {"name": "Mars", "moons": 2}
    assert r.json_path == "fenced"
    assert r.reasoning == "Mars has two moons."
    assert any("thinking on" in n for n in r.notes)


@pytest.mark.parametrize("schema", [None, "name, moons int"])
def test_a_model_that_always_thinks_is_refused_before_sending(qwen_env: Emulator, schema: str | None) -> None:
    # JSON mode is refused while thinking, and qwq-plus cannot stop thinking: say what works instead
    with pytest.raises(ParameterError, match="qwq-plus always thinks") as err:
        ask_json("Mars as JSON", model="qwq-plus", schema=schema)
    assert err.value.param == "model"
    assert "use a model that can turn thinking off (qwen3" in str(err.value)
    if schema is not None:  # those with a JSON Schema mode first
        assert "(qwen3.5-flash, qwen-plus, " in str(err.value)
    assert qwen_env.chat_requests == []


def test_json_schema_mode_where_the_model_supports_it(qwen_env: Emulator) -> None:
    schema = {
        "type": "object",
        "title": "Planet",
        "properties": {"name": {"type": "string"}, "moons": {"type": "integer"}},
        "required": ["name", "moons"],
    }
    r = ask_json("Describe Mars", schema=schema, model="qwen-plus")
    body = qwen_env.chat_requests[-1].body
    rf = body["response_format"]
    assert rf["type"] == "json_schema"
    assert rf["json_schema"]["name"] == "Planet"
    assert rf["json_schema"]["strict"] is True
    assert rf["json_schema"]["schema"]["properties"] == schema["properties"]
    assert r.data == {"name": "name text", "moons": 1}  # the emulator's answer follows the schema
    assert r.json_path == "json"


def test_schema_goes_in_the_system_message_where_json_schema_is_unsupported(qwen_env: Emulator) -> None:
    qwen_env.queue_reply('{"name": "Mars", "moons": 2}')
    r = ask_json("Describe Mars", schema="name, moons int")  # qwen3.6-plus: no JSON Schema mode
    body = qwen_env.chat_requests[-1].body
    assert body["response_format"] == {"type": "json_object"}
    assert body["enable_thinking"] is False
    sent = system_text(body)
    assert '"moons": {"type": "integer"}' in sent
    assert r.data == {"name": "Mars", "moons": 2}


def test_short_form_with_multi_builds_a_list_schema(qwen_env: Emulator) -> None:
    r = ask_json(
        "list three planets", schema="name, order int, moons int, facts.type", multi=True, model="qwen-plus"
    )
    wire = qwen_env.chat_requests[-1].body["response_format"]["json_schema"]["schema"]
    record = wire["properties"]["items"]["items"]
    assert record["properties"]["facts"]["properties"]["type"] == {"type": "string"}
    assert record["required"] == ["name", "order", "moons", "facts"]
    assert r.data == [{"name": "name text", "order": 1, "moons": 1, "facts": {"type": "type text"}}] * 2


def test_pydantic_model_is_validated_and_reasked(qwen_env: Emulator) -> None:
    class Planet(pydantic.BaseModel):
        name: str
        moons: int

    qwen_env.queue_reply('{"name": "Mars", "moons": "a couple"}')
    r = ask_json("Describe Mars", schema=Planet, model="qwen-plus")
    first, second = qwen_env.chat_requests
    assert first.body["response_format"]["json_schema"]["name"] == "Planet"
    assert "moons" in second.body["messages"][-1]["content"]
    assert r.data == {"name": "name text", "moons": 1}
    assert r.json_attempts == 2


def test_fenced_answer_is_extracted(qwen_env: Emulator) -> None:
    qwen_env.queue_reply(f"Sure! Here is the data:\n\n```json\n{json.dumps(PLANETS, indent=2)}\n```\n")
    r = ask_json("list three planets as JSON")
    assert r.data == PLANETS
    assert r.json_path == "fenced"
    assert "JSON from a fenced block" in r.notes


def test_almost_json_is_repaired(qwen_env: Emulator) -> None:
    qwen_env.queue_reply("{'name': 'Mars', moons: 2, 'tags': ['red', 'dusty',],}")
    r = ask_json("Mars as JSON")
    assert r.data == {"name": "Mars", "moons": 2, "tags": ["red", "dusty"]}
    assert r.json_path == "repaired"


def test_reask_after_a_validation_error_counts_every_token(qwen_env: Emulator) -> None:
    bad = '{"name": "Mars", "moons": "two"}'
    qwen_env.queue_reply(bad)
    r = ask_json("Describe Mars", schema="name, moons int", model="qwen-plus")
    first, second = qwen_env.chat_requests
    assert second.body["messages"][-2] == {"role": "assistant", "content": bad}
    correction = second.body["messages"][-1]
    assert correction["role"] == "user" and "moons: expected integer" in correction["content"]
    assert r.data == {"name": "name text", "moons": 1}
    assert r.json_attempts == 2
    assert any(n.startswith("2 attempts") for n in r.notes)

    # the same two bodies, asked again without streaming, say what each attempt cost
    qwen_env.queue_reply(bad)
    spent = [0, 0]
    with httpx.Client() as http:
        for record in (first, second):
            body = {**record.body, "stream": False}
            body.pop("stream_options")
            usage = http.post(
                f"{qwen_env.base_url}/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {TEST_KEY}"},
            ).json()["usage"]
            spent[0] += usage["prompt_tokens"]
            spent[1] += usage["completion_tokens"]
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == tuple(spent)
    assert r.usage.total_tokens == sum(spent)


def test_aask_json_reasks_like_ask_json_on_a_shared_client(qwen_env: Emulator) -> None:
    import asyncio

    from qwen_magics import AsyncClient, aask_json

    qwen_env.queue_reply('{"name": "Mars", "moons": "two"}')

    async def main() -> tuple[Any, Any]:
        async with AsyncClient() as client:  # the queued reply goes to the first request: one at a time
            mars = await aask_json(
                "Describe Mars", schema="name, moons int", model="qwen-plus", client=client
            )
        return mars, await aask_json("list three planets as JSON")  # a client of its own

    mars, planets = asyncio.run(main())
    assert mars.data == {"name": "name text", "moons": 1} and mars.json_attempts == 2
    assert planets.data == {"answer": "list three planets as JSON"} and planets.json_attempts == 1
    assert "thinking off for JSON mode" in planets.notes
    assert len(qwen_env.chat_requests) == 3


def test_retries_exhausted_raise_with_the_text_kept(qwen_env: Emulator) -> None:
    for _ in range(3):
        qwen_env.queue_reply("I would rather not answer in that format.")
    with pytest.raises(StructuredOutputError, match="after 3 attempts") as info:
        ask_json("Mars as JSON", retries=2)
    assert info.value.text == "I would rather not answer in that format."
    assert info.value.attempts == 3
    assert len(qwen_env.chat_requests) == 3


def test_retries_zero_asks_once(qwen_env: Emulator) -> None:
    qwen_env.queue_reply("no JSON here")
    with pytest.raises(StructuredOutputError, match="after 1 attempt:"):
        ask_json("Mars as JSON", retries=0)
    assert len(qwen_env.chat_requests) == 1


def test_a_broken_stream_is_asked_again_unchanged(qwen_env: Emulator) -> None:
    qwen_env.add_fault("cut", after=2)
    r = ask_json("Mars as JSON")
    first, second = qwen_env.chat_requests
    assert first.fault == "cut"
    assert second.body == first.body
    assert r.data == {"answer": "Mars as JSON"}
    assert r.json_attempts == 2


def test_an_answer_cut_at_max_tokens_is_repaired_and_says_so(qwen_env: Emulator) -> None:
    text = json.dumps(PLANETS)
    qwen_env.queue_reply(text)
    r = ask_json("list three planets as JSON", max_tokens=len(split_tokens(text)) - 8)
    assert r.finish_reason == "length"
    assert r.json_path == "repaired"
    assert r.data["planets"][:2] == PLANETS["planets"][:2]
    assert r.truncated
    limit = len(split_tokens(text)) - 8
    assert r.footer().count(f"stopped at max_tokens ({limit})") == 1  # said once, by the footer


def test_response_format_cannot_be_passed(qwen_env: Emulator) -> None:
    with pytest.raises(ParameterError, match="response_format"):
        ask_json("Mars as JSON", response_format={"type": "json_object"})
    assert qwen_env.chat_requests == []


def test_three_planets_become_a_three_row_dataframe(clean_env: None) -> None:
    from qwen_magics import to_dataframe

    with Emulator(generator="lm", seed=1) as emu:
        r = ask_json("list three planets as JSON", base_url=emu.base_url, api_key=TEST_KEY)
        assert emu.chat_requests[-1].body["enable_thinking"] is False
    frame = to_dataframe(r)
    assert len(frame) == 3
    assert "name" in frame.columns


def test_multi_without_a_schema_asks_for_items_and_returns_the_records(qwen_env: Emulator) -> None:
    qwen_env.queue_reply(json.dumps(PLANETS))
    r = ask_json("list three planets as JSON", multi=True)
    assert '{"items": [...]}' in system_text(qwen_env.chat_requests[-1].body)
    assert r.data == PLANETS["planets"]


def test_structured_output_loads_pandas_pydantic_and_json_repair_only_when_used() -> None:
    code = (
        "import sys, qwen_magics; qwen_magics.ask_json; qwen_magics.apply; qwen_magics.to_dataframe; "
        "print([m for m in ('pandas', 'pydantic', 'json_repair', 'tqdm') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
