"""What a ``%qwen`` line is, typed into a real shell: a question (question mark included), a command,
or a one-line usage error that says how to send the line as a prompt."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from qwen_magics.emulator import Emulator
from qwen_magics.magics.helpend import keep_questions

from .kernels import kernel_env
from .outputs import run


def sent(emulator: Emulator) -> str:
    return str(emulator.chat_requests[-1].body["messages"][-1]["content"])


# -- questions -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "question", ["What is the capital of France?", "tell me a joke??", "Is it?", "what's {len('four')}?"]
)
def test_a_question_is_sent_with_its_question_mark(ip, qwen_env: Emulator, question: str) -> None:
    cap = run(ip, f"%qwen --no-thinking {question}")
    assert "not found" not in cap.stdout + cap.stderr
    assert sent(qwen_env) == question.replace("{len('four')}", "4")  # filled as a cell's prompt is


def test_a_question_among_other_lines_is_sent_and_the_rest_runs(ip, qwen_env: Emulator) -> None:
    run(ip, "city = 'Lisbon'\nif city:\n    %qwen --no-thinking Where is {city}?\ndone = True")
    assert sent(qwen_env) == "Where is Lisbon?"
    assert ip.user_ns["done"] is True


def test_question_mark_after_the_magic_still_shows_its_help(ip, qwen_env: Emulator) -> None:
    for source in ("%qwen?", "%qwen??", "%%qwen?"):
        cap = run(ip, source)
        assert "--temperature" in cap.stdout and "--no-thinking" in cap.stdout, source
    assert qwen_env.requests == []


def test_other_lines_ending_in_a_question_mark_are_left_to_ipython(ip, qwen_env: Emulator) -> None:
    ip.user_ns["answer"] = 42
    assert "int" in run(ip, "answer?").stdout
    assert run(ip, 's = """\n%qwen inside a string?\n"""').stdout == ""
    assert ip.user_ns["s"] == "\n%qwen inside a string?\n"
    assert qwen_env.requests == []


def test_unloading_removes_the_question_hook(ip, qwen_env: Emulator) -> None:
    assert ip.input_transformers_cleanup.count(keep_questions) == 1
    ip.run_line_magic("reload_ext", "qwen_magics")
    assert ip.input_transformers_cleanup.count(keep_questions) == 1
    ip.run_line_magic("unload_ext", "qwen_magics")
    assert keep_questions not in ip.input_transformers_cleanup
    assert "pinfo" in ip.transform_cell("%qwen What is the capital of France?")


# -- commands --------------------------------------------------------------------------------
def line(ip, text: str):  # type: ignore[no-untyped-def]
    with capture_output() as cap:
        ip.run_line_magic("qwen", text)
    return cap


@pytest.mark.parametrize(
    "setting", ["temperature=0.3", "temperature = 0.3", "temperature =0.3", "temperature= 0.3"]
)
def test_config_sets_with_or_without_spaces_around_the_equals(ip, qwen_env: Emulator, setting: str) -> None:
    cap = run(ip, f"%qwen config {setting} system = 'Be brief, sailor.'")
    assert "temperature=0.3" in cap.stdout and cap.stderr == ""
    run(ip, "%qwen --no-thinking ahoy")
    request = qwen_env.chat_requests[-1]
    assert request.params["temperature"] == 0.3
    assert request.body["messages"][0] == {"role": "system", "content": "Be brief, sailor."}


@pytest.mark.parametrize(
    "text", ["models foo", "reset now", "history please", "help me write a poem", "config model", "config ="]
)
def test_a_command_with_arguments_it_does_not_take_is_a_usage_error(
    ip, qwen_env: Emulator, text: str
) -> None:
    with capture_output() as cap, pytest.raises(UsageError) as err:
        ip.run_line_magic("qwen", text)
    message = str(err.value)
    assert message.startswith(f"%qwen {text.split()[0]} ") and "\n" not in message
    assert message.endswith(f"to send it as a prompt: %qwen -- {text}")
    assert qwen_env.requests == [] and cap.outputs == []


def test_a_command_usage_error_shows_no_traceback(ip, qwen_env: Emulator) -> None:
    cap = run(ip, "%qwen reset the counter")
    assert "UsageError: %qwen reset takes no arguments" in cap.stderr
    assert "Traceback" not in cap.stdout + cap.stderr
    assert qwen_env.requests == []


@pytest.mark.parametrize(
    ("text", "prompt"),
    [
        ("-- reset the counter", "reset the counter"),
        ("-t 0.2 -- models", "models"),
        ("-- config model", "config model"),
    ],
)
def test_double_dash_sends_the_rest_as_a_prompt(ip, qwen_env: Emulator, text: str, prompt: str) -> None:
    run(ip, f"%qwen {text}")
    assert sent(qwen_env) == prompt


def test_a_command_word_alone_is_the_command_in_any_case(ip, qwen_env: Emulator) -> None:
    assert "No conversation yet" in line(ip, "History").outputs[0].data["text/plain"]
    assert "conversation cleared" in line(ip, "RESET").stdout
    assert "qwen3.6-plus" in line(ip, "Config").outputs[0].data["text/plain"]
    assert qwen_env.chat_requests == []


def test_a_capitalised_word_that_starts_a_longer_line_is_a_prompt(ip, qwen_env: Emulator) -> None:
    run(ip, "%qwen --no-thinking History of Rome in three lines")
    assert sent(qwen_env) == "History of Rome in three lines"


def test_config_model_is_checked_as_a_cell_checks_it(ip, qwen_env: Emulator) -> None:
    with pytest.raises(UsageError) as err:
        line(ip, "config model=qwen-plu")
    message = str(err.value)
    assert message.startswith("%qwen config model: unknown model 'qwen-plu': http://127.0.0.1:")
    assert "the default is unchanged" in message and "Did you mean 'qwen-plus'" in message
    magics = ip.magics_manager.registry["QwenMagics"]
    assert magics.model is None and qwen_env.chat_requests == []
    line(ip, "config model = qwen-plus")
    assert magics.model == "qwen-plus"


def test_qwen_alone_shows_the_short_usage(ip, qwen_env: Emulator) -> None:
    shown = run(ip, "%qwen").outputs[0].data
    for text in ("%qwen config", "%qwen models", "%qwen reset", "%qwen -- prompt", "%qwen help"):
        assert text in shown["text/plain"] and text in shown["text/markdown"]
    assert "--top-k" not in shown["text/plain"]  # the options are one command away
    assert qwen_env.requests == []


# -- -o and the panel ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("setup", "name", "what"),
    [
        ("", "print", "a built-in"),
        ("def helper(): pass", "helper", "a function"),
        ("class Point: pass", "Point", "a class"),
        ("import math", "math", "a module"),
        ("", "Out", "one of IPython's own names"),
    ],
)
def test_out_refuses_to_replace_a_builtin_function_class_or_module(
    ip, qwen_env: Emulator, setup: str, name: str, what: str
) -> None:
    run(ip, setup)
    before = ip.user_ns.get(name)
    with pytest.raises(UsageError) as err:
        line(ip, f"-o {name} hello")
    message = str(err.value)
    assert message.startswith(f"-o/--out: {name!r} is {what}") and "--force" in message
    assert "\n" not in message and qwen_env.requests == []
    assert ip.user_ns.get(name) is before
    assert "hello" in run(ip, "print('hello')").stdout


def test_out_with_force_replaces_the_name_and_a_value_is_replaced_freely(ip, qwen_env: Emulator) -> None:
    run(ip, "def helper(): pass\nanswer = 'old'")
    run(ip, "%qwen --no-thinking -o answer first")
    run(ip, "%qwen --no-thinking -o answer second")
    assert ip.user_ns["answer"] is ip.user_ns["_qwen"] and "second" in ip.user_ns["answer"].text
    run(ip, "%qwen --no-thinking --force -o helper third")
    assert ip.user_ns["helper"] is ip.user_ns["_qwen"]


def test_terminal_ipython_sends_questions_and_says_the_panel_needs_a_notebook(
    qwen_env: Emulator, tmp_path: Path
) -> None:
    code = "%qwen --no-thinking What is the capital of France?\n%qwen panel\n"
    out = subprocess.run(
        [sys.executable, "-m", "IPython", "--no-banner", "--colors=nocolor", "--ext=qwen_magics", "-c", code],
        capture_output=True,
        text=True,
        env=kernel_env(qwen_env, IPYTHONDIR=str(tmp_path / "ipython")),
    )
    shown = out.stdout + out.stderr
    assert sent(qwen_env) == "What is the capital of France?"
    assert "not found" not in shown
    (refusal,) = [line for line in shown.splitlines() if "panel" in line]
    assert "UsageError: the panel needs a notebook front end (JupyterLab, Notebook or VS Code)" in refusal
    assert "%config QwenMagics.temperature" in refusal
    assert "VBox" not in shown and "Traceback" not in shown
