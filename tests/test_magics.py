"""%%qwen options: what is sent, what is refused, and loading the extension."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from qwen_magics.emulator import Emulator

from .conftest import TEST_KEY
from .kernels import kernel_env


def cell(ip, line: str, body: str = "hello"):  # type: ignore[no-untyped-def]
    with capture_output() as cap:
        ip.run_cell_magic("qwen", line, body)
    return cap


# -- what is sent ----------------------------------------------------------------------------
def test_every_option_is_sent_under_its_wire_name(ip, qwen_env: Emulator) -> None:
    cell(
        ip,
        '-m qwen-plus -s "Be terse." -t 0.3 -p 0.9 --top-k 20 --presence-penalty 0.5 --thinking '
        "--budget 100 --max-tokens 50 --seed 7 --stop END --stop 'two words'",
        "Say hi",
    )
    (request,) = qwen_env.chat_requests
    assert request.params == {
        "model": "qwen-plus",
        "temperature": 0.3,
        "top_p": 0.9,
        "top_k": 20,
        "presence_penalty": 0.5,
        "enable_thinking": True,
        "thinking_budget": 100,
        "max_tokens": 50,
        "seed": 7,
        "stop": ["END", "two words"],
    }
    assert request.body["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Say hi"},
    ]


def test_options_left_out_are_not_sent(ip, qwen_env: Emulator) -> None:
    cell(ip, "", "just ask")
    (request,) = qwen_env.chat_requests
    assert request.params == {"model": "qwen3.6-plus"}
    assert request.body["messages"] == [{"role": "user", "content": "just ask"}]


def test_no_thinking_sends_enable_thinking_false(ip, qwen_env: Emulator) -> None:
    cell(ip, "--no-thinking")
    assert qwen_env.chat_requests[0].params["enable_thinking"] is False


def test_line_magic_takes_the_rest_of_the_line_as_written(ip, qwen_env: Emulator) -> None:
    with capture_output():
        ip.run_line_magic("qwen", "-t 0.2 --no-thinking what's 2+2? -t is not an option here")
    request = qwen_env.chat_requests[0]
    assert request.params["temperature"] == 0.2
    assert request.body["messages"][-1]["content"] == "what's 2+2? -t is not an option here"


# -- what is refused -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "option", "detail"),
    [
        ("-t 2", "-t/--temperature", "[0, 2)"),
        ("-t -0.1", "-t/--temperature", "[0, 2)"),
        ("-p 0", "-p/--top-p", "(0, 1]"),
        ("-p 1.5", "-p/--top-p", "(0, 1]"),
        ("--top-k -1", "--top-k", "[0, ∞)"),
        ("--presence-penalty 3", "--presence-penalty", "[-2, 2]"),
        ("--seed -1", "--seed", "2^31-1"),
        ("--max-tokens 0", "--max-tokens", "[1, 65536]"),
        ("--budget 0", "--budget", "(0, 81920]"),
        ("-m qwq-plus --no-thinking", "--thinking/--no-thinking", "always thinks"),
        ("-m qwen3-max --thinking", "--thinking/--no-thinking", "no thinking mode"),
        ("-m qwen-plus --no-thinking --budget 10", "--budget", "turn thinking on"),
        ("-m qwq-plus --no-stream", "--no-stream", "only answers streaming"),
        ("-t warm", "-t/--temperature", "invalid float value: 'warm'"),
        ("--seed 1.5", "--seed", "invalid int value"),
        ("-o 2x", "-o/--out", "not a valid variable name"),
        ("--unknown", "unrecognized arguments: --unknown", ""),
    ],
)
def test_bad_value_is_a_one_line_usage_error_and_nothing_is_sent(
    ip, qwen_env: Emulator, line: str, option: str, detail: str
) -> None:
    with capture_output() as cap, pytest.raises(UsageError) as err:
        ip.run_cell_magic("qwen", line, "hello")
    message = str(err.value)
    assert option in message and detail in message
    assert "\n" not in message
    assert qwen_env.requests == []
    assert cap.outputs == []  # not even the waiting placeholder


def test_usage_error_shows_no_traceback_in_the_shell(ip, qwen_env: Emulator) -> None:
    with capture_output() as cap:
        ip.run_cell("%%qwen -t 5\nhello")
    assert "UsageError: -t/--temperature: temperature must be in [0, 2)" in cap.stderr
    assert "Traceback" not in cap.stdout + cap.stderr
    assert qwen_env.requests == []


def test_empty_cell_asks_for_a_prompt(ip, qwen_env: Emulator) -> None:
    with pytest.raises(UsageError, match="the prompt is empty"):
        ip.run_cell_magic("qwen", "-t 0.5", "\n  \n")
    assert qwen_env.requests == []


def test_mixed_modes_are_refused(ip, qwen_env: Emulator) -> None:
    with pytest.raises(UsageError, match="choose one of"):
        ip.run_cell_magic("qwen", "--panel --json", "hello")
    with pytest.raises(UsageError, match="-c/--continue works with plain answers"):
        ip.run_cell_magic("qwen", "-c --json", "hello")
    assert qwen_env.requests == []


def test_help_is_shown_by_the_question_mark(ip) -> None:
    with capture_output() as cap:
        ip.run_cell("%%qwen?")
    for option in (
        "--temperature",
        "--top-p",
        "--no-thinking",
        "--budget",
        "--stop",
        "--continue",
        "--raw",
        "--no-stream",
        "--schema",
        "--compare",
    ):
        assert option in cap.stdout


# -- loading ---------------------------------------------------------------------------------
def test_loading_registers_both_magics_and_changes_no_shell_state(shell) -> None:
    cleanup = list(shell.input_transformers_cleanup)  # gains the %qwen question hook, for %qwen lines
    before = (
        sys.excepthook,
        shell.CustomTB,
        shell.custom_exceptions,
        list(warnings.filters),
        list(shell.input_transformers_post),
        dict(shell.display_formatter.formatters),
    )
    shell.run_line_magic("load_ext", "qwen_magics")
    after = (
        sys.excepthook,
        shell.CustomTB,
        shell.custom_exceptions,
        list(warnings.filters),
        list(shell.input_transformers_post),
        dict(shell.display_formatter.formatters),
    )
    assert before == after
    assert "qwen" in shell.magics_manager.magics["cell"]
    assert "qwen" in shell.magics_manager.magics["line"]
    shell.run_line_magic("unload_ext", "qwen_magics")
    assert "qwen" not in shell.magics_manager.magics["cell"]
    assert shell.input_transformers_cleanup == cleanup
    assert not any(type(c).__name__ == "QwenMagics" for c in shell.configurables)


def test_loading_imports_nothing_heavy(qwen_env: Emulator) -> None:
    code = textwrap.dedent("""
        import sys
        from IPython.core.interactiveshell import InteractiveShell
        ip = InteractiveShell.instance()
        ip.run_line_magic("load_ext", "qwen_magics")
        assert "qwen" in ip.magics_manager.magics["cell"]
        heavy = ("pandas", "ipywidgets", "numpy", "pydantic", "json_repair", "openai", "tqdm", "httpx",
                 "qwen_magics.emulator", "qwen_magics.structured", "qwen_magics.comparison.compare",
                 "qwen_magics.widgets.panel")
        print([m for m in heavy if m in sys.modules])
    """)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ.copy()
    )
    assert out.stdout.strip() == "[]"


def test_extension_loads_from_the_ipython_config_file(qwen_env: Emulator, tmp_path: Path) -> None:
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "ipython_config.py").write_text('c.InteractiveShellApp.extensions = ["qwen_magics"]\n')
    code = "print('qwen' in get_ipython().magics_manager.magics['cell'])"
    out = subprocess.run(
        [sys.executable, "-m", "IPython", f"--profile-dir={profile}", "--no-banner", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=kernel_env(qwen_env, IPYTHONDIR=str(tmp_path / "ipython")),
    )
    assert out.stdout.strip().splitlines()[-1] == "True"
    assert "offline" not in out.stdout  # a key is set, so no simulator


def test_terminal_ipython_streams_plain_text(qwen_env: Emulator, tmp_path: Path) -> None:
    code = (
        "get_ipython().run_line_magic('load_ext', 'qwen_magics'); "
        "get_ipython().run_cell_magic('qwen', '--no-thinking', 'terminal question')"
    )
    out = subprocess.run(
        [sys.executable, "-m", "IPython", "--no-banner", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=kernel_env(qwen_env, IPYTHONDIR=str(tmp_path / "ipython")),
    )
    assert "You asked: terminal question. This is the emulator's answer." in out.stdout
    assert "[qwen3.6-plus · " in out.stdout and "tok/s" in out.stdout
    assert "<sub>" not in out.stdout and "text/markdown" not in out.stdout
    assert "waiting" not in out.stdout
    assert TEST_KEY not in out.stdout + out.stderr


def test_loading_without_a_key_starts_the_offline_simulator_once(clean_env, monkeypatch) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    from qwen_magics import simulator as offline

    monkeypatch.setenv("QWEN_OFFLINE_TOKENS_PER_SECOND", "0")  # as fast as it can
    ip = InteractiveShell.instance()
    ip.user_ns.pop("_qwen", None)
    try:
        with capture_output() as cap:
            ip.run_line_magic("load_ext", "qwen_magics")
            ip.run_line_magic("unload_ext", "qwen_magics")
            ip.run_line_magic("load_ext", "qwen_magics")
        assert cap.stdout.count(offline.NOTICE) == 1
        assert offline.is_active()
        with capture_output() as cap:
            ip.run_cell_magic("qwen", "--max-tokens 30 --no-thinking", "Tell me about the sea.")
        response = ip.user_ns["_qwen"]
        assert response.offline and response.text
        footer = cap.outputs[-1].data["text/markdown"].rsplit("<sub>", 1)[1]
        assert "offline" in footer and "$" not in footer
        shown = "".join(v for o in cap.outputs for v in o.data.values())
        assert "sk-offline" not in shown
    finally:
        if "qwen_magics" in ip.extension_manager.loaded:
            ip.run_line_magic("unload_ext", "qwen_magics")
    assert not offline.is_active()  # unloading stops the simulator it started
