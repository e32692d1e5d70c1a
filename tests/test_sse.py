"""SSE framing: events come out the same however the bytes are cut."""

from __future__ import annotations

from qwen_magics.api.response import ChunkParser, Usage
from qwen_magics.api.sse import SSEDecoder

BODY = (
    b": comment line\n\n"
    b'data: {"choices":[{"delta":{"content":null,"reasoning_content":"Th\xc3\xa9","role":"assistant"},'
    b'"finish_reason":null,"index":0}],"id":"chatcmpl-abc","model":"qwen3.6-plus"}\n\n'
    b'data: {"choices":[{"delta":{"content":"\xe4\xbd\xa0\xe5\xa5\xbd","reasoning_content":null},'
    b'"finish_reason":null,"index":0}],"id":"chatcmpl-abc"}\r\n\r\n'
    b'data: {"choices":[{"delta":{"content":" end"},"finish_reason":"stop","index":0}],'
    b'"id":"chatcmpl-abc"}\n\n'
    b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7,'
    b'"completion_tokens_details":{"reasoning_tokens":1},"prompt_tokens_details":{"cached_tokens":2}}}\n\n'
    b"data: [DONE]\n\n"
)


def decode(parts: list[bytes]) -> list[str]:
    decoder = SSEDecoder()
    out: list[str] = []
    for part in parts:
        out.extend(decoder.feed(part))
    out.extend(decoder.flush())
    return out


def test_every_single_cut_gives_the_same_events() -> None:
    whole = decode([BODY])
    assert len(whole) == 5
    for i in range(len(BODY) + 1):
        assert decode([BODY[:i], BODY[i:]]) == whole


def test_byte_by_byte_keeps_multibyte_characters() -> None:
    events = decode([BODY[i : i + 1] for i in range(len(BODY))])
    assert "你好" in events[1]
    assert "Thé" in events[0]


def test_last_event_without_blank_line_still_counts() -> None:
    assert decode([b"data: [DONE]"]) == ["[DONE]"]


def test_chunk_parser_reads_phases_finish_text_and_usage() -> None:
    parser = ChunkParser()
    events = [e for data in decode([BODY]) for e in parser.feed(data)]
    kinds = [(e.type, e.text) for e in events]
    assert kinds[:3] == [("start", ""), ("reasoning", "Thé"), ("text", "你好")]
    assert ("text", " end") in kinds  # text inside the finish chunk is kept
    assert [e.data for e in events if e.type == "finish"] == ["stop"]
    usage = next(e.data for e in events if e.type == "usage")
    assert usage == Usage(
        prompt_tokens=3, completion_tokens=4, reasoning_tokens=1, cached_tokens=2, total_tokens=7
    )
    assert parser.done


def test_error_chunk_becomes_an_error_event() -> None:
    parser = ChunkParser()
    events = parser.feed(
        '{"error":{"message":"Output data may contain inappropriate content.",'
        '"type":"data_inspection_failed","code":"data_inspection_failed"}}'
    )
    assert events[0].type == "error"
    assert events[0].data.code == "data_inspection_failed"
    assert parser.failed
