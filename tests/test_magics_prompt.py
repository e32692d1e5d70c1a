"""Prompt variables in %%qwen: {name} and {expression}, {{ }} for braces, code sent as written."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from qwen_magics.emulator import Emulator
from qwen_magics.templating import fill


def sent_prompt(ip, emulator: Emulator, body: str, line: str = "--no-thinking") -> str:  # type: ignore[no-untyped-def]
    emulator.reset()
    with capture_output():
        ip.run_cell_magic("qwen", line, body)
    (request,) = emulator.chat_requests
    return str(request.body["messages"][-1]["content"])


def test_names_and_expressions_are_filled_from_the_notebook(ip, qwen_env: Emulator) -> None:
    ip.user_ns.update(city="Lisbon", items=[3, 1, 2], pi=3.14159)
    body = "Tell me about {city}: {len(items)} facts, sorted {sorted(items)}, pi={pi:.2f}, {city!r}."
    assert (
        sent_prompt(ip, qwen_env, body)
        == "Tell me about Lisbon: 3 facts, sorted [1, 2, 3], pi=3.14, 'Lisbon'."
    )


def test_values_are_inserted_once_and_double_braces_are_literal(ip, qwen_env: Emulator) -> None:
    ip.user_ns["snippet"] = "{not_a_variable}"
    assert (
        sent_prompt(ip, qwen_env, "Explain {snippet} and {{braces}}")
        == "Explain {not_a_variable} and {braces}"
    )


@pytest.mark.parametrize(
    "body",
    [
        "def f(x):\n    return {'a': x, **{}}\n",
        "function g() { return 1; }",
        'Reply as JSON like {"title": "...", "tags": []}',
        "A lone { brace",
        "A lone } brace",
        "Jinja: {{ user.name }} stays as written",
        "Sets {1, 2} and dicts {} stay",
        'Mixed {city} and {"json": 1} means the whole prompt is code',
    ],
)
def test_code_with_braces_is_sent_as_written(ip, qwen_env: Emulator, body: str) -> None:
    ip.user_ns["city"] = "Lisbon"
    assert sent_prompt(ip, qwen_env, body) == body.strip()


def test_prompt_sent_as_written_says_so_in_the_footer(ip, qwen_env: Emulator) -> None:
    ip.user_ns["city"] = "Lisbon"
    with capture_output() as cap:
        ip.run_cell_magic("qwen", "--no-thinking", 'Describe {city} as {"name": "..."}')
    footer = cap.outputs[-1].data["text/markdown"].rsplit("<sub>", 1)[1]
    assert "prompt sent as written" in footer


def test_undefined_name_is_a_usage_error_naming_it(ip, qwen_env: Emulator) -> None:
    ip.user_ns.pop("nowhere", None)
    with capture_output() as cap, pytest.raises(UsageError) as err:
        ip.run_cell_magic("qwen", "", "Where is {nowhere}?")
    assert "'nowhere' is not defined" in str(err.value)
    assert "{{nowhere}}" in str(err.value)
    assert qwen_env.requests == [] and cap.outputs == []


def test_failing_expression_is_a_usage_error(ip, qwen_env: Emulator) -> None:
    ip.user_ns["d"] = {}
    with pytest.raises(UsageError, match=r"prompt variable \{d\['x'\]\} failed: KeyError"):
        ip.run_cell_magic("qwen", "", "Value: {d['x']}")
    assert qwen_env.requests == []


def test_system_prompt_takes_variables_too(ip, qwen_env: Emulator) -> None:
    ip.user_ns["persona"] = "a pirate"
    with capture_output():
        ip.run_cell_magic("qwen", '-s "You are {persona}."', "hi")
    assert qwen_env.chat_requests[0].body["messages"][0] == {"role": "system", "content": "You are a pirate."}


def test_fill_leaves_text_without_fields_alone() -> None:
    assert fill("no fields {{here}}", {}) == "no fields {{here}}"
    assert fill("{a}{{b}}", {"a": 1}) == "1{b}"
    assert fill("{a[1:3]}", {"a": "hello"}) == "el"
