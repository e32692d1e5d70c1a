"""The dialect: how thinking reaches DashScope, vLLM-style servers and strict OpenAI-style ones,
set by the user or found out from the server, and what a refused field's error says to change."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest

import qwen_magics as qm
from qwen_magics import config
from qwen_magics.api import dialect
from qwen_magics.emulator import Emulator
from qwen_magics.errors import BadRequestError, ConfigError, ParameterError

from .conftest import TEST_KEY, stop_in_background
from .outputs import rendered, run


@pytest.fixture
def vllm(clean_env: None) -> Iterator[Emulator]:
    emu = Emulator(generator="simple", api_key=TEST_KEY, dialect="vllm").start()
    yield emu
    stop_in_background(emu)


@pytest.fixture
def strict(clean_env: None) -> Iterator[Emulator]:
    """A server that checks fields against OpenAI's Chat Completions and closes without [DONE]."""
    emu = Emulator(generator="simple", api_key=TEST_KEY, dialect="openai").start()
    yield emu
    stop_in_background(emu)


def thinking_fields(emu: Emulator) -> list[dict[str, object]]:
    keep = ("enable_thinking", "thinking_budget", "chat_template_kwargs")
    return [{k: v for k, v in r.body.items() if k in keep} for r in emu.chat_requests]


