"""%qwen explain and %%qwen --error: the last exception, its traceback and the failing cell, sent."""

from __future__ import annotations

import sys

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from qwen_magics.emulator import Emulator

from .outputs import rendered_markdown

FAILING = "def ratio(a, b):\n    return a / b\n\nratio(1, 0)  # {not a field}\n"


def sent(emulator: Emulator) -> str:
    (request,) = emulator.chat_requests
    return str(request.body["messages"][-1]["content"])


def fail(ip) -> None:  # type: ignore[no-untyped-def]
    with capture_output():
        result = ip.run_cell(FAILING)
    assert isinstance(result.error_in_exec, ZeroDivisionError)


def test_explain_sends_the_last_traceback_and_the_failing_cell(ip, qwen_env: Emulator, monkeypatch) -> None:
    monkeypatch.setattr(
        ip, "colors", "linux"
    )  # a terminal's colours: none of their codes may reach the model
    fail(ip)
    drawn = ip.InteractiveTB.structured_traceback(type(sys.last_value), sys.last_value, sys.last_traceback)
    assert "\x1b[" in "".join(drawn)  # IPython did colour it
    qwen_env.reset()
    with capture_output() as cap:
        ip.run_line_magic("qwen", "explain")
    prompt = sent(qwen_env)
    assert prompt.startswith("Why did this fail, and how do I fix it?")
    assert "The error: ZeroDivisionError: division by zero" in prompt
    assert "return a / b" in prompt and "ratio(1, 0)" in prompt  # the traceback's lines
    assert "```python\n" + FAILING.rstrip() + "\n```" in prompt  # the cell, braces and all, as written
    assert "\x1b[" not in prompt
    assert "run_code" not in prompt and "interactiveshell.py" not in prompt  # IPython's own frame left out
    assert rendered_markdown(cap.outputs)  # streamed like any answer


def test_error_adds_the_last_error_to_a_prompt_of_ones_own(ip, qwen_env: Emulator) -> None:
    fail(ip)
    ip.user_ns["lang"] = "French"
    qwen_env.reset()
    with capture_output():
        ip.run_cell_magic("qwen", "--error -m qwen-flash", "Explain it in {lang}, in one line.")
    prompt = sent(qwen_env)
    assert prompt.startswith("Explain it in French, in one line.\n\nThe cell that failed:")
    assert "ZeroDivisionError" in prompt
    assert qwen_env.chat_requests[0].body["model"] == "qwen-flash"


def test_a_syntax_error_is_explained_too(ip, qwen_env: Emulator) -> None:
    with capture_output():
        ip.run_cell("x = (1,\nprint(x")
    qwen_env.reset()
    with capture_output():
        ip.run_line_magic("qwen", "explain in one line")
    prompt = sent(qwen_env)
    assert prompt.startswith("Why did this fail, and how do I fix it? in one line\n\n")
    assert "SyntaxError" in prompt and "print(x" in prompt


def test_explain_with_no_error_yet_says_what_to_do(ip, qwen_env: Emulator, monkeypatch) -> None:
    monkeypatch.delattr(sys, "last_value", raising=False)
    monkeypatch.delattr(sys, "last_traceback", raising=False)
    with pytest.raises(UsageError, match="no error to explain yet"):
        ip.run_line_magic("qwen", "explain")
    assert qwen_env.chat_requests == []
