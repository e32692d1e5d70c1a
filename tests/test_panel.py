"""The parameter panel, driven like a user drives it: real widgets, real shell, real emulator."""

from __future__ import annotations

import threading
import time

import pytest
from IPython.utils.capture import capture_output

import qwen_magics
from qwen_magics import ParameterError
from qwen_magics.emulator import Emulator
from qwen_magics.emulator.answers import SimpleGenerator
from qwen_magics.widgets.panel import Panel
from qwen_magics.widgets.presets import PRESETS

from .conftest import open_connections
from .waiting import wait_until

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def shown(p: Panel) -> str:
    """The Markdown the panel's answer area holds now."""
    outputs = p.output.outputs
    assert len(outputs) == 1
    return outputs[0]["data"].get("text/markdown") or outputs[0]["data"]["text/html"]


def run_to_end(p: Panel) -> None:
    p.run_button.click()
    assert p.wait(10), "the run did not end"


def panel_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("qwen-panel-run")]


@pytest.fixture
def make(shell):  # type: ignore[no-untyped-def]
    """Open a panel as a notebook user does, checking that it displays as a widget."""

    def open_panel(prompt: str = "", **params: object) -> Panel:
        with capture_output() as cap:
            p = qwen_magics.panel(prompt, **params)
        assert [WIDGET_MIME in o.data for o in cap.outputs] == [True]
        return p

    yield open_panel
    for t in panel_threads():
        t.join(5)


def test_run_sends_exactly_the_chosen_settings(make, qwen_env: Emulator) -> None:
    p = make("Explain recursion", model="qwen-plus")
    p.preset.value = "code generation"
    p.thinking.value = "on"
    p.budget.value = 500
    p.max_tokens.value = 300
    p.seed.value = "7"
    p.top_k.value = "20"
    p.system.value = "Be brief."
    run_to_end(p)
    assert qwen_env.chat_requests[-1].params == {
        "model": "qwen-plus",
        "temperature": 0.2,
        "top_p": 0.8,
        "top_k": 20,
        "enable_thinking": True,
        "thinking_budget": 500,
        "max_tokens": 300,
        "seed": 7,
    }
    body = qwen_env.chat_requests[-1].body
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Explain recursion"},
    ]
    answer = "You asked: Be brief. Explain recursion. This is the emulator's answer at temperature 0.2."
    assert p.result is not None and p.result.text == answer
    markdown = shown(p)
    assert answer in markdown and "Thinking" in markdown and "The question is about" in markdown
    assert "qwen-plus · " in markdown  # the footer
    assert p.runs[-1].state == "done" and not p.running


def test_untouched_controls_send_nothing_but_the_model(make, qwen_env: Emulator) -> None:
    p = make("Hi there", model="qwen3.5-flash")
    assert p.preset.value == "model default"
    assert p.thinking.value == "default"
    run_to_end(p)
    assert qwen_env.chat_requests[-1].params == {"model": "qwen3.5-flash"}
    assert "You asked: Hi there." in shown(p)


def test_given_parameters_preset_the_controls(make, qwen_env: Emulator) -> None:
    p = make("Hi", model="qwen-plus", temperature=0.9, top_p=0.95, seed=3, thinking=False, max_tokens=50)
    assert p.preset.value == "creative writing"
    assert (p.temperature.value, p.top_p.value, p.seed.value) == (0.9, 0.95, "3")
    run_to_end(p)
    assert qwen_env.chat_requests[-1].params == {
        "model": "qwen-plus",
        "temperature": 0.9,
        "top_p": 0.95,
        "enable_thinking": False,
        "max_tokens": 50,
        "seed": 3,
    }


def test_choosing_a_preset_sets_both_sliders(make) -> None:
    p = make("Hi", model="qwen-plus")
    for name, values in PRESETS.items():
        p.preset.value = name
        assert (p.temperature.value, p.top_p.value) == values
        assert (p.settings()["temperature"], p.settings()["top_p"]) == values
        assert p.preset.value == name
    assert [*PRESETS.items()] == [
        ("creative writing", (0.9, 0.95)),
        ("code generation", (0.2, 0.8)),
        ("factual Q&A", (0.1, 0.7)),
        ("translation", (0.3, 0.8)),
    ]


