"""%%qwen in a real Jupyter kernel: what a saved notebook holds, and the stop button."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from jupyter_client.manager import KernelManager

from qwen_magics.emulator import Emulator
from qwen_magics.emulator.answers import SimpleGenerator

from .conftest import TEST_KEY
from .kernels import kernel_env, press_stop, run, running_kernel

pytestmark = pytest.mark.kernel


def test_saved_notebook_holds_the_final_render_and_no_key(emulator: Emulator) -> None:
    import nbformat  # here, not at the top: collecting the in-process tests stays free of its 2 s import
    from nbclient import NotebookClient

    emulator.token_delay = 0.002
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext qwen_magics"),
        nbformat.v4.new_code_cell('topic = "tides"'),
        nbformat.v4.new_code_cell("%%qwen -t 0.3 --thinking\nExplain {topic} in one line."),
        nbformat.v4.new_code_cell("print(_qwen.text)"),
    ]
    NotebookClient(nb, timeout=60, kernel_name="python3").execute(env=kernel_env(emulator))

    answer = "".join(SimpleGenerator().answer("Explain tides in one line.", temperature=0.3))
    assert nb.cells[3].outputs[0].text.strip() == answer
    outputs = nb.cells[2].outputs
    # the folded Thinking block, then the answer: live updates replaced each display's frames
    assert len(outputs) == 2 and all(o.output_type == "display_data" for o in outputs)
    # the folded block is Markdown alone; the answer's plain text is whole, its reasoning included
    assert set(outputs[0].data) == {"text/markdown"} and set(outputs[1].data) == {
        "text/markdown",
        "text/plain",
    }
    thinking, saved = outputs
    assert thinking.data["text/markdown"].startswith("<details class='qwen-thinking'><summary>Thinking")
    markdown = saved.data["text/markdown"]
    assert answer in markdown and "waiting" not in markdown
    assert "first token" in markdown and "tok/s" in markdown and "(est.)" in markdown
    assert (
        saved.data["text/plain"].startswith("Thinking: ") and f"\n\n{answer}\n\n[" in saved.data["text/plain"]
    )
    text = nbformat.writes(nb)
    assert TEST_KEY not in text and TEST_KEY[-12:] not in text
    assert emulator.chat_requests[-1].body["messages"][-1]["content"] == "Explain tides in one line."


@pytest.fixture
def kernel(emulator: Emulator) -> Iterator[tuple[KernelManager, Any]]:
    with running_kernel(kernel_env(emulator)) as km_kc:
        yield km_kc


def test_stop_button_ends_the_stream_quickly_and_keeps_the_partial_answer(
    emulator: Emulator, kernel: tuple[KernelManager, Any]
) -> None:
    km, kc = kernel
    emulator.generator = SimpleGenerator(length=400)
    emulator.token_delay = 0.02  # about 8 s for the whole answer
    reply, _ = run(kc, "%load_ext qwen_magics")
    assert reply["status"] == "ok"

    msg_id = kc.execute("%%qwen --no-thinking\nTell a long story.")
    shown = []
    while True:  # wait until some of the answer is on screen
        msg = kc.get_iopub_msg(timeout=30)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "update_display_data":
            shown.append(msg["content"]["data"]["text/markdown"])
            if "You asked" in shown[-1]:
                break
    reply, final, took = press_stop(km, kc, msg_id)
    assert reply["status"] == "ok"  # the interrupt was taken: no traceback, the cell did not fail
    # the rest of the answer would take seconds; this bound only catches a stop that waits for it
    assert final is not None and took < 2.0, f"the final render came {took:.2f}s after the press"
    assert "Interrupted:" in final["text/markdown"] and "interrupted" in final["text/plain"]

    reply, messages = run(kc, "print(_qwen.interrupted, _qwen.incomplete, repr(_qwen.partial_text))")
    assert reply["status"] == "ok"  # the kernel is still usable
    out = "".join(m["content"].get("text", "") for m in messages if m["msg_type"] == "stream")
    interrupted, incomplete, partial = out.strip().split(" ", 2)
    assert (interrupted, incomplete) == ("True", "True")
    kept = eval(partial)
    full = "".join(SimpleGenerator(length=400).answer("Tell a long story."))
    assert kept.startswith("You asked") and full.startswith(kept) and len(kept) < len(full)
    assert kept in final["text/markdown"]


def test_a_question_in_a_kernel_is_sent_with_its_question_mark(
    emulator: Emulator, kernel: tuple[KernelManager, Any]
) -> None:
    _, kc = kernel
    run(kc, "%load_ext qwen_magics")
    reply, messages = run(kc, "%qwen --no-thinking What is the capital of France?")
    assert reply["status"] == "ok" and not reply.get("payload")  # no help pager
    assert emulator.chat_requests[-1].body["messages"][-1]["content"] == "What is the capital of France?"
    shown = [m["content"] for m in messages if m["msg_type"] in ("display_data", "update_display_data")]
    assert any("This is the emulator's answer" in c["data"].get("text/markdown", "") for c in shown)
    reply, _ = run(kc, "%qwen?")
    assert "--temperature" in str(reply["payload"])  # the help, in the pager


def shown_until(kc: Any, msg_id: str, text: str) -> None:
    """Wait until the cell's live display shows ``text``: when a user presses stop."""
    while True:
        msg = kc.get_iopub_msg(timeout=30)
        if (
            msg["parent_header"].get("msg_id") == msg_id
            and msg["msg_type"] == "update_display_data"
            and text in msg["content"]["data"].get("text/markdown", "")
        ):
            return


