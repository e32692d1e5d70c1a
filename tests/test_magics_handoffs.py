"""%%qwen options that hand off to structured output and the parameter panel."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from qwen_magics.emulator import Emulator


def cell(ip, line: str, body: str):  # type: ignore[no-untyped-def]
    with capture_output() as cap:
        ip.run_cell_magic("qwen", line, body)
    return cap


# -- structured output -----------------------------------------------------------------------
def test_json_asks_for_json_and_keeps_the_parsed_value(ip, qwen_env: Emulator) -> None:
    qwen_env.queue_reply('{"fact": "cats sleep a lot", "hours": 15}')
    cap = cell(ip, "--json -t 0.2", "One fact about cats, as JSON")
    request = qwen_env.chat_requests[-1]
    assert request.params["response_format"] == {"type": "json_object"}
    assert request.params["temperature"] == 0.2
    response = ip.user_ns["_qwen"]
    assert response.data == {"fact": "cats sleep a lot", "hours": 15}
    assert cap.outputs and "cats sleep a lot" in cap.outputs[-1].data["text/plain"]


def test_schema_and_multi_give_records_from_a_short_form(ip, qwen_env: Emulator) -> None:
    cell(ip, '-m qwen-plus --schema "name, age int" --multi -o people', "Three people")
    request = qwen_env.chat_requests[-1]
    assert request.params["model"] == "qwen-plus"
    assert request.params["response_format"]["type"] == "json_schema"
    people = ip.user_ns["people"]
    assert people is ip.user_ns["_qwen"]
    assert isinstance(people.data, list) and people.data
    assert all(set(record) == {"name", "age"} for record in people.data)


def test_schema_can_name_a_notebook_variable(ip, qwen_env: Emulator) -> None:
    ip.user_ns["Planet"] = {
        "type": "object",
        "properties": {"planet": {"type": "string"}, "moons": {"type": "integer"}},
        "required": ["planet", "moons"],
    }
    cell(ip, "-m qwen-plus --schema Planet", "A planet")
    sent = qwen_env.chat_requests[-1].params["response_format"]["json_schema"]["schema"]
    assert set(sent["properties"]) == {"planet", "moons"}
    assert set(ip.user_ns["_qwen"].data) == {"planet", "moons"}


def test_bad_schema_is_a_usage_error_and_nothing_is_sent(ip, qwen_env: Emulator) -> None:
    with pytest.raises(UsageError, match="--schema: unknown type 'wat' for 'age'"):
        ip.run_cell_magic("qwen", '--schema "name, age wat"', "people")
    assert qwen_env.requests == []


def test_json_that_never_comes_is_one_error_box(ip, qwen_env: Emulator) -> None:
    for _ in range(3):
        qwen_env.queue_reply("no json here at all")
    cap = cell(ip, "--json", "give json")
    assert "no usable JSON" in cap.outputs[-1].data["text/plain"]
    assert "_qwen" not in ip.user_ns


# -- the parameter panel ---------------------------------------------------------------------
def test_panel_option_opens_a_panel_preset_with_the_cell_options(ip, qwen_env: Emulator) -> None:
    cap = cell(ip, "--panel -m qwen-plus -t 0.4 --seed 3 -o p", "Write a haiku")
    assert "application/vnd.jupyter.widget-view+json" in cap.outputs[-1].data
    p = ip.user_ns["p"]
    assert p.prompt.value == "Write a haiku"
    assert p.temperature.value == pytest.approx(0.4)
    assert qwen_env.requests == []  # the panel asks only when Run is pressed


def test_qwen_panel_line_command_works_without_a_prompt(ip, qwen_env: Emulator) -> None:
    with capture_output() as cap:
        ip.run_line_magic("qwen", "panel")
    assert "application/vnd.jupyter.widget-view+json" in cap.outputs[-1].data


def test_panel_refuses_an_option_it_has_no_control_for(ip, qwen_env: Emulator) -> None:
    with pytest.raises(UsageError, match="--presence-penalty: the panel has no control for it"):
        ip.run_cell_magic("qwen", "--panel --presence-penalty 1", "hi")


# -- the comparison grid ---------------------------------------------------------------------
def test_compare_asks_every_setting_of_the_grid(ip, qwen_env: Emulator) -> None:
    cap = cell(ip, '--compare "temperature=0.1,0.9 top_p=0.5,0.95" --no-thinking -o grid', "Name a colour")
    sent = sorted((r.params["temperature"], r.params["top_p"]) for r in qwen_env.chat_requests)
    assert sent == [(0.1, 0.5), (0.1, 0.95), (0.9, 0.5), (0.9, 0.95)]
    assert all(r.params["enable_thinking"] is False for r in qwen_env.chat_requests)
    grid = ip.user_ns["grid"]
    assert len(grid) == 4 and grid.done
    assert all(r.text.startswith("You asked: Name a colour.") for r in grid.responses)
    assert cap.outputs  # the live grid was shown


def test_compare_grid_wins_over_the_same_cell_option_and_samples_repeat(ip, qwen_env: Emulator) -> None:
    cell(ip, '-t 0.5 --compare "temperature=0.2,0.8" --samples 2 --no-thinking', "Pick a number")
    temperatures = sorted(r.params["temperature"] for r in qwen_env.chat_requests)
    assert temperatures == [0.2, 0.2, 0.8, 0.8]


def test_bad_grid_is_a_usage_error_and_nothing_is_sent(ip, qwen_env: Emulator) -> None:
    with pytest.raises(UsageError, match="--compare"):
        ip.run_cell_magic("qwen", '--compare ""', "hi")
    with pytest.raises(UsageError, match="--samples goes with --compare"):
        ip.run_cell_magic("qwen", "--samples 3", "hi")
    assert qwen_env.requests == []
