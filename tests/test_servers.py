"""Other OpenAI-compatible servers, as the emulator reproduces them: when a stream is whole, and the
server's own words in every error shape they answer with."""

from __future__ import annotations

import json

import pytest

from qwen_magics import APIError, ask
from qwen_magics.api.response import ChunkParser
from qwen_magics.emulator import Emulator
from qwen_magics.errors import ServerError, server_words

from .outputs import rendered, run

VLLM = {
    "object": "error",
    "message": "max_tokens must be >= 1.",
    "type": "BadRequestError",
    "code": 400,
}
PYDANTIC = {"detail": [{"loc": ["body", "temperature"], "msg": "Input should be less than 2", "type": "x"}]}
PROXY_PAGE = (
    "<html><head><title>502 Bad Gateway</title><style>h1{color:red}</style></head>"
    "<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx/1.25.3</center></body></html>"
)
NESTED = {"error": {"message": "Range of top_p should be (0.0, 1.0]", "code": "InvalidParameter"}}
FASTAPI = {"detail": "Unexpected fields in the request: {'enable_thinking'}"}
JSON, TEXT = "application/json", "text/plain"


@pytest.mark.parametrize(
    ("status", "body", "content_type", "words"),
    [
        (400, json.dumps(NESTED), JSON, "400 InvalidParameter: Range of top_p should be (0.0, 1.0]"),
        (400, json.dumps(VLLM), JSON, "400: max_tokens must be >= 1."),
        (422, json.dumps(FASTAPI), JSON, "422: Unexpected fields in the request: {'enable_thinking'}"),
        (422, json.dumps(PYDANTIC), JSON, "422: body.temperature: Input should be less than 2"),
        (400, json.dumps({"error": "model 'qwen9' not found"}), JSON, "400: model 'qwen9' not found"),
        (404, json.dumps({"message": "no such route"}), JSON, "404: no such route"),
        (400, "the prompt is too long for this model", TEXT, "400: the prompt is too long for this model"),
        (409, "", TEXT, "409: Conflict (the server gave no message)"),
    ],
)
def test_every_error_shape_shows_the_servers_words(
    qwen_env: Emulator, status: int, body: str, content_type: str, words: str
) -> None:
    qwen_env.add_fault("body", status=status, body=body, content_type=content_type)
    with pytest.raises(APIError) as caught:
        ask("hello", thinking=False).text  # noqa: B018 - reading the text waits for the answer
    assert str(caught.value).startswith(words), str(caught.value)
    assert caught.value.status == status and "{" not in caught.value.message.replace(
        "{'enable_thinking'}", ""
    )


def test_a_proxys_html_page_is_its_title_and_a_502_is_retried(qwen_env: Emulator) -> None:
    qwen_env.add_fault("body", status=502, body=PROXY_PAGE, content_type="text/html", times=None)
    with pytest.raises(ServerError) as caught:
        ask("hello", thinking=False).text  # noqa: B018
    assert caught.value.message == "502 Bad Gateway" and "<" not in str(caught.value)
    assert len(qwen_env.chat_requests) > 1  # retried, as a 502 always was


def test_server_words_reads_bodies_it_was_given_decoded() -> None:
    assert server_words(400, VLLM) == ("max_tokens must be >= 1.", None, "BadRequestError")
    assert server_words(500, None)[0] == "Internal Server Error (the server gave no message)"
    assert server_words(503, "<!DOCTYPE html><html><body><h1>Service <b>Unavailable</b></h1>")[0] == (
        "Service Unavailable"
    )


def test_a_stream_that_gave_its_finish_reason_is_whole_without_done(qwen_env: Emulator) -> None:
    qwen_env.add_fault("no_done")
    r = ask("hello", thinking=False)
    assert r.text and not r.incomplete and r.error is None and r.finish_reason == "stop"
    assert "cut short" not in r.footer()


def test_a_stream_cut_before_its_finish_reason_is_still_incomplete(qwen_env: Emulator) -> None:
    qwen_env.add_fault("cut", after=3)
    r = ask("hello", thinking=False)
    r.text  # noqa: B018
    assert r.incomplete and r.partial_text


