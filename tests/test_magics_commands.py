"""%qwen line commands and conversations: config, models, help, history, reset, -c."""

from __future__ import annotations

import socket

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from qwen_magics import config
from qwen_magics.api.render import DOLLAR
from qwen_magics.emulator import Emulator

from .conftest import TEST_KEY


def line(ip, text: str):  # type: ignore[no-untyped-def]
    with capture_output() as cap:
        ip.run_line_magic("qwen", text)
    return cap


def cell(ip, options: str, body: str):  # type: ignore[no-untyped-def]
    with capture_output() as cap:
        ip.run_cell_magic("qwen", options, body)
    return cap


# -- conversations ---------------------------------------------------------------------------
def test_continue_sends_earlier_turns_and_the_system_prompt_but_no_reasoning(ip, qwen_env: Emulator) -> None:
    cell(ip, '-s "Be brief." --thinking', "Name a planet")
    first = ip.user_ns["_qwen"]
    assert first.reasoning  # it thought
    cell(ip, "-c --no-thinking", "And another one")
    messages = qwen_env.chat_requests[-1].body["messages"]
    assert messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Name a planet"},
        {"role": "assistant", "content": first.text},
        {"role": "user", "content": "And another one"},
    ]
    assert first.reasoning not in str(messages)


def test_a_cell_without_continue_starts_a_new_conversation(ip, qwen_env: Emulator) -> None:
    cell(ip, '-s "Be brief." --no-thinking', "one")
    cell(ip, "--no-thinking", "two")
    cell(ip, "-c --no-thinking", "three")
    messages = qwen_env.chat_requests[-1].body["messages"]
    assert [m["content"] for m in messages if m["role"] == "user"] == ["two", "three"]
    assert messages[0]["role"] == "user"  # the new conversation had no system prompt


def test_history_shows_the_conversation_and_reset_clears_it(ip, qwen_env: Emulator) -> None:
    cell(ip, '-s "Be brief." --no-thinking', "first question")
    cell(ip, "-c --no-thinking", "second question")
    shown = line(ip, "history").outputs[0].data
    assert "2 turn(s)" in shown["text/plain"]
    for text in (
        "Be brief.",
        "first question",
        "second question",
        "second question. This is the emulator's answer",
    ):
        assert text in shown["text/plain"] and text in shown["text/markdown"]
    cap = line(ip, "reset")
    assert "cleared" in cap.stdout
    assert "No conversation yet" in line(ip, "history").outputs[0].data["text/plain"]
    cell(ip, "-c --no-thinking", "after reset")
    assert qwen_env.chat_requests[-1].body["messages"] == [{"role": "user", "content": "after reset"}]


def test_interrupted_answer_joins_the_conversation_as_far_as_it_got(ip, qwen_env: Emulator) -> None:
    qwen_env.add_fault("cut", after=3)
    cell(ip, "--no-thinking", "cut short")
    partial = ip.user_ns["_qwen"].partial_text
    cap = cell(ip, "-c --no-thinking", "go on")
    assert qwen_env.chat_requests[-1].body["messages"][1] == {"role": "assistant", "content": partial}
    assert "-c " not in cap.outputs[-1].data["text/markdown"]  # it continued: nothing to explain
    shown = line(ip, "history").outputs[0].data
    assert f"qwen (partial: stopped before the end): {partial}" in shown["text/plain"]
    assert "**qwen (partial: stopped before the end):**" in shown["text/markdown"]


def footer(cap) -> str:  # type: ignore[no-untyped-def]
    """The footer of the answer, as the plain-text form ends: [model · tokens · … · notes]."""
    return cap.outputs[-1].data["text/plain"].rsplit("\n\n[", 1)[1]


def test_continue_after_a_cell_that_kept_no_answer_says_what_it_continues(ip, qwen_env: Emulator) -> None:
    cell(ip, "--no-thinking", "Name a planet")
    qwen_env.add_fault("status", status=400)  # this cell gets no answer at all
    failed = cell(ip, "--no-thinking", "Name a moon")
    assert failed.outputs[-1].data["text/plain"].startswith("Qwen API error: 400")
    cap = cell(ip, "-c --no-thinking", "And another one")
    user_turns = [m["content"] for m in qwen_env.chat_requests[-1].body["messages"] if m["role"] == "user"]
    assert user_turns == ["Name a planet", "And another one"]
    assert "-c continues from before 'Name a moon': that cell kept no answer to send back" in footer(cap)


def test_continue_with_nothing_to_continue_says_it_starts_a_new_conversation(ip, qwen_env: Emulator) -> None:
    cap = cell(ip, "-c --no-thinking", "Hello again")
    assert qwen_env.chat_requests[-1].body["messages"] == [{"role": "user", "content": "Hello again"}]
    assert "-c has nothing to continue yet: this starts a new conversation" in footer(cap)
    assert ip.user_ns["_qwen"].notes == ["-c has nothing to continue yet: this starts a new conversation"]


# -- config ----------------------------------------------------------------------------------
def test_config_shows_settings_with_the_key_masked(ip, qwen_env: Emulator) -> None:
    shown = line(ip, "config").outputs[0].data
    for form in shown.values():
        assert "sk-…WXYZ" in form and TEST_KEY not in form
        assert qwen_env.base_url in form and "singapore" in form and "qwen3.6-plus" in form