def test_moving_a_slider_marks_the_preset_custom(make) -> None:
    p = make("Hi", model="qwen-plus", preset="translation")
    p.top_p.value = 0.9
    assert p.preset.value == "custom"
    assert (p.settings()["temperature"], p.settings()["top_p"]) == (0.3, 0.9)
    p.preset.value = "model default"
    assert "temperature" not in p.settings() and "top_p" not in p.settings()
    assert not p.temperature.readout and "not sent" in p._slider_notes["temperature"].value
    p.temperature.value = 1.25
    assert p.preset.value == "custom"
    assert p.settings()["temperature"] == 1.25 and "top_p" not in p.settings()
    assert p.temperature.readout and p._slider_notes["temperature"].value == ""


def test_sliders_keep_dashscope_ranges(make) -> None:
    p = make("Hi")
    assert (p.temperature.min, p.temperature.max) == (0.0, 1.99)
    assert p.top_p.min > 0 and p.top_p.max == 1.0


def test_given_values_are_sent_as_given(make, qwen_env: Emulator) -> None:
    p = make("Hi", model="qwen-plus", temperature=0.333, top_p=0.125)
    run_to_end(p)
    assert qwen_env.chat_requests[-1].params == {"model": "qwen-plus", "temperature": 0.333, "top_p": 0.125}
    p.temperature.value = 0.1 + 0.2  # a slider's float noise is not sent
    assert p.settings()["temperature"] == 0.3
    with pytest.raises(ParameterError, match=r"slider spans 0\.0 to 1\.99"):
        Panel("Hi", temperature=1.995)  # DashScope takes it; the slider cannot show it


def test_thinking_is_locked_on_for_a_thinking_only_model(make, qwen_env: Emulator) -> None:
    p = make("Hi", model="qwen-plus")
    p.thinking.value = "off"
    p.model.value = "qwq-plus"
    assert p.thinking.value == "on" and p.thinking.disabled
    assert p.budget.layout.display != "none"
    assert "thinking" not in p.settings()  # the model always thinks: nothing to send
    run_to_end(p)
    assert qwen_env.chat_requests[-1].params == {"model": "qwq-plus"}
    assert "Thinking" in shown(p)
    p.model.value = "qwen-plus"
    assert p.thinking.value == "off" and not p.thinking.disabled  # the user's choice comes back


def test_thinking_is_disabled_for_a_model_without_thinking(make, qwen_env: Emulator) -> None:
    p = make("Hi", model="qwen-plus", thinking=True, budget=100)
    p.model.value = "qwen3-max"
    assert p.thinking.value == "off" and p.thinking.disabled
    assert p.budget.layout.display == "none"
    run_to_end(p)
    assert qwen_env.chat_requests[-1].params == {"model": "qwen3-max"}
    p.model.value = "qwen-turbo"
    assert p.thinking.value == "on" and p.settings()["budget"] == 100


def test_budget_is_shown_only_when_the_model_will_think(make) -> None:
    p = make("Hi", model="qwen-plus")  # thinking off by default
    assert p.budget.layout.display == "none"
    p.budget.value = 64
    assert "budget" not in p.settings()
    p.thinking.value = "on"
    assert p.budget.layout.display == "" and p.settings()["budget"] == 64
    p.thinking.value = "off"
    assert p.budget.layout.display == "none" and "budget" not in p.settings()
    p.model.value = "qwen3.6-plus"  # thinks by default
    p.thinking.value = "default"
    assert p.budget.layout.display == "" and p.settings() == {"model": "qwen3.6-plus", "budget": 64}


