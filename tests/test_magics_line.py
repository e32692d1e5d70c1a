"""What a ``%qwen`` line is, typed into a real shell: a question (question mark included), a command,
or a one-line usage error that says how to send the line as a prompt."""

from __future__ import annotations

import pytest
from IPython.utils.capture import capture_output

from qwen_magics.emulator import Emulator
from qwen_magics.magics.helpend import keep_questions


@pytest.fixture
def ip(shell):  # type: ignore[no-untyped-def]
    shell.run_line_magic("load_ext", "qwen_magics")
    yield shell
    shell.config.pop("QwenMagics", None)


def run(ip, source: str):  # type: ignore[no-untyped-def]
    """A cell as a user runs it: IPython's input transformers first, errors shown, not raised."""
    with capture_output() as cap:
        ip.run_cell(source)
    return cap


def sent(emulator: Emulator) -> str:
    return str(emulator.chat_requests[-1].body["messages"][-1]["content"])


# -- questions -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "question", ["What is the capital of France?", "tell me a joke??", "Is it?", "what's {2 + 2}?"]
)
def test_a_question_is_sent_with_its_question_mark(ip, qwen_env: Emulator, question: str) -> None:
    cap = run(ip, f"%qwen --no-thinking {question}")
    assert "not found" not in cap.stdout + cap.stderr
    assert sent(qwen_env) == question.replace("{2 + 2}", "4")


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
