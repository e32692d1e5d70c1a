"""%%qwen through a real IPython shell against the emulator: what is displayed, and when."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from IPython.utils.capture import CapturedIO, capture_output

from qwen_magics.emulator import Emulator
from qwen_magics.emulator.answers import SimpleGenerator

from .conftest import TEST_KEY
from .outputs import rendered_markdown
from .waiting import CtrlC


@pytest.fixture
def slow(qwen_env: Emulator) -> Iterator[Emulator]:
    """A long answer (about 160 tokens) streamed at 100 tokens a second."""
    qwen_env.generator = SimpleGenerator(length=150)
    qwen_env.token_delay = 0.01
    yield qwen_env


def cell(ip, line: str, body: str):  # type: ignore[no-untyped-def]
    with capture_output() as cap:
        ip.run_cell_magic("qwen", line, body)
    return cap


def expected_answer(prompt: str, temperature: float | None = None) -> str:
    return "".join(SimpleGenerator().answer(prompt, temperature=temperature))


def test_answer_streams_into_one_display_that_ends_with_the_exact_answer(ip, qwen_env) -> None:
    cap = cell(ip, "--no-thinking", "What is a prime number?")
    outputs = cap.outputs
    assert len(outputs) >= 2
    assert not outputs[0].update and all(o.update for o in outputs[1:])
    assert len({o.transient["display_id"] for o in outputs}) == 1
    final = outputs[-1].data
    answer = expected_answer("What is a prime number?")
    assert ip.user_ns["_qwen"].text == answer
    assert set(final) == {"text/markdown", "text/plain"}
    assert final["text/markdown"].startswith(answer)
    assert final["text/plain"].startswith(answer)
    footer = final["text/markdown"].rsplit("<sub>", 1)[1]
    for part in ("qwen3.6-plus", " in / ", " out", "first token", "total", "tok/s", "(est.)"):
        assert part in footer


def test_waiting_placeholder_is_shown_before_the_first_token(ip, qwen_env) -> None:
    qwen_env.latency = 0.3
    cap = cell(ip, "--no-thinking", "hello")
    first = cap.outputs[0].data
    assert "waiting for the first token" in first["text/markdown"]
    assert "You asked" not in first["text/markdown"]
    assert ip.user_ns["_qwen"].ttft >= 0.3


def test_redraws_are_bounded_whatever_the_token_rate(ip, slow) -> None:
    started = time.perf_counter()
    cap = cell(ip, "--no-thinking", "count slowly")
    elapsed = time.perf_counter() - started
    draws = len(cap.outputs)
    assert elapsed > 1.2  # the stream really was slow
    assert draws <= 15 * elapsed + 1
    assert draws >= 5  # and it was redrawn while streaming, not only at the end
    texts = [o.data["text/markdown"].rsplit("\n\n<sub>", 1)[0] for o in cap.outputs[1:-1]]
    assert texts == sorted(texts, key=len)  # each redraw shows more of the same answer
    assert cap.outputs[-1].data["text/plain"].startswith(ip.user_ns["_qwen"].text)


def test_thinking_block_is_open_while_thinking_and_folds_when_the_answer_starts(ip, qwen_env) -> None:
    qwen_env.token_delay = 0.01  # about 15 reasoning tokens, then the answer: 0.3 s
    cap = cell(ip, "--thinking", "why is the sky blue")
    marks = [o.data["text/markdown"] for o in cap.outputs]
    thinking_only = [m for m in marks[1:] if "<details open" in m]
    assert thinking_only, "the reasoning was never shown open while it streamed"
    assert all("You asked" not in m for m in thinking_only)
    final = rendered_markdown(cap.outputs)
    assert "<details class='qwen-thinking'><summary>Thinking</summary>" in final
    assert "The question is about why is the sky blue" in final
    assert final.index("</details>") < final.index("You asked")
    assert ip.user_ns["_qwen"].reasoning.startswith("The question is about")


def test_raw_shows_plain_text_only(ip, qwen_env) -> None:
    cap = cell(ip, "--raw --no-thinking", "plain please")
    assert all(set(o.data) == {"text/plain"} for o in cap.outputs)
    assert cap.outputs[-1].data["text/plain"].startswith(expected_answer("plain please"))


def test_no_stream_sends_stream_false_and_shows_the_whole_answer(ip, qwen_env) -> None:
    cap = cell(ip, "--no-stream --no-thinking", "all at once")
    assert qwen_env.chat_requests[-1].body["stream"] is False
    assert cap.outputs[-1].data["text/markdown"].startswith(expected_answer("all at once"))
    assert not ip.user_ns["_qwen"].incomplete


def test_qwen_is_the_last_response_and_out_keeps_it_too(ip, qwen_env) -> None:
    cell(ip, "--no-thinking", "first")
    first = ip.user_ns["_qwen"]
    cell(ip, "--no-thinking -o answer", "second")
    assert ip.user_ns["_qwen"] is ip.user_ns["answer"] is not first
    assert ip.user_ns["answer"].text == expected_answer("second")


def test_response_displays_itself_richly_when_shown_again(ip, qwen_env) -> None:
    cell(ip, "--no-thinking", "show me again")
    response = ip.user_ns["_qwen"]
    data, _ = ip.display_formatter.format(response)
    assert data["text/markdown"].startswith(expected_answer("show me again"))
    assert "qwen3.6-plus" in data["text/markdown"]


def test_cut_connection_keeps_the_partial_answer_marked_incomplete(ip, qwen_env) -> None:
    qwen_env.add_fault("cut", after=4)
    cap = cell(ip, "--no-thinking", "this will break")
    response = ip.user_ns["_qwen"]
    assert response.incomplete and not response.interrupted
    assert response.partial_text and expected_answer("this will break").startswith(response.partial_text)
    final = cap.outputs[-1].data["text/markdown"]
    assert final.startswith(response.partial_text)
    assert "Incomplete:" in final and "incomplete:" in final.rsplit("<sub>", 1)[1]


def test_an_answer_cut_at_max_tokens_says_so_in_its_footer(ip, qwen_env) -> None:
    cap = cell(ip, "--no-thinking --max-tokens 4", "Describe the sea.")
    response = ip.user_ns["_qwen"]
    assert response.truncated and response.max_tokens == 4 and response.finish_reason == "length"
    assert response.usage.completion_tokens == 4
    assert not response.incomplete  # the answer was cut by request, not broken
    footer = cap.outputs[-1].data["text/markdown"].rsplit("<sub>", 1)[1]
    assert "4 out · stopped at max_tokens (4) · " in footer
    assert "stopped at max_tokens (4)" in cap.outputs[-1].data["text/plain"]
    cap = cell(ip, "--no-thinking --max-tokens 200", "Describe the sea.")  # ends on its own
    assert not ip.user_ns["_qwen"].truncated
    assert "stopped at" not in cap.outputs[-1].data["text/markdown"]


def answer_shown(cap: CapturedIO) -> bool:
    """Some of the answer is on screen: when a user presses stop."""
    return any("You asked" in o.data.get("text/markdown", "") for o in cap.outputs)


def test_interrupt_keeps_partial_text_and_marks_it_interrupted(ip, slow) -> None:
    with capture_output() as cap, CtrlC(lambda: answer_shown(cap), what="the answer to show") as ctrl_c:
        ip.run_cell_magic("qwen", "--no-thinking", "a long story")  # the interrupt is swallowed
        ended = time.perf_counter()
    stopped_after = ended - ctrl_c.pressed_at
    # the rest of the answer would take about 1.5 s; stopping takes milliseconds
    assert stopped_after < 1.0, f"the cell ended {stopped_after:.2f}s after Ctrl-C"
    response = ip.user_ns["_qwen"]
    assert response.interrupted and response.incomplete
    full = "".join(SimpleGenerator(length=150).answer("a long story"))
    assert 0 < len(response.partial_text) < len(full) and full.startswith(response.partial_text)
    final = cap.outputs[-1].data["text/markdown"]
    assert response.partial_text in final
    assert "Interrupted:" in final and final.rsplit("<sub>", 1)[1].count("interrupted") == 1
    slow.token_delay = 0.0
    cell(ip, "--no-thinking", "still usable")  # the shell and the magic still work
    assert ip.user_ns["_qwen"].text == "".join(SimpleGenerator(length=150).answer("still usable"))


def long_reasoning(words: int = 300) -> str:
    return " ".join(f"step{i}" for i in range(words))


def test_stop_while_thinking_says_no_answer_yet_and_keeps_the_reasoning(ip, qwen_env) -> None:
    qwen_env.token_delay = 0.01  # 300 reasoning words: about 6 s of thinking before the answer
    qwen_env.queue_reply("The answer, at last.", reasoning=long_reasoning())
    with (
        capture_output() as cap,
        CtrlC(lambda: any("step5" in o.data.get("text/markdown", "") for o in cap.outputs), what="thinking"),
    ):
        ip.run_cell_magic("qwen", "--thinking", "think it over")
    response = ip.user_ns["_qwen"]
    assert response.interrupted and response.partial_text == ""
    assert response.partial_reasoning.startswith("step0 step1")
    final = rendered_markdown(cap.outputs)
    assert response.partial_reasoning in final  # in the folded Thinking block
    assert (
        "**Interrupted:** stopped while the model was still thinking: no answer yet; "
        "the reasoning so far is kept in Thinking, above." in final
    )
    assert "answer above is partial" not in final


def test_cut_while_thinking_says_no_answer_arrived(ip, qwen_env) -> None:
    qwen_env.queue_reply("The answer.", reasoning=long_reasoning(40))
    qwen_env.add_fault("cut", after=10)
    cap = cell(ip, "--thinking", "think, then break")
    response = ip.user_ns["_qwen"]
    assert response.incomplete and not response.interrupted and response.partial_reasoning
    final = rendered_markdown(cap.outputs)
    assert "**Incomplete:** " in final and "No answer yet; the reasoning so far is kept" in final


def test_api_error_is_one_message_box_without_traceback(ip, qwen_env, monkeypatch) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-wrong-fake-key-00000000")
    with capture_output() as cap:
        ip.run_cell("%%qwen --no-thinking\nhello")
    assert "Traceback" not in cap.stdout + cap.stderr
    assert len({o.transient["display_id"] for o in cap.outputs}) == 1  # the placeholder became the box
    box = cap.outputs[-1].data
    assert "401" in box["text/plain"] and "Run %qwen login again" in box["text/plain"]
    assert "DASHSCOPE_API_KEY" in box["text/html"]
    assert "sk-wrong" not in box["text/plain"] + box["text/html"]
    assert TEST_KEY not in box["text/plain"]
    assert "_qwen" not in ip.user_ns


def test_server_error_names_what_to_do(ip, qwen_env) -> None:
    qwen_env.add_fault("status", status=400, code="Arrearage", message="Access denied, overdue payment.")
    cap = cell(ip, "--no-thinking", "hello")
    text = cap.outputs[-1].data["text/plain"]
    assert text.startswith("Qwen API error: 400 Arrearage: Access denied, overdue payment.")
    assert "Check the parameters" in text


def test_interrupt_while_waiting_for_the_first_token_says_so(ip, qwen_env) -> None:
    qwen_env.latency = 5.0
    with CtrlC(lambda: qwen_env.chat_requests, what="the request") as ctrl_c:
        cap = cell(ip, "--no-thinking", "slow to start")
        ended = time.perf_counter()
    stopped_after = ended - ctrl_c.pressed_at
    assert stopped_after < 2.0, f"{stopped_after:.2f}s"  # the first token is 5 s away: it was not awaited
    assert len({o.transient["display_id"] for o in cap.outputs}) == 1  # the placeholder became the note
    assert cap.outputs[-1].data["text/plain"].startswith("Interrupted: stopped before the first token")
    assert "_qwen" not in ip.user_ns
