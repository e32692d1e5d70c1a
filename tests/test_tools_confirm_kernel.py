"""``--confirm`` in a real kernel: Run / Refuse buttons answered while the cell is busy, as a front end
clicks them (a comm message on the shell channel), and the one-line record that replaces them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from jupyter_client.manager import KernelManager

from qwen_magics.emulator import Emulator

from .kernels import kernel_env, press_stop, running_kernel

pytestmark = pytest.mark.kernel

DEFS = '''
%load_ext qwen_magics
ran = []
def get_weather(city: str) -> str:
    """Get the current weather for a city."""
    ran.append(city)
    return f"rain in {city}, 12 C"
'''
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
CELL = "%%qwen -m qwen-plus --tools get_weather --confirm\nWeather in Oslo?"


@pytest.fixture
def kernel(emulator: Emulator) -> Iterator[tuple[KernelManager, Any]]:
    with running_kernel(kernel_env(emulator)) as (km, kc):
        reply = kc.execute_interactive(DEFS, timeout=60, output_hook=lambda msg: None)
        assert reply["content"]["status"] == "ok"
        yield km, kc


def buttons(kc: Any, msg_id: str, timeout: float = 30) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Wait for the question (a row of a label and two buttons); return the comm ids of its buttons
    by label, and the messages so far."""
    states: dict[str, dict[str, Any]] = {}
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        seen.append(msg)
        content = msg["content"]
        if msg["msg_type"] == "comm_open":
            states[content["comm_id"]] = content["data"]["state"]
        view = content.get("data", {}).get(WIDGET_VIEW) if msg["msg_type"] == "display_data" else None
        if view is not None and states.get(view["model_id"], {}).get("_model_name") == "HBoxModel":
            children = [c.removeprefix("IPY_MODEL_") for c in states[view["model_id"]]["children"]]
            found = {
                states[c]["description"]: c for c in children if states[c].get("_model_name") == "ButtonModel"
            }
            return found, seen
        assert msg["msg_type"] != "status" or content["execution_state"] != "idle", "no question came"
    raise AssertionError("no question came")


def click(kc: Any, comm_id: str) -> None:
    """What JupyterLab sends when a button is clicked."""
    msg = kc.session.msg(
        "comm_msg", {"comm_id": comm_id, "data": {"method": "custom", "content": {"event": "click"}}}
    )
    kc.shell_channel.send(msg)


