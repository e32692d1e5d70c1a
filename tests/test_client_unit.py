"""The client against scripted answers on httpx.MockTransport: what it sends and how it reads."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

import httpx
import pytest

from qwen_magics import (
    APIConnectionError,
    APIError,
    AsyncClient,
    AuthenticationError,
    BadRequestError,
    Client,
    ConfigError,
    ParameterError,
    RateLimitError,
    Retry,
    ServerError,
    StreamInterrupted,
    configure,
)

KEY = "sk-unit-fake-key-0123456789-SECRET"
FAST = Retry(attempts=3, backoff=0.01, max_backoff=0.02)


def chunk(delta: dict, finish: str | None = None) -> bytes:
    body = {
        "choices": [{"delta": delta, "finish_reason": finish, "index": 0}],
        "id": "chatcmpl-r1",
        "model": "qwen-plus",
        "object": "chat.completion.chunk",
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


USAGE = b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}\n\n'
GOOD = [
    chunk({"content": "", "role": "assistant"}),
    chunk({"content": "Hi"}),
    chunk({"content": "!"}, "stop"),
    USAGE,
    b"data: [DONE]\n\n",
]


class Script:
    """A transport that answers each request with the next scripted reply and logs the requests."""

    def __init__(self, *replies: httpx.Response | Exception) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    @property
    def bodies(self) -> list[dict]:
        return [json.loads(r.content) for r in self.requests]


def sse(parts: list[bytes], status: int = 200, headers: dict | None = None) -> httpx.Response:
    def gen() -> Iterator[bytes]:
        yield from parts

    return httpx.Response(
        status, headers={"content-type": "text/event-stream", **(headers or {})}, content=gen()
    )


def client(script: Script, **kw) -> Client:  # type: ignore[no-untyped-def]
    return Client(
        transport=httpx.MockTransport(script),
        api_key=KEY,
        base_url="http://qwen.test/compatible-mode/v1",
        retry=FAST,
        **kw,
    )


def test_parameters_not_given_are_not_sent(clean_env: None) -> None:
    script = Script(sse(GOOD))
    r = client(script).ask("hello", model="qwen-plus")
    assert r.text == "Hi!"
    body = script.bodies[0]
    assert set(body) == {"model", "messages", "stream", "stream_options"}
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [{"role": "user", "content": "hello"}]


def test_user_names_map_to_wire_names(clean_env: None) -> None:
    script = Script(sse(GOOD))
    r = client(script).ask(
        "hi",
        model="qwen3.6-plus",
        system="be brief",
        temperature=0.3,
        top_p=0.9,
        top_k=20,
        presence_penalty=0.5,
        thinking=True,
        budget=100,
        max_tokens=50,
        seed=7,
        stop=["END"],
    )
    body = script.bodies[0]
    assert body["enable_thinking"] is True and body["thinking_budget"] == 100
    assert body["messages"][0] == {"role": "system", "content": "be brief"}
    assert {
        k: body[k]
        for k in ("temperature", "top_p", "top_k", "presence_penalty", "max_tokens", "seed", "stop")
    } == {
        "temperature": 0.3,
        "top_p": 0.9,
        "top_k": 20,
        "presence_penalty": 0.5,
        "max_tokens": 50,
        "seed": 7,
        "stop": ["END"],
    }
    assert r.params["thinking"] is True and "enable_thinking" not in r.params
    r.complete()
    assert r.usage.total_tokens == 7 and r.finish_reason == "stop" and r.request_id == "r1"


@pytest.mark.parametrize(
    ("kw", "param", "words"),
    [
        ({"temperature": 2.0}, "temperature", "[0, 2)"),
        ({"temperature": -0.1}, "temperature", "[0, 2)"),
        ({"top_p": 0}, "top_p", "(0, 1]"),
        ({"top_p": 1.5}, "top_p", "(0, 1]"),
        ({"presence_penalty": 2.5}, "presence_penalty", "[-2, 2]"),
        ({"max_tokens": 0}, "max_tokens", "[1, 32768]"),
        ({"seed": -1}, "seed", "[0, 2147483647]"),
        ({"seed": 2**31}, "seed", "[0, 2147483647]"),
        ({"seed": True}, "seed", "whole number"),
        ({"budget": 0, "thinking": True}, "budget", "(0, 38912]"),
        ({"top_k": -1}, "top_k", "[0,"),
        ({"thinking": "yes"}, "thinking", "True, False or None"),
        ({"response_format": {"type": "xml"}}, "response_format", "json_object"),
        ({"budget": 10}, "budget", "turn thinking on"),
        ({"stop": [1, 2]}, "stop", "list of strings"),
    ],
)
def test_bad_parameters_name_their_range_and_send_nothing(clean_env: None, kw, param, words) -> None:  # type: ignore[no-untyped-def]
    script = Script()
    with pytest.raises(ParameterError) as info:
        client(script).ask("hi", model="qwen-plus", **kw)
    assert info.value.param == param
    assert words in str(info.value)
    assert script.requests == []


def test_model_rules_are_checked_before_sending(clean_env: None) -> None:
    script = Script()
    c = client(script)
    with pytest.raises(ParameterError, match="always thinks"):
        c.ask("hi", model="qwq-plus", thinking=False)
    with pytest.raises(ParameterError, match="no thinking mode"):
        c.ask("hi", model="qwen3-max", thinking=True)
    with pytest.raises(ParameterError, match="JSON mode is refused while thinking"):
        c.ask("json please", model="qwen3.6-plus", response_format={"type": "json_object"})
    # thinking=False is no way out for a model that always thinks: name the models that can stop
    with pytest.raises(ParameterError, match=r"qwq-plus always thinks, .* turn thinking off \(qwen3\.6-plus"):
        c.ask("json please", model="qwq-plus", response_format={"type": "json_object"})
    with pytest.raises(ParameterError, match="only answers streaming"):
        c.ask("hi", model="qwq-plus", stream=False)
    with pytest.raises(ParameterError, match="empty"):
        c.ask("   ")
    with pytest.raises(ParameterError, match="control character"):
        c.ask("hi\x00there")
    with pytest.raises(ParameterError, match="invalid Unicode"):
        c.ask("bad \ud800 surrogate")
    assert script.requests == []


def test_error_body_as_json_and_as_one_sse_line(clean_env: None) -> None:
    err = {
        "error": {
            "code": "invalid_parameter_error",
            "param": None,
            "type": "invalid_request_error",
            "message": "Range of top_logprobs should be [0, 5]",
        },
        "id": "chatcmpl-x1",
    }
    as_json = httpx.Response(400, json=err, headers={"x-request-id": "x1"})
    as_sse = httpx.Response(400, content=b"data: " + json.dumps(err).encode() + b"\n\n")
    for reply in (as_json, as_sse):
        script = Script(reply)
        with pytest.raises(BadRequestError) as info:
            client(script).ask("hi")
        e = info.value
        assert (e.status, e.code, e.request_id) == (400, "invalid_parameter_error", "x1")
        assert "top_logprobs" in str(e)
        assert len(script.requests) == 1  # a 400 is not retried


def test_401_explains_regions_and_never_shows_the_key(clean_env: None, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    body = {
        "error": {
            "message": "Incorrect API key provided. ",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
        },
        "request_id": "q1",
    }
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
    monkeypatch.setenv("QWEN_REGION", "virginia")
    c = Client(transport=httpx.MockTransport(Script(httpx.Response(401, json=body))), retry=FAST)
    with pytest.raises(AuthenticationError) as info:
        c.ask("hi")
    text = str(info.value)
    assert "Virginia" in text and "region" in text and "DASHSCOPE_API_KEY" in text
    assert KEY not in text and KEY not in repr(info.value) and KEY not in repr(c)
    assert "sk-…CRET" in repr(c)


def test_retries_429_and_5xx_then_succeeds(clean_env: None) -> None:
    limit = {
        "error": {
            "message": "You have exceeded your current request limit.",
            "type": "limit_requests",
            "code": "limit_requests",
        }
    }
    script = Script(
        httpx.Response(429, json=limit), httpx.Response(503, json={"error": {"message": "x"}}), sse(GOOD)
    )
    r = client(script).ask("hi")
    assert r.text == "Hi!" and r.attempts == 3 and len(script.requests) == 3


def test_retries_are_bounded(clean_env: None) -> None:
    limit = {"error": {"message": "slow down", "code": "limit_requests"}}
    script = Script(*(httpx.Response(429, json=limit) for _ in range(3)))
    with pytest.raises(RateLimitError):
        client(script).ask("hi")
    assert len(script.requests) == 3


def test_retry_after_is_honoured(clean_env: None) -> None:
    assert Retry(max_backoff=5).delay(1, retry_after=2.0) == 2.0
    assert Retry(max_backoff=5).delay(1, retry_after=60.0) == 5.0
    delays = [Retry(backoff=1, jitter=0.5).delay(3) for _ in range(50)]
    assert all(2.0 <= d <= 4.0 for d in delays) and len(set(delays)) > 1


def test_connection_errors_are_retried_then_raised(clean_env: None) -> None:
    script = Script(httpx.ConnectError("refused"), sse(GOOD))
    assert client(script).ask("hi").text == "Hi!"
    script = Script(*(httpx.ConnectError("refused") for _ in range(3)))
    with pytest.raises(APIConnectionError, match="could not connect"):
        client(script).ask("hi")


def test_a_stream_that_breaks_after_tokens_keeps_them_and_is_not_retried(clean_env: None) -> None:
    def broken() -> Iterator[bytes]:
        yield GOOD[0]
        yield GOOD[1]
        raise httpx.RemoteProtocolError("peer closed connection")

    script = Script(httpx.Response(200, content=broken()), sse(GOOD))
    r = client(script).ask("hi")
    assert r.text == "Hi" and r.incomplete and isinstance(r.error, StreamInterrupted)
    assert len(script.requests) == 1


def test_a_stream_that_breaks_before_any_token_is_retried(clean_env: None) -> None:
    def broken() -> Iterator[bytes]:
        yield GOOD[0]
        raise httpx.ReadError("reset")

    script = Script(httpx.Response(200, content=broken()), sse(GOOD))
    r = client(script).ask("hi")
    assert r.text == "Hi!" and not r.incomplete and len(script.requests) == 2


def test_error_chunk_mid_stream_ends_with_that_error(clean_env: None) -> None:
    err = (
        b'data: {"error":{"message":"Output data may contain inappropriate content.",'
        b'"type":"data_inspection_failed","code":"data_inspection_failed"}}\n\n'
    )
    script = Script(sse([GOOD[0], GOOD[1], err]))
    r = client(script).ask("hi")
    assert r.text == "Hi" and r.incomplete and r.error is not None
    assert getattr(r.error, "code", None) == "data_inspection_failed"


def test_stream_without_done_is_incomplete(clean_env: None) -> None:
    r = client(Script(sse(GOOD[:2]))).ask("hi")
    assert r.text == "Hi" and r.incomplete


def test_non_stream_response(clean_env: None) -> None:
    body = {
        "choices": [
            {
                "message": {"content": "Yes", "reasoning_content": "Hmm", "role": "assistant"},
                "finish_reason": "stop",
                "index": 0,
            }
        ],
        "model": "qwen3.6-plus",
        "id": "chatcmpl-z9",
        "usage": {
            "prompt_tokens": 4,
            "completion_tokens": 3,
            "total_tokens": 7,
            "completion_tokens_details": {"reasoning_tokens": 1},
        },
    }
    script = Script(httpx.Response(200, json=body))
    r = client(script).ask("hi", stream=False)
    assert (r.text, r.reasoning, r.usage.reasoning_tokens, r.request_id) == ("Yes", "Hmm", 1, "z9")
    assert "stream_options" not in script.bodies[0] and script.bodies[0]["stream"] is False


def test_events_can_be_iterated_while_streaming_and_replayed(clean_env: None) -> None:
    r = client(Script(sse(GOOD))).ask("hi")
    assert not r.done
    live = [e.type for e in r]
    assert r.done and live == ["start", "text", "text", "finish", "usage"]
    assert [e.type for e in r] == live


def test_interrupting_keeps_partial_text_and_closes(clean_env: None) -> None:
    closed = []

    class Body(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield GOOD[0]
            yield GOOD[1]
            raise KeyboardInterrupt

        def close(self) -> None:
            closed.append(True)

    r = client(Script(httpx.Response(200, stream=Body()))).ask("hi")
    with pytest.raises(KeyboardInterrupt):
        for _ in r:
            pass
    assert r.interrupted and r.incomplete and r.partial_text == "Hi" and closed


def test_a_models_answer_without_a_list_says_so(clean_env: None) -> None:
    script = Script(httpx.Response(200, json={"models": ["qwen-plus"]}))
    with pytest.raises(APIError, match="answered GET /models without a model list"):
        client(script).models()
    (request,) = script.requests
    assert request.method == "GET" and str(request.url) == "http://qwen.test/compatible-mode/v1/models"
    assert request.headers["authorization"] == f"Bearer {KEY}"


def test_configuration_precedence(clean_env: None, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from qwen_magics import settings

    assert settings().base_url == "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"
    assert settings().model == "qwen3.6-plus"
    monkeypatch.setenv("QWEN_REGION", "beijing")
    assert settings().base_url == "https://dashscope.aliyuncs.com/compatible-mode/v1"
    monkeypatch.setenv("QWEN_REGION", "hongkong")
    assert settings().base_url.startswith("https://cn-hongkong.")
    monkeypatch.setenv("DASHSCOPE_BASE_URL", "http://localhost:11434/v1/")
    monkeypatch.setenv("QWEN_MODEL", "qwen-plus")
    assert settings().base_url == "http://localhost:11434/v1" and settings().model == "qwen-plus"
    configure(model="qwen-flash", base_url="http://127.0.0.1:9/v1")
    assert settings().model == "qwen-flash" and settings().base_url == "http://127.0.0.1:9/v1"
    assert settings(model="qwq-plus").model == "qwq-plus"
    monkeypatch.setenv("QWEN_REGION", "mars")
    with pytest.raises(ConfigError, match="singapore, virginia, beijing, hongkong"):
        settings()


def test_no_key_for_dashscope_says_what_to_do(clean_env: None) -> None:
    c = Client(transport=httpx.MockTransport(Script()))
    with pytest.raises(ConfigError, match="DASHSCOPE_API_KEY"):
        c.ask("hi")


def test_key_is_not_logged(clean_env: None, caplog) -> None:  # type: ignore[no-untyped-def]
    limit = {"error": {"message": "slow", "code": "limit_requests"}}
    caplog.set_level(logging.DEBUG)
    client(Script(httpx.Response(429, json=limit), sse(GOOD))).ask("hi").complete()
    assert "retrying" in caplog.text and KEY not in caplog.text


def test_async_client_streams_and_retries(clean_env: None) -> None:
    async def main() -> tuple[str, int, list[str]]:
        calls = []

        async def handler(request: httpx.Request) -> httpx.Response:
            calls.append(request)
            if len(calls) == 1:
                return httpx.Response(500, json={"error": {"message": "oops", "code": "internal_error"}})

            async def body():  # type: ignore[no-untyped-def]
                for part in GOOD:
                    yield part

            return httpx.Response(200, content=body())

        async with AsyncClient(
            transport=httpx.MockTransport(handler), api_key=KEY, retry=FAST, base_url="http://qwen.test/v1"
        ) as c:
            r = await c.ask("hi")
            kinds = [e.type async for e in r]
            return r.text, len(calls), kinds

    text, calls, kinds = asyncio.run(main())
    assert text == "Hi!" and calls == 2 and kinds[0] == "start"


def test_async_errors_raise(clean_env: None) -> None:
    async def main() -> None:
        transport = httpx.MockTransport(lambda r: httpx.Response(500, json={"error": {"message": "x"}}))
        async with AsyncClient(
            transport=transport, api_key=KEY, retry=FAST, base_url="http://q.test/v1"
        ) as c:
            await c.ask("hi")

    with pytest.raises(ServerError):
        asyncio.run(main())