def test_config_sets_defaults_and_cell_options_win(ip, qwen_env: Emulator) -> None:
    cap = line(ip, "config temperature=0.3 model=qwen3.5-flash thinking=false")
    assert "temperature=0.3" in cap.stdout
    cell(ip, "", "with defaults")
    assert qwen_env.chat_requests[-1].params == {
        "model": "qwen3.5-flash",
        "temperature": 0.3,
        "enable_thinking": False,
    }
    cell(ip, "-t 0.9 -m qwen-plus", "explicit wins")
    assert qwen_env.chat_requests[-1].params == {
        "model": "qwen-plus",
        "temperature": 0.9,
        "enable_thinking": False,
    }
    shown = line(ip, "config").outputs[0].data["text/plain"]
    assert "temperature=0.3" in shown and "qwen3.5-flash (from QwenMagics.model)" in shown
    line(ip, "config temperature=none")
    cell(ip, "", "cleared")
    assert "temperature" not in qwen_env.chat_requests[-1].params


def test_config_takes_a_quoted_value_with_spaces(ip, qwen_env: Emulator) -> None:
    cap = line(ip, 'config system="Answer like a ship\'s captain, in one sentence."')
    assert "system=" in cap.stdout
    assert qwen_env.chat_requests == []  # a setting, not a prompt
    cell(ip, "--no-thinking", "the weather at sea")
    assert qwen_env.chat_requests[-1].body["messages"][0] == {
        "role": "system",
        "content": "Answer like a ship's captain, in one sentence.",
    }


def test_config_values_are_read_as_their_settings_type(ip, qwen_env: Emulator) -> None:
    line(ip, "config system=yes model=qwen-plus thinking=on seed=7 top_p=1 max_tokens=default raw=off")
    magics = ip.magics_manager.registry["QwenMagics"]
    assert (magics.system, magics.model, magics.thinking, magics.seed) == ("yes", "qwen-plus", True, 7)
    assert isinstance(magics.top_p, float) and magics.max_tokens is None and magics.raw is False
    line(ip, "config system=123")
    assert magics.system == "123"


def test_traitlets_config_sets_defaults(ip, qwen_env: Emulator) -> None:
    ip.run_line_magic("config", 'QwenMagics.model = "qwen-turbo"')
    ip.run_line_magic("config", "QwenMagics.top_p = 0.5")
    cell(ip, "", "configured")
    assert qwen_env.chat_requests[-1].params == {"model": "qwen-turbo", "top_p": 0.5}


def test_config_refuses_bad_values_keys_and_unknown_names(ip, qwen_env: Emulator) -> None:
    with pytest.raises(UsageError, match=r"temperature must be in \[0, 2\)"):
        line(ip, "config temperature=7")
    with pytest.raises(UsageError, match="DASHSCOPE_API_KEY"):
        line(ip, "config api_key=sk-abcdef0123456789")
    with pytest.raises(UsageError, match="%qwen config colour: unknown setting; known: model, system"):
        line(ip, "config colour=blue")
    with pytest.raises(UsageError, match="unknown region"):
        line(ip, "config region=mars")
    assert "region" not in config.configured()
    line(ip, "config region=virginia")
    assert config.settings().region == "virginia"


def test_default_that_does_not_suit_the_model_names_where_it_was_set(ip, qwen_env: Emulator) -> None:
    line(ip, "config thinking=true")
    with pytest.raises(UsageError, match=r"QwenMagics.thinking .*no thinking mode"):
        ip.run_cell_magic("qwen", "-m qwen3-max", "hello")
    assert qwen_env.requests == []


# -- models and help -------------------------------------------------------------------------
def test_models_lists_the_servers_models_with_table_facts(ip, qwen_env: Emulator) -> None:
    shown = line(ip, "models").outputs[0].data
    assert f"{qwen_env.base_url}/models" in shown["text/plain"]
    md = shown["text/markdown"].replace(DOLLAR, "$")  # a dollar sign, as the page shows it
    assert "| qwq-plus | 131,072 | 8,192 | always thinks | — | $0.80 | $2.40 | $2.40 |" in md
    assert "| qwen-plus | 1,000,000 | 32,768 | thinking off by default | — | $0.40 | $1.20 | $4.00 |" in md
    assert (
        "| qwen3-vl-plus | 262,144 | 32,768 | thinking off by default | yes | $0.20 | $1.60 | $1.60 |" in md
    )
    assert "$0.80" in shown["text/plain"]  # the plain text is plain


def test_models_falls_back_to_the_built_in_table(ip, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("DASHSCOPE_BASE_URL", f"http://127.0.0.1:{port}/v1")
    shown = line(ip, "models").outputs[0].data["text/plain"]
    assert "the built-in table (the server's /models did not answer" in shown
    assert "qwen3-max" in shown and "262,144" in shown


def test_help_lists_commands_and_options(ip) -> None:
    shown = line(ip, "help").outputs[0].data["text/plain"]
    for text in (
        "%qwen config",
        "%qwen models",
        "%qwen history",
        "%qwen reset",
        "%qwen panel",
        "--temperature",
        "--no-thinking",
        "{{",
        "_qwen",
    ):
        assert text in shown
