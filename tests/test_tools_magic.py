"""``%%qwen --tools``: notebook functions by name, each call drawn live, then the answer; the
terminal's plain lines; mistakes as one-line UsageErrors; conversations after a tool loop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from IPython.core.error import UsageError

from qwen_magics.emulator import Emulator

from .conftest import TEST_KEY
from .kernels import kernel_env
from .outputs import magic, rendered, rendered_markdown

DEFS = '''
def get_weather(city: str) -> str:
    """Get the current weather for a city."""
    return f"rain in {city}, 12 C"

def get_time(zone: str) -> str:
    """The current time in a timezone."""
    return "10:00"
'''
PROMPT = "What's the weather in Paris and the time in Tokyo?"


@pytest.fixture
def tools_ip(ip: Any) -> Any:
    ip.run_cell(DEFS)
    return ip


def test_each_call_is_shown_live_then_the_answer_and_a_footer_with_steps(
    tools_ip: Any, qwen_env: Emulator
) -> None:
    cap = magic(tools_ip, "-m qwen-plus --tools get_weather,get_time", PROMPT)
    shown = rendered(cap.outputs)
    text = rendered_markdown(cap.outputs)
    first = next(i for i, b in enumerate(shown) if "get_weather" in b.get("text/markdown", ""))
    second = next(i for i, b in enumerate(shown) if "get_time(zone=" in b.get("text/markdown", ""))
    answer = next(
        i for i, b in enumerate(shown) if "get_weather returned rain in Paris" in b.get("text/markdown", "")
    )
    assert first < second < answer  # in the order they happened, each in an output of its own
    assert "<code>get_weather(city=&#x27;Paris&#x27;)</code> → rain in Paris, 12 C" in text
    assert "3 steps, 2 tool calls" in text
    response = tools_ip.user_ns["_qwen"]
    assert [c.name for c in response.tool_calls] == ["get_weather", "get_time"]
    # while a call ran, the live frame said so
    assert any("calling get_weather" in o.data.get("text/markdown", "") for o in cap.outputs)


def test_a_long_result_is_shortened_with_all_of_it_one_click_away(tools_ip: Any, qwen_env: Emulator) -> None:
    tools_ip.run_cell(
        'def get_weather(city: str) -> str:\n    """Get the weather for a city."""\n    return "x" * 500'
    )
    text = rendered_markdown(magic(tools_ip, "-m qwen-plus --tools get_weather", "Weather in Oslo?").outputs)
    assert "<details class='qwen-tool'>" in text and "x" * 500 in text and "x" * 159 + "…" in text


def test_a_list_of_tools_by_name_and_the_dataframe_tools(tools_ip: Any, qwen_env: Emulator) -> None:
    import qwen_magics as qm

    tools_ip.user_ns["sales_tools"] = qm.tools.dataframe(
        pd.DataFrame({"region": ["East", "West"], "amount": [1, 2]}), name="sales"
    )
    qwen_env.queue_tool_calls(("sales_count", '{"where": "region == \'East\'"}'))
    magic(tools_ip, "-m qwen-plus --tools sales_tools", "How many sales rows are East?")
    calls = tools_ip.user_ns["_qwen"].tool_calls
    assert (calls[0].name, calls[0].result) == ("sales_count", "1")
    assert qwen_env.chat_requests[0].body["tools"][0]["function"]["name"] == "sales_columns"


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("--tools get_wether", "--tools: 'get_wether' is not defined in the notebook"),
        ("--tools PROMPT_TEXT", "--tools: 'PROMPT_TEXT' is not a function"),
        ("--tools ,", "--tools: name the notebook functions"),
        ("--max-steps 3", "--max-steps goes with --tools"),
        ("--confirm", "--confirm goes with --tools"),
        ("--tools get_weather --json", "--tools works with plain answers"),
        ("--tools get_weather --panel --confirm", "--confirm works with plain answers"),
        ("--tools get_weather --max-steps 0", "--max-steps: max_steps must be a whole number"),
        ("--tools get_weather -m qwq-plus", "--tools: qwq-plus does not take tools"),
    ],
)
def test_mistakes_are_one_line_usage_errors_and_nothing_is_sent(
    tools_ip: Any, qwen_env: Emulator, line: str, words: str
) -> None:
    tools_ip.user_ns["PROMPT_TEXT"] = "text"
    with pytest.raises(UsageError) as info:
        magic(tools_ip, line, "Weather in Oslo?")
    assert words in str(info.value) and "\n" not in str(info.value)
    assert qwen_env.chat_requests == []


def test_max_steps_from_the_magic(tools_ip: Any, qwen_env: Emulator) -> None:
    text = rendered_markdown(
        magic(tools_ip, "-m qwen-plus --tools get_weather,get_time --max-steps 1", PROMPT).outputs
    )
    assert "stopped after 1 steps with the model still calling get_weather" in text
    assert len(qwen_env.chat_requests) == 1


def test_a_conversation_continues_after_a_tool_loop(tools_ip: Any, qwen_env: Emulator) -> None:
    magic(tools_ip, "-m qwen-plus --tools get_weather", "Weather in Oslo?")
    magic(tools_ip, "-m qwen-plus -c", "And tomorrow?")
    last = qwen_env.chat_requests[-1].body["messages"]
    assert [m["role"] for m in last] == ["user", "assistant", "user"]
    assert last[1]["content"].startswith("get_weather returned rain in Oslo, 12 C.")


def test_confirm_asks_before_each_call_and_a_no_goes_back_to_the_model(
    tools_ip: Any, qwen_env: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or "n")
    magic(tools_ip, "-m qwen-plus --tools get_weather --confirm", "Weather in Oslo?")
    assert asked == ["Run get_weather(city='Oslo')? [y/N] "]
    (call,) = tools_ip.user_ns["_qwen"].tool_calls
    assert call.error == "the user declined to run this call"


def test_terminal_ipython_prints_a_plain_line_per_call(qwen_env: Emulator, tmp_path: Path) -> None:
    code = (
        "get_ipython().run_line_magic('load_ext', 'qwen_magics')\n"
        + DEFS
        + f"get_ipython().run_cell_magic('qwen', '-m qwen-plus --tools get_weather,get_time', {PROMPT!r})\n"
    )
    script = tmp_path / "cell.ipy"
    script.write_text(code)
    out = subprocess.run(
        [sys.executable, "-m", "IPython", "--no-banner", str(script)],
        capture_output=True,
        text=True,
        check=True,
        env=kernel_env(qwen_env, IPYTHONDIR=str(tmp_path / "ipython")),
    )
    assert "[tool] get_weather(city='Paris') → rain in Paris, 12 C · " in out.stdout
    assert "[tool] get_time(zone='Tokyo') → 10:00 · " in out.stdout
    assert "get_weather returned rain in Paris, 12 C." in out.stdout
    assert "3 steps, 2 tool calls" in out.stdout
    assert "<code>" not in out.stdout and TEST_KEY not in out.stdout + out.stderr


def test_ctrl_c_in_a_call_keeps_the_trace_and_the_cell_says_interrupted(
    tools_ip: Any, qwen_env: Emulator
) -> None:
    tools_ip.run_cell(
        "def get_time(zone: str) -> str:\n"
        '    """The current time in a timezone."""\n'
        "    raise KeyboardInterrupt"
    )
    text = rendered_markdown(magic(tools_ip, "-m qwen-plus --tools get_weather,get_time", PROMPT).outputs)
    response = tools_ip.user_ns["_qwen"]
    assert [(c.name, c.error) for c in response.tool_calls] == [
        ("get_weather", None),
        ("get_time", "interrupted"),
    ]
    assert "rain in Paris, 12 C" in text and "interrupted" in text
    assert len(qwen_env.chat_requests) == 2


def test_raw_lists_the_calls_as_plain_lines(tools_ip: Any, qwen_env: Emulator) -> None:
    cap = magic(tools_ip, "-m qwen-plus --raw --tools get_weather", "Weather in Oslo?")
    plain = rendered(cap.outputs)[-1]["text/plain"]
    assert plain.startswith("[tool] get_weather(city='Oslo') → rain in Oslo, 12 C · ")
    assert "\nget_weather returned rain in Oslo, 12 C." in plain


def test_confirm_yes_at_the_prompt_runs_the_call(
    tools_ip: Any, qwen_env: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    magic(tools_ip, "-m qwen-plus --tools get_weather --confirm", "Weather in Oslo?")
    (call,) = tools_ip.user_ns["_qwen"].tool_calls
    assert call.result == "rain in Oslo, 12 C" and call.error is None


def test_confirm_in_a_script_reads_the_answer_from_stdin(qwen_env: Emulator, tmp_path: Path) -> None:
    script = tmp_path / "ask.py"
    script.write_text(
        "import qwen_magics as qm\n"
        + DEFS
        + "r = qm.ask('Weather in Oslo?', model='qwen-plus', tools=[get_weather], confirm=True)\n"
        "print('\\n', [(c.name, c.result, c.error) for c in r.complete().tool_calls])\n"
    )
    ran = subprocess.run(
        [sys.executable, str(script)],
        input="n\n",
        capture_output=True,
        text=True,
        check=True,
        env=kernel_env(qwen_env),
    )
    assert "Run get_weather(city='Oslo')? [y/N] " in ran.stdout
    assert "[('get_weather', None, 'the user declined to run this call')]" in ran.stdout