def stop_and_show(km: Any, kc: Any, msg_id: str) -> tuple[dict[str, Any], str]:
    """Press stop; the cell's reply and its Markdown as finally shown (every output, updates applied)."""
    km.interrupt_kernel()
    shown: dict[str, str] = {}
    while True:
        msg = kc.get_iopub_msg(timeout=10)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] in ("display_data", "update_display_data"):
            key = (msg["content"].get("transient") or {}).get("display_id") or str(len(shown))
            shown[key] = msg["content"]["data"].get("text/markdown", "")
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    return kc.get_shell_msg(timeout=10)["content"], "\n\n".join(shown.values())


def last_display(messages: list[dict[str, Any]]) -> dict[str, str]:
    shown = [m for m in messages if m["msg_type"] in ("display_data", "update_display_data")]
    return dict(shown[-1]["content"]["data"])


def test_stop_while_thinking_says_so_and_continue_says_what_it_continues(
    emulator: Emulator, kernel: tuple[KernelManager, Any]
) -> None:
    km, kc = kernel
    reply, _ = run(kc, "%load_ext qwen_magics")
    assert reply["status"] == "ok"
    reply, _ = run(kc, "%%qwen --no-thinking\nName a planet.")
    assert reply["status"] == "ok"

    # stopped while the model thinks: no answer yet, the reasoning kept
    emulator.token_delay = 0.02  # 300 reasoning words: about 6 s of thinking
    emulator.queue_reply("The answer, at last.", reasoning=" ".join(f"step{i}" for i in range(300)))
    msg_id = kc.execute("%%qwen --thinking\nThink it over.")
    shown_until(kc, msg_id, "step5")
    reply, markdown = stop_and_show(km, kc, msg_id)
    assert reply["status"] == "ok"
    assert "**Interrupted:** stopped while the model was still thinking: no answer yet" in markdown
    assert "answer above is partial" not in markdown and "step5" in markdown

    # -c continues the conversation from before the stopped cell, and says so
    emulator.token_delay = 0.0
    reply, messages = run(kc, "%%qwen -c --no-thinking\nAnd a moon?")
    assert reply["status"] == "ok"
    sent = emulator.chat_requests[-1].body["messages"]
    assert [m["content"] for m in sent if m["role"] == "user"] == ["Name a planet.", "And a moon?"]
    plain = last_display(messages)["text/plain"]
    assert "-c continues from before 'Think it over.': that cell kept no answer to send back" in plain

    # stopped mid-answer: -c sends the partial answer, and the history marks it partial
    emulator.generator = SimpleGenerator(length=400)
    emulator.token_delay = 0.02
    msg_id = kc.execute("%%qwen --no-thinking\nTell a long story.")
    shown_until(kc, msg_id, "You asked")
    reply, markdown = stop_and_show(km, kc, msg_id)
    assert reply["status"] == "ok" and "**Interrupted:** the answer above is partial." in markdown
    emulator.token_delay = 0.0
    reply, messages = run(kc, "%%qwen -c --no-thinking\nGo on.")
    assert reply["status"] == "ok"
    sent = emulator.chat_requests[-1].body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    partial = sent[1]["content"]
    assert partial.startswith("You asked") and "word399" not in partial
    assert "-c " not in last_display(messages)["text/plain"]  # it continued: nothing to explain
    reply, messages = run(kc, "%qwen history")
    assert f"qwen (partial: stopped before the end): {partial}" in last_display(messages)["text/plain"]
