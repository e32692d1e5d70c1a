"""The official openai SDK, an independent client, reads the emulator as it reads DashScope."""

from __future__ import annotations

import openai
import pytest

from qwen_magics.emulator import Emulator

from .conftest import TEST_KEY


@pytest.fixture
def sdk(emulator: Emulator):  # type: ignore[no-untyped-def]
    client = openai.OpenAI(api_key=TEST_KEY, base_url=emulator.base_url, max_retries=0)
    yield client
    client.close()


MESSAGES = [{"role": "user", "content": "Explain the tides"}]


def test_sdk_streams_reasoning_answer_and_usage(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model="qwen3.6-plus",
        messages=MESSAGES,
        stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True},
    )
    reasoning, answer, usage, finish = [], [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            reasoning.append(getattr(choice.delta, "reasoning_content", None) or "")
            answer.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert "".join(reasoning).startswith("The question is about Explain the tides")
    assert "".join(answer).startswith("You asked: Explain the tides")
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_sdk_extra_body_turns_thinking_off(sdk: openai.OpenAI, emulator: Emulator) -> None:
    stream = sdk.chat.completions.create(
        model="qwen3.6-plus",
        messages=MESSAGES,
        stream=True,  # type: ignore[arg-type]
        extra_body={"enable_thinking": False},
    )
    deltas = [c.choices[0].delta for c in stream if c.choices]
    assert not any(getattr(d, "reasoning_content", None) for d in deltas)
    assert emulator.chat_requests[-1].body["enable_thinking"] is False


def test_sdk_non_stream(sdk: openai.OpenAI) -> None:
    done = sdk.chat.completions.create(model="qwen-plus", messages=MESSAGES, temperature=0.2)  # type: ignore[arg-type]
    assert done.choices[0].message.content.startswith("You asked")  # type: ignore[union-attr]
    assert done.id.startswith("chatcmpl-") and done.usage is not None


def test_sdk_sees_dashscope_errors(sdk: openai.OpenAI, emulator: Emulator) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(model="qwen-plus", messages=MESSAGES, top_p=3)  # type: ignore[arg-type]
    assert "Range of top_p should be (0.0, 1.0]" in str(info.value)
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="no-such-model", messages=MESSAGES)  # type: ignore[arg-type]
    emulator.add_fault("status", status=429)
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(model="qwen-plus", messages=MESSAGES)  # type: ignore[arg-type]
    bad = openai.OpenAI(api_key="sk-wrong", base_url=emulator.base_url, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="qwen-plus", messages=MESSAGES)  # type: ignore[arg-type]
    bad.close()


def test_sdk_lists_models(sdk: openai.OpenAI) -> None:
    assert "qwen3.6-plus" in [m.id for m in sdk.models.list()]