def test_int_fields_stay_inside_the_model_limits(make) -> None:
    p = make("Hi", model="qwen-plus", max_tokens=30_000)
    assert p.max_tokens.max == 32_768
    p.model.value = "qwq-plus"
    assert p.max_tokens.value == 8_192 and p.max_tokens.max == 8_192
    assert "lowered to 8,192" in p.notes.value
    p.thinking.value = "on"
    assert p.budget.max == 32_768
    p.model.value = "qwen-plus"
    assert p.max_tokens.max == 32_768 and p.max_tokens.value == 8_192


def test_impossible_settings_are_explained_and_not_sent(make, qwen_env: Emulator) -> None:
    p = make("Hi", model="qwen-plus")
    p.seed.value = "lucky"
    assert p.run_button.disabled
    assert "seed must be a whole number" in p.notes.value
    p.run_button.click()  # a click that reaches the kernel anyway
    assert p.runs == [] and qwen_env.chat_requests == []
    p.seed.value = str(2**31)
    assert "seed must be in [0, 2147483647]" in p.notes.value
    p.seed.value = ""
    p.top_k.value = "-1"
    assert "top_k must be in" in p.notes.value and p.run_button.disabled
    p.top_k.value = ""
    assert not p.run_button.disabled and p.notes.value == ""
    p.prompt.value = "   "
    assert p.run_button.disabled and "write a prompt" in p.notes.value
    assert p.run() is None and qwen_env.chat_requests == []


def test_impossible_arguments_raise_at_once(clean_env: None) -> None:
    with pytest.raises(ParameterError, match="always thinks"):
        Panel("Hi", model="qwq-plus", thinking=False)
    with pytest.raises(ParameterError, match="no thinking mode"):
        Panel("Hi", model="qwen3-max", thinking=True)
    with pytest.raises(ParameterError, match="turn thinking on"):
        Panel("Hi", model="qwen-plus", budget=100)
    with pytest.raises(ParameterError, match=r"\[1, 32768\]"):
        Panel("Hi", model="qwen-plus", max_tokens=40_000)
    with pytest.raises(ParameterError, match="unknown preset"):
        Panel("Hi", preset="poetry")
    with pytest.raises(TypeError):
        Panel("Hi", temprature=0.5)  # type: ignore[call-arg]


def test_copy_as_code_shows_the_cell_for_the_current_settings(make) -> None:
    p = make("Sort this list\n", model="qwen-plus")
    assert p.code == "%%qwen -m qwen-plus\nSort this list"
    p.preset.value = "factual Q&A"
    p.thinking.value = "on"
    p.budget.value = 256
    p.max_tokens.value = 1000
    p.seed.value = "42"
    p.top_k.value = "5"
    p.system.value = "You are terse."
    expected = (
        '%%qwen -m qwen-plus -s "You are terse." -t 0.1 -p 0.7 --top-k 5 --thinking '
        "--budget 256 --max-tokens 1000 --seed 42\nSort this list"
    )
    assert p.code == expected
    assert "-t 0.1 -p 0.7" in p.code_view.value  # the view follows the controls
    p.thinking.value = "off"
    assert "--no-thinking" in p.code and "--budget" not in p.code