# -- which dialect -------------------------------------------------------------------------------
def test_dashscope_urls_and_the_emulator_are_dashscope_and_other_urls_are_found_out(
    clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert config.settings().dialect == "dashscope"  # the region's URL
    beijing = "https://dashscope.aliyuncs.com/compatible-mode/v1"
    assert config.settings(base_url=beijing).dialect == "dashscope"
    assert config.settings(base_url="http://127.0.0.1:9/compatible-mode/v1").dialect == "dashscope"
    assert config.settings(base_url="http://localhost:8000/v1").dialect is None
    monkeypatch.setenv("QWEN_DIALECT", "vllm")
    assert config.settings(base_url="http://localhost:8000/v1").dialect == "vllm"
    config.configure(dialect="openai")  # configuration wins over the environment
    chosen = config.settings(base_url="http://localhost:8000/v1")
    assert (chosen.dialect, chosen.dialect_source) == ("openai", "set by configuration")
    assert config.settings(dialect="dashscope").dialect == "dashscope"  # and an argument over both


def test_an_unknown_dialect_says_which_there_are(clean_env: None) -> None:
    qm.configure(dialect="ollama")
    with pytest.raises(ConfigError, match=r"unknown dialect 'ollama' .*dashscope, vllm, openai"):
        config.settings()


@pytest.mark.parametrize(
    ("owners", "expected"),
    [
        (["vllm"], "vllm"),
        (["sglang"], "vllm"),
        (["llamacpp"], "vllm"),
        (["system", "system"], "dashscope"),
        (["library"], "openai"),  # Ollama
        (["openai", "system"], "openai"),  # LiteLLM and OpenAI itself
        ([], "openai"),
    ],
)
def test_get_models_tells_the_dialect(owners: list[str], expected: str) -> None:
    models = [{"id": f"m{i}", "owned_by": o} for i, o in enumerate(owners)]
    body = json.dumps({"object": "list", "data": models})
    found = dialect.from_models(200, body.encode(), httpx.Headers())
    assert found.name == expected
    assert "GET /models" in found.why


def test_a_server_without_get_models_gets_no_thinking_field() -> None:
    assert dialect.from_models(404, b"Not Found", httpx.Headers()).name == "openai"
    gateway = httpx.Headers({"x-dashscope-call-gateway": "true"})
    assert dialect.from_models(404, b"", gateway).name == "dashscope"


# -- vLLM ----------------------------------------------------------------------------------------
def test_thinking_reaches_vllm_as_chat_template_kwargs(vllm: Emulator) -> None:
    with qm.Client(base_url=vllm.base_url, api_key=TEST_KEY) as client:
        off = client.ask("Why is the sky blue?", model="qwen-plus", thinking=False).complete()
        on = client.ask("Why is the sky blue?", model="qwen-plus", thinking=True).complete()
        found = client.dialect()
    assert off.text and not off.reasoning and not off.incomplete
    assert on.reasoning and on.text
    assert thinking_fields(vllm) == [
        {"chat_template_kwargs": {"enable_thinking": False}},
        {"chat_template_kwargs": {"enable_thinking": True}},
    ]
    assert found.name == "vllm" and "owned_by vllm" in found.why


def test_chat_template_kwargs_of_ones_own_are_kept(vllm: Emulator) -> None:
    with qm.Client(base_url=vllm.base_url, api_key=TEST_KEY) as client:
        client.ask("hi", thinking=False, chat_template_kwargs={"custom": 1}).text  # noqa: B018
    assert thinking_fields(vllm) == [{"chat_template_kwargs": {"custom": 1, "enable_thinking": False}}]


def test_a_budget_is_refused_before_sending_to_vllm(vllm: Emulator) -> None:
    with (
        qm.Client(base_url=vllm.base_url, api_key=TEST_KEY) as client,
        pytest.raises(ParameterError, match=r"budget is a DashScope field .*dialect vllm.*dialect=dashscope"),
    ):
        client.ask("hi", thinking=True, budget=100)
    assert vllm.chat_requests == []


def test_the_async_client_finds_the_dialect_too(vllm: Emulator) -> None:
    async def go() -> str:
        async with qm.AsyncClient(base_url=vllm.base_url, api_key=TEST_KEY) as client:
            response = await client.ask("hi", thinking=False)
            return (await response.acomplete()).text

    assert asyncio.run(go())
    assert thinking_fields(vllm) == [{"chat_template_kwargs": {"enable_thinking": False}}]


def test_compare_over_thinking_on_vllm(vllm: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHSCOPE_BASE_URL", vllm.base_url)
    monkeypatch.setenv("DASHSCOPE_API_KEY", TEST_KEY)
    result = qm.compare("Why is the sky blue?", thinking=[False, True], model="qwen-plus", show=False)
    assert [bool(r.reasoning) for r in result.responses] == [False, True]
    kwargs = sorted(json.dumps(f) for f in thinking_fields(vllm))
    assert kwargs == [
        json.dumps({"chat_template_kwargs": {"enable_thinking": False}}),
        json.dumps({"chat_template_kwargs": {"enable_thinking": True}}),
    ]


# -- strict OpenAI-style servers -------------------------------------------------------------------
def test_thinking_is_refused_before_sending_to_a_server_without_the_switch(strict: Emulator) -> None:
    with qm.Client(base_url=strict.base_url, api_key=TEST_KEY) as client:
        with pytest.raises(ParameterError) as caught:
            client.ask("hi", thinking=False)
        message = str(caught.value)
        assert "\n" not in message and "no thinking switch" in message and "dialect=vllm" in message
        assert strict.chat_requests == []
        plain = client.ask("hi")  # without thinking it asks as usual, complete without [DONE]
        assert plain.text and not plain.incomplete


def test_a_refused_field_names_the_setting_that_changes_it(strict: Emulator) -> None:
    with qm.Client(base_url=strict.base_url, api_key=TEST_KEY, dialect="dashscope") as client:
        with pytest.raises(BadRequestError) as caught:
            client.ask("hi", thinking=False)
        message = str(caught.value)
        assert message.startswith("422: Unexpected fields in the request: {'enable_thinking'}")
        assert "refused enable_thinking" in message and "dialect=vllm or dialect=openai" in message
        assert "%qwen config dialect=" in message
        with pytest.raises(BadRequestError, match="The server refused top_k; leave top_k unset"):
            client.ask("hi", top_k=5)


def test_a_range_error_about_a_known_field_gets_no_refusal_hint(qwen_env: Emulator) -> None:
    words = "max_tokens must be less than or equal to 32768"
    body = {"error": {"message": words, "code": "InvalidParameter"}}
    qwen_env.add_fault("body", status=400, body=json.dumps(body))
    with pytest.raises(BadRequestError) as caught:
        qm.ask("hi", max_tokens=100).text  # noqa: B018
    assert "refused" not in str(caught.value)


# -- in the notebook ------------------------------------------------------------------------------
def test_qwen_config_sets_and_shows_the_dialect(ip, vllm: Emulator) -> None:  # type: ignore[no-untyped-def]
    run(ip, f"%qwen config base_url={vllm.base_url}")
    shown = rendered(run(ip, "%qwen config").outputs)[-1]["text/plain"]
    assert "dialect" in shown and "vllm (found from GET /models: owned_by vllm)" in shown
    assert "chat_template_kwargs" in shown
    run(ip, "%qwen config dialect=openai")
    shown = rendered(run(ip, "%qwen config").outputs)[-1]["text/plain"]
    assert "openai (set by configuration): no thinking field" in shown
    failed = run(ip, "%qwen config dialect=ollama")
    assert "unknown dialect 'ollama'" in failed.stderr + str(failed.outputs)


def test_a_cell_with_thinking_off_on_vllm(ip, vllm: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DASHSCOPE_BASE_URL", vllm.base_url)
    monkeypatch.setenv("DASHSCOPE_API_KEY", TEST_KEY)
    shown = run(ip, "%%qwen --no-thinking -m qwen-plus\nWhy is the sky blue?")
    assert "_qwen" in ip.user_ns, shown.stderr + shown.stdout + str(rendered(shown.outputs))
    assert ip.user_ns["_qwen"].text and not ip.user_ns["_qwen"].reasoning
    assert thinking_fields(vllm) == [{"chat_template_kwargs": {"enable_thinking": False}}]