def finish(kc: Any, msg_id: str, seen: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    while True:
        msg = kc.get_iopub_msg(timeout=30)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        seen.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return kc.get_shell_msg(timeout=30)["content"], seen


def value(kc: Any, code: str) -> str:
    reply = kc.execute_interactive(
        code, timeout=30, output_hook=lambda msg: None, user_expressions={"v": code}
    )
    return reply["content"]["user_expressions"]["v"]["data"]["text/plain"]


def record_lines(seen: list[dict[str, Any]]) -> list[str]:
    return [
        m["content"]["data"].get("text/plain", "") for m in seen if m["msg_type"] == "update_display_data"
    ]


def test_run_clicked_while_the_cell_waits_runs_the_call(
    kernel: tuple[KernelManager, Any], emulator: Emulator
) -> None:
    _, kc = kernel
    msg_id = kc.execute(CELL)
    found, seen = buttons(kc, msg_id)
    assert set(found) == {"Run", "Refuse"}
    question = next(
        m
        for m in seen
        if m["msg_type"] == "comm_open" and m["content"]["data"]["state"].get("_model_name") == "HTMLModel"
    )
    assert "get_weather(city=&#x27;Oslo&#x27;)" in question["content"]["data"]["state"]["value"]
    assert emulator.chat_requests and len(emulator.chat_requests) == 1  # the loop waits for the answer
    click(kc, found["Run"])
    reply, seen = finish(kc, msg_id, seen)
    assert reply["status"] == "ok"
    assert "ran get_weather(city='Oslo')" in record_lines(seen)
    assert value(kc, "ran") == "['Oslo']"
    assert value(kc, "_qwen.tool_calls[0].result") == "'rain in Oslo, 12 C'"
    assert len(emulator.chat_requests) == 2


def test_refuse_goes_back_to_the_model_and_nothing_runs(
    kernel: tuple[KernelManager, Any], emulator: Emulator
) -> None:
    _, kc = kernel
    msg_id = kc.execute(CELL)
    found, seen = buttons(kc, msg_id)
    click(kc, found["Refuse"])
    reply, seen = finish(kc, msg_id, seen)
    assert reply["status"] == "ok"
    assert "refused get_weather(city='Oslo')" in record_lines(seen)
    assert value(kc, "ran") == "[]"
    assert value(kc, "_qwen.tool_calls[0].error") == "'the user declined to run this call'"
    sent = emulator.chat_requests[-1].body["messages"][-1]
    assert sent["role"] == "tool" and sent["content"] == "Error: the user declined to run this call"


def test_stop_while_the_question_waits_ends_the_loop_and_keeps_the_trace(
    kernel: tuple[KernelManager, Any], emulator: Emulator
) -> None:
    km, kc = kernel
    msg_id = kc.execute(CELL)
    buttons(kc, msg_id)
    reply, _, _ = press_stop(km, kc, msg_id)
    assert reply["status"] == "ok"
    assert value(kc, "ran") == "[]"
    assert value(kc, "_qwen.tool_calls[0].error") == "'interrupted before it was confirmed'"
    assert len(emulator.chat_requests) == 1


def test_a_run_without_input_refuses_rather_than_waiting(
    kernel: tuple[KernelManager, Any], emulator: Emulator
) -> None:
    _, kc = kernel
    msg_id = kc.execute(CELL, allow_stdin=False)  # as nbconvert and nbval run a notebook
    reply, seen = finish(kc, msg_id, [])
    assert reply["status"] == "ok"
    shown = [m["content"]["data"].get("text/plain", "") for m in seen if m["msg_type"] == "display_data"]
    assert "refused get_weather(city='Oslo') (no one to ask: this run takes no input)" in shown
    assert value(kc, "ran") == "[]"


@pytest.mark.parametrize(
    "code",
    [
        "import qwen_magics as qm\n"
        "r = qm.ask('Weather in Oslo?', model='qwen-plus', tools=[get_weather], confirm=True).complete()",
        "import qwen_magics as qm\n"
        "r = await (await qm.aask('Weather in Oslo?', model='qwen-plus', tools=[get_weather], confirm=True))"
        ".acomplete()",
    ],
    ids=["ask", "aask"],
)
def test_ask_and_aask_in_a_notebook_ask_with_the_same_buttons(
    kernel: tuple[KernelManager, Any], code: str
) -> None:
    _, kc = kernel
    msg_id = kc.execute(code)
    found, seen = buttons(kc, msg_id)
    click(kc, found["Run"])
    reply, seen = finish(kc, msg_id, seen)
    assert reply["status"] == "ok"
    assert "ran get_weather(city='Oslo')" in record_lines(seen)
    assert value(kc, "r.tool_calls[0].result") == "'rain in Oslo, 12 C'"


def test_a_comparison_asks_each_cells_calls_with_the_buttons(kernel: tuple[KernelManager, Any]) -> None:
    _, kc = kernel
    msg_id = kc.execute(
        "import qwen_magics as qm\n"
        "c = qm.compare('Weather in Oslo?', model=['qwen-plus', 'qwen3.6-plus'],\n"
        "               tools=[get_weather], confirm=True)"
    )
    found, seen = buttons(kc, msg_id)
    click(kc, found["Run"])
    second, more = buttons(kc, msg_id)
    assert set(second) == {"Run", "Refuse"} and second != found  # the next cell's question
    click(kc, second["Refuse"])
    reply, seen = finish(kc, msg_id, seen + more)
    assert reply["status"] == "ok"
    lines = record_lines(seen)
    assert "ran get_weather(city='Oslo')" in lines and "refused get_weather(city='Oslo')" in lines
    assert value(kc, "ran") == "['Oslo']"
    assert value(kc, "sorted(str(t.error) for r in c.responses for t in r.tool_calls)") == (
        "['None', 'the user declined to run this call']"
    )


def test_a_notebook_that_never_loaded_the_extension_still_asks_with_buttons(emulator: Emulator) -> None:
    plain = DEFS.replace("%load_ext qwen_magics", "import qwen_magics as qm")
    with running_kernel(kernel_env(emulator)) as (_, kc):
        assert (
            kc.execute_interactive(plain, timeout=60, output_hook=lambda msg: None)["content"]["status"]
            == "ok"
        )
        msg_id = kc.execute(
            "r = qm.ask('Weather in Oslo?', model='qwen-plus', tools=[get_weather], confirm=True).complete()"
        )
        found, seen = buttons(kc, msg_id)
        click(kc, found["Refuse"])
        reply, seen = finish(kc, msg_id, seen)
        assert reply["status"] == "ok"
        assert "refused get_weather(city='Oslo')" in record_lines(seen)
        assert value(kc, "ran") == "[]"
