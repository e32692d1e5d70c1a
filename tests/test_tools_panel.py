"""panel(tools=[...]): each Run is the tool loop, the calls shown in the answer, and the panel names
the tools in use with their schemas and code. Real widgets, clicked in Python, against the emulator."""

from __future__ import annotations

import pytest
from IPython.utils.capture import capture_output

import qwen_magics
from qwen_magics import ParameterError
from qwen_magics.emulator import Emulator
from qwen_magics.widgets.panel import Panel

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def get_weather(city: str) -> str:
    """Get the current weather for a city."""
    return f"rain in {city}, 12 C"


def get_time(zone: str) -> str:
    """The current time in a timezone."""
    return "10:00"


@pytest.fixture
def make(shell):  # type: ignore[no-untyped-def]
    def open_panel(prompt: str = "", **params: object) -> Panel:
        with capture_output() as cap:
            p = qwen_magics.panel(prompt, **params)
        assert [WIDGET_MIME in o.data for o in cap.outputs] == [True]
        return p

    return open_panel


def test_run_goes_through_the_tool_loop_and_shows_the_calls(make, qwen_env: Emulator) -> None:
    p = make("What's the weather in Paris?", model="qwen-plus", tools=[get_weather, get_time])
    p.run_button.click()
    assert p.wait(10), "the run did not end"
    r = p.result
    assert r is not None
    assert [(c.name, c.result) for c in r.tool_calls] == [("get_weather", "rain in Paris, 12 C")]
    assert r.text.startswith("get_weather returned rain in Paris, 12 C.")
    shown = p.output.outputs[0]["data"]["text/markdown"]
    assert "get_weather" in shown and "rain in Paris, 12 C" in shown
    sent = qwen_env.chat_requests
    assert len(sent) == 2
    assert [t["function"]["name"] for t in sent[0].body["tools"]] == ["get_weather", "get_time"]
    assert sent[1].body["messages"][-1]["role"] == "tool"
    assert p.runs[-1].state.startswith("done")


def test_the_panel_names_the_tools_with_their_schema_and_code(make) -> None:
    p = make("Hi", model="qwen-plus", tools=[get_weather, get_time])
    line = p.tools_view.value
    assert "<b>tools</b> (2)" in line
    assert "<summary><code>get_weather</code></summary>" in line and "<code>get_time</code>" in line
    assert "&quot;city&quot;" in line and "&quot;type&quot;: &quot;string&quot;" in line  # the schema
    assert "return f&quot;rain in {city}, 12 C&quot;" in line  # the function's code
    assert "--tools get_weather,get_time" in p.code.splitlines()[0]


def test_without_tools_the_line_is_empty(make) -> None:
    assert make("Hi", model="qwen-plus").tools_view.value == ""


def test_a_model_without_tools_is_refused_before_run(make, qwen_env: Emulator) -> None:
    p = make("Hi", model="qwen-plus", tools=[get_weather])
    p.model.value = "qwq-plus"
    assert any("qwq-plus does not take tools" in problem for problem in p.problems())
    assert p.run_button.disabled
    assert p.run() is None and qwen_env.chat_requests == []


def test_a_tool_the_schema_cannot_describe_raises_at_once(clean_env: None) -> None:
    def lookup(thing: object) -> str:
        return "?"

    with pytest.raises(ParameterError, match="thing"):
        Panel("Hi", model="qwen-plus", tools=[lookup])


def test_the_magic_opens_a_panel_with_the_notebooks_tools(shell, qwen_env: Emulator) -> None:
    shell.run_line_magic("load_ext", "qwen_magics")
    shell.user_ns["get_weather"] = get_weather
    with capture_output() as cap:
        shell.run_cell_magic(
            "qwen", "-m qwen-plus --panel --tools get_weather --max-steps 3 -o p", "Weather in Oslo?"
        )
    assert [WIDGET_MIME in o.data for o in cap.outputs] == [True]
    p = shell.user_ns["p"]
    assert "<code>get_weather</code>" in p.tools_view.value
    assert p.code.splitlines()[0].endswith("--tools get_weather --max-steps 3")
    p.run_button.click()
    assert p.wait(10)
    assert p.result is not None and [c.name for c in p.result.tool_calls] == ["get_weather"]