CASES = {
    "plain": ("What is 2+2?", {"model": "qwen-plus"}),
    "every option": (
        "Sort these numbers",
        {
            "model": "qwen-plus",
            "system": "You are terse.",
            "temperature": 0.35,
            "top_p": 0.9,
            "top_k": 7,
            "thinking": True,
            "budget": 64,
            "max_tokens": 120,
            "seed": 11,
            "stop": ["END"],
        },
    ),
    "quotes in the system prompt": ("Greet me", {"model": "qwen-flash", "system": 'Say "hi", it\'s $5!'}),
    "JSON braces are sent as written": ('Fill {"name": "?", "age": 0} for Ada', {"model": "qwen-plus"}),
    "a {name} the magic would fill": ("Explain {topic} simply", {"model": "qwen-plus", "seed": 1}),
    "a system prompt over two lines": (
        "Name a colour",
        {"model": "qwen-turbo", "system": "One word.\nNo dot."},
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_copy_as_code_sends_the_same_request_as_the_panel(case: str, make, shell, qwen_env: Emulator) -> None:
    prompt, settings = CASES[case]
    p = make(prompt, **settings)
    assert p.settings() == settings
    run_to_end(p)
    sent_by_panel = qwen_env.chat_requests[-1].body
    shell.run_line_magic("load_ext", "qwen_magics")
    with capture_output():
        result = shell.run_cell(p.code)  # the code as a user pastes it into a new cell
    assert result.success, result.error_in_exec or result.error_before_exec
    assert len(qwen_env.chat_requests) == 2
    assert qwen_env.chat_requests[-1].body == sent_by_panel
    magic = not case.startswith(("a {name}", "a system prompt over"))
    assert p.code.startswith("%%qwen") == magic


def test_runs_table_lists_runs_newest_first(make, qwen_env: Emulator) -> None:
    p = make("Tell me a fact", model="qwen-plus", preset="factual Q&A")
    run_to_end(p)
    p.temperature.value = 1.5
    run_to_end(p)
    table = p.runs_view.value
    second, first = (
        table.index("<td style='text-align:left;padding:2px 8px;vertical-align:top'>2"),
        table.index("<td style='text-align:left;padding:2px 8px;vertical-align:top'>1"),
    )
    assert second < first
    assert "temperature 1.5 · top_p 0.7" in table and "temperature 0.1 · top_p 0.7" in table
    assert "You asked: Tell me a fact. This is the emulator&#x27;s answer at temperature 1.5." in table
    assert [r.settings["temperature"] for r in p.runs] == [0.1, 1.5]
    assert p.result is p.runs[-1].response
    assert "latency" in table and "first token" in table and "done" in table


def test_runs_table_shows_the_answer_of_a_thinking_run_not_its_reasoning(make, qwen_env: Emulator) -> None:
    p = make("Why is the sea salty?", model="qwen-plus", thinking=True)
    run_to_end(p)
    r = p.result
    assert r is not None and r.reasoning.startswith("The question is about") and r.text
    table = p.runs_view.value
    assert "You asked: Why is the sea salty?" in table and "The question is about" not in table


def test_runs_table_says_a_run_stopped_while_thinking(make, qwen_env: Emulator) -> None:
    qwen_env.token_delay = 0.01
    qwen_env.queue_reply("The answer, at last.", reasoning=" ".join(f"step{i}" for i in range(300)))
    p = make("Think it over", model="qwen-plus", thinking=True)
    p.run_button.click()
    wait_until(lambda: p.result is not None and "step5" in p.result.partial_reasoning, what="thinking")
    p.stop_button.click()
    assert p.wait(5)
    assert p.runs[-1].state == "interrupted" and p.result is not None and not p.result.partial_text
    table = p.runs_view.value
    assert "stopped while thinking: no answer yet" in table and "step0" not in table
    assert "stopped while the model was still thinking" in shown(p)  # the answer area says it too


def test_stop_mid_stream_keeps_the_partial_answer(make, qwen_env: Emulator) -> None:
    qwen_env.token_delay = 1.0  # the stream stalls between chunks: Stop must not wait for the next
    p = make("Write a long story about the sea", model="qwen-plus")
    p.run_button.click()
    wait_until(lambda: p.result is not None and p.result.partial_text, what="the first token")
    assert p.running and not p.stop_button.disabled and p.run_button.disabled
    started = time.monotonic()
    p.stop_button.click()
    assert p.wait(5)
    took = time.monotonic() - started
    assert took < 0.8, f"Stop took {took:.2f}s"  # the next chunk is 1 s away: Stop did not wait for it
    r = p.result
    assert r is not None and r.interrupted and r.done
    partial = r.partial_text
    assert partial and not partial.endswith("answer.")
    markdown = shown(p)
    assert partial in markdown and "interrupted" in markdown
    assert p.runs[-1].state == "interrupted" and "interrupted" in p.runs_view.value
    assert panel_threads() == [] and not p.running
    assert not p.run_button.disabled and p.stop_button.disabled
    qwen_env.token_delay = 0.0
    run_to_end(p)  # the panel is ready for the next run
    assert p.result is not None and p.result.text.endswith("answer.")


def test_stop_before_the_first_token(make, qwen_env: Emulator) -> None:
    qwen_env.latency = 5.0
    p = make("Hello", model="qwen-plus")
    p.run_button.click()
    wait_until(lambda: qwen_env.chat_requests, what="the request")
    p.stop_button.click()
    assert p.wait(2.5)  # the first token is 5 s away: Stop did not wait for it
    assert p.runs[-1].state == "stopped" and p.result is None
    assert "stopped before the first token" in shown(p)


def test_an_api_error_shows_in_the_panel(make, qwen_env: Emulator) -> None:
    qwen_env.add_fault("status", status=400, message="the prompt was refused")
    p = make("Hello", model="qwen-plus")
    run_to_end(p)
    assert p.result is None and p.runs[-1].state == "error"
    assert "the prompt was refused" in p.output.outputs[0]["data"]["text/plain"]
    assert "error" in p.runs_view.value and not p.run_button.disabled


def test_the_kernel_stays_free_while_a_run_streams(make, shell, qwen_env: Emulator) -> None:
    qwen_env.token_delay = 0.05
    p = make("Count slowly", model="qwen-plus")
    p.run_button.click()
    shell.run_cell("x = 6 * 7")  # runs while the answer streams
    assert shell.user_ns["x"] == 42 and p.running
    assert p.wait(10) and p.result is not None and p.result.text.endswith("answer.")


# -- Compare mode -----------------------------------------------------------------------------------
def add_settings(p: Panel, *temperatures: float) -> None:
    for t in temperatures:
        p.temperature.value = t
        p.compare_mode.add_button.click()


def compared(p: Panel) -> str:
    outputs = p.compare_mode.output.outputs
    assert len(outputs) == 1
    return outputs[0]["data"]["text/html"]


def test_compare_runs_the_collected_settings_side_by_side(make, qwen_env: Emulator) -> None:
    p = make("Name a colour", model="qwen-plus", preset="translation")
    add_settings(p, 0.1, 0.9)
    p.thinking.value = "on"
    p.compare_mode.add_button.click()
    mode = p.compare_mode
    assert len(mode.settings) == 3 and not mode.run_button.disabled
    mode.run_button.click()
    assert p.wait(10) and not p.running
    sent = sorted((r.params for r in qwen_env.chat_requests), key=lambda x: sorted(x.items()))
    assert sent == sorted(
        [
            {"model": "qwen-plus", "temperature": 0.1, "top_p": 0.8},
            {"model": "qwen-plus", "temperature": 0.9, "top_p": 0.8},
            {"model": "qwen-plus", "temperature": 0.9, "top_p": 0.8, "enable_thinking": True},
        ],
        key=lambda x: sorted(x.items()),
    )
    grid = compared(p)
    for t in (0.1, 0.9):
        assert f"You asked: Name a colour. This is the emulator's answer at temperature {t}." in grid
    assert mode.comparison is not None and mode.comparison.done and len(mode.comparison.df) == 3
    assert "comparison of 3 settings: done" in p.status.value
    assert p.runs == []  # the runs table keeps single runs


def test_compare_samples_each_setting_several_times(make, qwen_env: Emulator) -> None:
    p = make("Name a colour", model="qwen-flash")
    add_settings(p, 0.2, 1.2)
    p.compare_mode.samples.value = 3
    p.compare_mode.run()
    assert p.wait(10)
    assert len(qwen_env.chat_requests) == 6
    assert p.compare_mode.comparison is not None and len(p.compare_mode.comparison.df) == 6


def test_compare_takes_two_to_six_distinct_settings(make, qwen_env: Emulator) -> None:
    p = make("Hi", model="qwen-plus")
    mode = p.compare_mode
    add_settings(p, 0.5)
    assert mode.run_button.disabled
    mode.run_button.click()  # a click that reaches the kernel anyway
    assert "at least 2" in mode.note.value and qwen_env.chat_requests == []
    p.compare_mode.add_button.click()
    assert len(mode.settings) == 1 and "already" in mode.note.value
    add_settings(p, 0.6, 0.7, 0.8, 0.9, 1.0)
    assert len(mode.settings) == 6 and mode.add_button.disabled
    p.temperature.value = 1.1
    assert not mode.add()
    assert "at most 6" in mode.note.value and len(mode.settings) == 6
    mode.clear_button.click()
    assert mode.settings == [] and mode.run_button.disabled
    p.seed.value = "x"
    assert not mode.add() and "seed must be a whole number" in mode.note.value


def test_stop_ends_a_comparison_and_keeps_what_arrived(make, qwen_env: Emulator) -> None:
    qwen_env.token_delay = 1.0
    p = make("Write a long story", model="qwen-plus")
    add_settings(p, 0.3, 1.3)
    p.compare_mode.run_button.click()
    # both requests went out, and both cells left "queued": their first token arrived (the next
    # chunk is a second away)
    wait_until(
        lambda: len(qwen_env.chat_requests) == 2 and "queued" not in compared(p), what="both first tokens"
    )
    started = time.monotonic()
    p.stop_button.click()
    assert p.wait(5)
    took = time.monotonic() - started
    assert took < 0.8, f"Stop took {took:.2f}s"  # it did not wait for the next chunk
    comparison = p.compare_mode.comparison
    assert comparison is not None and comparison.interrupted
    assert len(comparison.responses) == 2
    assert all(r.interrupted and r.partial_text for r in comparison.responses)
    assert "stopped" in compared(p) and "comparison of 2 settings: stopped" in p.status.value
    assert panel_threads() == [] and not p.compare_mode.run_button.disabled


def test_stop_closes_every_stream_of_a_comparison(make, qwen_env: Emulator) -> None:
    qwen_env.generator = SimpleGenerator(length=300)
    qwen_env.token_delay = 0.02  # about 6 s for a whole answer
    p = make("Write a long story", model="qwen-plus")
    add_settings(p, 0.3, 0.8, 1.3)
    p.compare_mode.run_button.click()
    wait_until(lambda: len(qwen_env.chat_requests) == 3, timeout=10, what="three requests")
    time.sleep(0.3)
    pressed = time.time()
    p.stop_button.click()
    assert p.wait(5)
    comparison = p.compare_mode.comparison
    assert comparison is not None and comparison.interrupted
    assert all(r.interrupted and r.partial_text.startswith("You asked") for r in comparison.responses)
    wait_until(
        lambda: all(r.client_closed for r in qwen_env.chat_requests) and not open_connections(qwen_env),
        timeout=10,
        what="every stream closed",
    )
    assert all(r.client_closed - pressed < 0.5 for r in qwen_env.chat_requests)  # type: ignore[operator]
    assert [t.name for t in threading.enumerate() if t.name.startswith("qwen-")] == ["qwen-emulator"]


def test_highlighting_differences_redraws_the_grid(make, qwen_env: Emulator) -> None:
    p = make("Name a colour", model="qwen-plus")
    add_settings(p, 0.1, 0.9)
    p.compare_mode.run()
    assert p.wait(10)
    before = compared(p)
    p.compare_mode.diff.value = True
    after = compared(p)
    assert after != before and "<mark" in after


def test_a_refused_key_is_explained_without_showing_it(make, qwen_env: Emulator, monkeypatch) -> None:
    wrong = "sk-wrong-fake-key-0123456789-QRST"
    monkeypatch.setenv("DASHSCOPE_API_KEY", wrong)
    p = make("Hello", model="qwen-plus")
    run_to_end(p)
    shown_text = p.output.outputs[0]["data"]["text/plain"]
    assert "refused" in shown_text and p.runs[-1].state == "error"
    everything = [shown_text, p.runs_view.value, p.code, p.code_view.value, p.status.value, repr(p)]
    assert not any(wrong in text or wrong[3:] in text for text in everything)
