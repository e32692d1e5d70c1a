"""However the network cuts the SSE bytes, the client reads the same events (property tests)."""

from __future__ import annotations

import itertools

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qwen_magics import Client
from qwen_magics.api.response import ChunkParser, Event
from qwen_magics.api.sse import SSEDecoder
from qwen_magics.emulator.protocol import Completion

# text with multi-byte characters, quotes, backslashes, newlines and things that look like framing
pieces = st.text(
    alphabet=st.sampled_from(list('ab é你好🙂"\\\n:data[DONE]{}')) | st.characters(codec="utf-8"),
    min_size=1,
    max_size=12,
)


def stream_bytes(reasoning: list[str], answer: list[str]) -> bytes:
    completion = Completion(model="qwen3.6-plus", thinking=bool(reasoning))
    completion.reasoning_tokens, completion.answer_tokens = reasoning, answer
    return b"".join(completion.chunks(include_usage=True))


def events_of(parts: list[bytes]) -> list[Event]:
    decoder, parser = SSEDecoder(), ChunkParser()
    out: list[Event] = []
    for part in parts:
        for data in decoder.feed(part):
            out.extend(parser.feed(data))
    for data in decoder.flush():
        out.extend(parser.feed(data))
    assert parser.done
    return out


def cut(body: bytes, points: list[int]) -> list[bytes]:
    marks = sorted({p % (len(body) + 1) for p in points})
    edges = [0, *marks, len(body)]
    return [body[a:b] for a, b in itertools.pairwise(edges)]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(pieces, max_size=6),
    st.lists(pieces, min_size=1, max_size=6),
    st.lists(st.integers(min_value=0), max_size=40),
)
def test_any_split_gives_the_same_events(reasoning: list[str], answer: list[str], points: list[int]) -> None:
    body = stream_bytes(reasoning, answer)
    whole = events_of([body])
    assert events_of(cut(body, points)) == whole
    # blanks that lead the reasoning, and blank lines that lead the answer after it, are neither
    assert "".join(e.text for e in whole if e.type == "text") == (
        "".join(answer).lstrip("\n") if reasoning else "".join(answer)
    )
    assert "".join(e.text for e in whole if e.type == "reasoning") == "".join(reasoning).lstrip()


@settings(max_examples=40, deadline=None)
@given(st.lists(pieces, min_size=1, max_size=4), st.data())
def test_every_cut_inside_a_multibyte_character_is_survived(answer: list[str], data: st.DataObject) -> None:
    body = stream_bytes(["think"], answer)
    # every position that falls inside a multi-byte UTF-8 sequence
    inside = [i for i in range(1, len(body)) if body[i] & 0xC0 == 0x80]
    if inside:
        at = data.draw(st.sampled_from(inside))
        assert events_of([body[:at], body[at:]]) == events_of([body])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(pieces, min_size=1, max_size=5), st.lists(st.integers(min_value=0), max_size=30))
def test_the_client_reads_split_bodies_whole(clean_env: None, answer: list[str], points: list[int]) -> None:
    body = stream_bytes(["a thought"], answer)
    parts = cut(body, points)
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=iter(parts)))
    with Client(transport=transport, api_key="sk-split", base_url="http://split.test/v1") as client:
        response = client.ask("hi")
        assert response.text == "".join(answer).lstrip("\n")  # blank lines after the reasoning go
        assert response.reasoning == "a thought"
        assert not response.incomplete and response.usage.completion_tokens == len(answer) + 1


def reframed(body: bytes, crlf: bool, bare: bool, extras: bool) -> bytes:
    """The same events as other servers frame them: CRLF line ends, ``data:`` without its space,
    comment lines (DashScope's ``:HTTP_STATUS/200``) and ``id:``/``event:`` fields."""
    end = b"\r\n" if crlf else b"\n"
    out = [b":HTTP_STATUS/200" + end] if extras else []
    for i, event in enumerate(e for e in body.split(b"\n\n") if e):
        payload = event.removeprefix(b"data: ")
        if extras:
            out.append(b"id:%d%sevent: message%s: keep-alive%s" % (i, end, end, end))
        out.append((b"data:" if bare else b"data: ") + payload + end + end)
    return b"".join(out)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(pieces, max_size=4),
    st.lists(pieces, min_size=1, max_size=4),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.lists(st.integers(min_value=0), max_size=40),
)
def test_other_framings_split_anywhere_give_the_same_events(
    reasoning: list[str], answer: list[str], crlf: bool, bare: bool, extras: bool, points: list[int]
) -> None:
    body = stream_bytes(reasoning, answer)
    other = reframed(body, crlf, bare, extras)
    assert events_of(cut(other, points)) == events_of([body])