def test_a_server_that_sends_no_usage_says_so_and_its_cost_is_unknown(qwen_env: Emulator) -> None:
    qwen_env.add_fault("no_usage")
    r = ask("hello", thinking=False)
    assert r.text and not r.incomplete
    assert r.cost is None and not r.usage.reported
    footer = r.footer()
    assert "usage not reported" in footer and "cost unknown" in footer and "$" not in footer


# -- reasoning, as other servers send it ------------------------------------------------------------
@pytest.mark.parametrize("kind", ["reasoning_field", "think_inline"])
def test_reasoning_from_other_servers_lands_in_reasoning(qwen_env: Emulator, kind: str) -> None:
    expected = ask("Why is the sky blue?", thinking=True)
    qwen_env.add_fault(kind)
    r = ask("Why is the sky blue?", thinking=True)
    assert r.reasoning == expected.reasoning and r.text == expected.text  # tags split across chunks too
    assert "<think>" not in r.text and "</think>" not in r.reasoning and not r.incomplete


def test_the_thinking_block_shows_inline_reasoning(ip, qwen_env: Emulator) -> None:  # type: ignore[no-untyped-def]
    qwen_env.add_fault("think_inline")
    cap = run(ip, "%%qwen --thinking\nWhy is the sky blue?")
    final = "\n\n".join(b.get("text/markdown", "") for b in rendered(cap.outputs))
    response = ip.user_ns["_qwen"]
    assert response.reasoning and "<think>" not in final and "qwen-thinking" in final
    assert response.text in final


@pytest.mark.parametrize("thinking", [True, False])
def test_blank_lines_around_a_reasoning_field_are_neither_thinking_nor_answer(
    qwen_env: Emulator, thinking: bool
) -> None:
    expected = ask("Why is the sky blue?", thinking=thinking)
    qwen_env.add_fault("think_blanks")  # as transformers serve streams Qwen3
    r = ask("Why is the sky blue?", thinking=thinking)
    assert r.text == expected.text and not r.text.startswith("\n")
    assert r.reasoning == expected.reasoning and bool(r.reasoning) is thinking


def test_a_cell_without_thinking_shows_no_thinking_block_for_a_blank_one(ip, qwen_env: Emulator) -> None:  # type: ignore[no-untyped-def]
    qwen_env.add_fault("think_blanks")
    cap = run(ip, "%%qwen --no-thinking\nWhy is the sky blue?")
    final = "\n\n".join(b.get("text/markdown", "") for b in rendered(cap.outputs))
    assert "qwen-thinking" not in final and ip.user_ns["_qwen"].text in final


@pytest.mark.parametrize(
    ("pieces", "reasoning", "text"),
    [
        (["<think>", "a b", "</think>", "\n\nan", "swer"], "a b", "answer"),
        (["<", "think>\nx", "</th", "ink>answer"], "x", "answer"),
        (["<thin"], "", "<thin"),  # never became a tag: kept as text at the end
        (["  no tags, < and > stay"], "", "  no tags, < and > stay"),
        (
            ["The <think> tag is only special at the start"],
            "",
            "The <think> tag is only special at the start",
        ),
    ],
)
def test_inline_think_tags_are_read_across_chunks(pieces: list[str], reasoning: str, text: str) -> None:
    parser = ChunkParser()
    events = []
    for piece in pieces:
        events += parser.feed(json.dumps({"choices": [{"index": 0, "delta": {"content": piece}}]}))
    events += parser.feed(json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    assert "".join(e.text for e in events if e.type == "reasoning") == reasoning
    assert "".join(e.text for e in events if e.type == "text") == text


def test_apply_counts_answers_without_usage_as_unknown(qwen_env: Emulator) -> None:
    import pandas as pd

    from qwen_magics import apply

    qwen_env.add_fault("no_usage", times=2)
    rows = pd.DataFrame({"name": ["Ada", "Alan", "Grace"]})
    out = apply(rows, "Describe {name} as JSON", concurrency=1, progress=False)
    usage = out.attrs["usage"]
    assert usage["rows_not_reported"] == 2 and usage["total_tokens"] > 0  # the third row's own count
