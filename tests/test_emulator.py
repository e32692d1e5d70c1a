"""The emulator over real loopback HTTP speaks DashScope's protocol; our client reads it."""

from __future__ import annotations

import json

import httpx
import pytest

from qwen_magics import (
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    RateLimitError,
    Retry,
    ServerError,
    ask,
)
from qwen_magics.api.client import Client
from qwen_magics.emulator import Emulator

from .conftest import TEST_KEY
from .waiting import wait_until


def post(emu: Emulator, body: dict, key: str | None = TEST_KEY) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{emu.base_url}/chat/completions", json=body, headers=headers)


def frames(resp: httpx.Response) -> list[str]:
    return [line[6:] for line in resp.text.split("\n\n") if line.startswith("data: ")]


USER = [{"role": "user", "content": "Tell me about the sea"}]


def test_thinking_stream_has_role_reasoning_answer_finish_usage_done(emulator: Emulator) -> None:
    resp = post(
        emulator,
        {
            "model": "qwen3.6-plus",
            "messages": USER,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/event-stream;charset=UTF-8"
    data = frames(resp)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    first = chunks[0]["choices"][0]["delta"]
    assert first["role"] == "assistant" and first["content"] is None and first["reasoning_content"]
    phases = [
        "r" if c["choices"][0]["delta"].get("reasoning_content") else "c"
        for c in chunks[:-2]
        if c["choices"][0]["delta"].get("reasoning_content") or c["choices"][0]["delta"].get("content")
    ]
    assert phases == sorted(phases, reverse=True) and "r" in phases and "c" in phases
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    usage = chunks[-1]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0
    ids = {c["id"] for c in chunks}
    assert ids == {f"chatcmpl-{resp.headers['x-request-id']}"}
    assert all(c["object"] == "chat.completion.chunk" and c["system_fingerprint"] is None for c in chunks)


def test_no_usage_chunk_unless_asked(emulator: Emulator) -> None:
    resp = post(emulator, {"model": "qwen-plus", "messages": USER, "stream": True})
    chunks = [json.loads(d) for d in frames(resp)[:-1]]
    assert all(c["choices"] for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"content": "", "role": "assistant"}


def test_non_stream_body_shape(emulator: Emulator) -> None:
    resp = post(emulator, {"model": "qwen-plus", "messages": USER})
    body = resp.json()
    assert body["object"] == "chat.completion" and body["id"] == f"chatcmpl-{resp.headers['x-request-id']}"
    assert "reasoning_content" not in body["choices"][0]["message"]
    assert body["choices"][0]["logprobs"] is None and body["usage"]["total_tokens"] > 0


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            {"model": "qwen-plus", "messages": USER, "temperature": 2},
            400,
            "Temperature should be in [0.0, 2.0)",
        ),
        ({"model": "qwen-plus", "messages": USER, "top_p": 0}, 400, "Range of top_p should be (0.0, 1.0]"),
        ({"model": "qwen-plus", "messages": USER, "seed": -1}, 400, "-1 is lesser than the minimum of 0"),
        (
            {"model": "qwen-plus", "messages": USER, "max_tokens": 40000},
            400,
            "Range of max_tokens should be [1, 32768]",
        ),
        ({"model": "nope", "messages": USER}, 404, "The model `nope` does not exist"),
        ({"model": "qwen-plus", "messages": []}, 400, "too short"),
        (
            {"model": "qwen-plus", "messages": [{"role": "system", "content": "x"}]},
            400,
            "do not contain elements with the role of user",
        ),
        ({"model": "qwq-plus", "messages": USER, "enable_thinking": False}, 400, "restricted to True"),
        (
            {"model": "qwen3-max", "messages": USER, "enable_thinking": True},
            400,
            "does not support enable_thinking",
        ),
        ({"model": "qwq-plus", "messages": USER}, 400, "only support stream mode"),
        (
            {"model": "qwen-plus", "messages": USER, "enable_thinking": True},
            400,
            "must be set to false for non-streaming calls",
        ),
        (
            {"model": "qwen-plus", "messages": USER, "response_format": {"type": "json_object"}},
            400,
            "must contain the word 'json'",
        ),
        (
            {
                "model": "qwen3.6-plus",
                "messages": [{"role": "user", "content": "json"}],
                "response_format": {"type": "json_object"},
            },
            400,
            "Json mode response is not supported",
        ),
        (
            {
                "model": "qwen-plus",
                "messages": USER,
                "thinking_budget": 0,
                "enable_thinking": True,
                "stream": True,
            },
            400,
            "thinking_budget parameter must be a positive integer",
        ),
    ],
)
def test_checks_use_dashscope_wording(emulator: Emulator, body: dict, status: int, message: str) -> None:
    resp = post(emulator, body)
    assert resp.status_code == status
    text = resp.text
    if body.get("stream"):
        assert text.startswith("data: {")  # a rejected stream request answers one SSE line
        text = text[6:]
    error = json.loads(text)["error"]
    assert message in error["message"]
    assert json.loads(text)["request_id"] == resp.headers["x-request-id"]


def test_rejected_stream_request_answers_one_sse_line(emulator: Emulator) -> None:
    resp = post(emulator, {"model": "qwen-plus", "messages": USER, "stream": True, "top_p": 5})
    assert resp.status_code == 400 and resp.text.startswith("data: ") and resp.text.endswith("\n\n")
    assert json.loads(resp.text[6:])["error"]["code"] == "invalid_parameter_error"


def test_wrong_or_missing_key_is_401(emulator: Emulator) -> None:
    for key in ("sk-wrong", None):
        resp = post(emulator, {"model": "qwen-plus", "messages": USER}, key=key)
        assert resp.status_code == 401 and resp.json()["error"]["code"] == "invalid_api_key"
    assert all(r.auth != "ok" for r in emulator.requests)
    assert TEST_KEY not in repr(emulator.requests)


def test_malformed_json_and_get(emulator: Emulator) -> None:
    resp = httpx.post(
        f"{emulator.base_url}/chat/completions",
        content=b"{nope",
        headers={"Authorization": f"Bearer {TEST_KEY}"},
    )
    assert resp.status_code == 400 and "Required body invalid" in resp.json()["error"]["message"]
    resp = httpx.get(f"{emulator.base_url}/chat/completions")
    assert "Request method 'GET' is not supported." in resp.json()["error"]["message"]


def test_models_list(emulator: Emulator) -> None:
    resp = httpx.get(f"{emulator.base_url}/models", headers={"Authorization": f"Bearer {TEST_KEY}"})
    ids = [m["id"] for m in resp.json()["data"]]
    assert "qwen3.6-plus" in ids and resp.json()["object"] == "list"
    assert httpx.get(f"{emulator.base_url}/models").status_code == 401
    v1 = emulator.base_url.replace("/compatible-mode/v1", "/v1")
    assert httpx.get(f"{v1}/models", headers={"Authorization": f"Bearer {TEST_KEY}"}).status_code == 200


def test_client_lists_the_servers_models_and_maps_its_errors(qwen_env: Emulator) -> None:
    import asyncio
    import socket

    from qwen_magics import MODELS, APIConnectionError, AsyncClient

    with Client() as client:
        assert client.models() == list(MODELS)
    with Client(api_key="sk-wrong-fake-key-0123456789") as client, pytest.raises(AuthenticationError) as err:
        client.models()
    assert err.value.status == 401 and "The key was refused by http://127.0.0.1:" in str(err.value)
    with Client(base_url=qwen_env.base_url + "/nowhere") as client, pytest.raises(NotFoundError):
        client.models()
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Client(base_url=f"http://127.0.0.1:{port}/v1") as client, pytest.raises(APIConnectionError):
        client.models()

    async def main() -> list[str]:
        async with AsyncClient() as client:
            return await client.models()

    assert asyncio.run(main()) == list(MODELS)


def test_client_reads_the_emulator(qwen_env: Emulator) -> None:
    r = ask("What is the capital of France?", model="qwen3.6-plus", temperature=0.4)
    assert r.text.startswith("You asked: What is the capital of France?")
    assert r.reasoning and r.usage.reasoning_tokens > 0 and r.usage.prompt_tokens > 0
    assert r.usage.completion_tokens == r.usage.reasoning_tokens + qwen_env.generator.count_tokens(r.text)
    assert r.finish_reason == "stop" and r.ttft is not None and r.elapsed is not None
    assert r.request_id and r.tokens_per_second
    assert qwen_env.chat_requests[-1].params == {"model": "qwen3.6-plus", "temperature": 0.4}


def test_thinking_off_and_budget(qwen_env: Emulator) -> None:
    r = ask("hi there", model="qwen3.6-plus", thinking=False)
    assert r.reasoning == "" and r.usage.reasoning_tokens == 0
    assert qwen_env.chat_requests[-1].body["enable_thinking"] is False
    r = ask("a long question about the planets and the sea", thinking=True, budget=3)
    assert r.usage.reasoning_tokens == 3


def test_max_tokens_cuts_with_length(qwen_env: Emulator) -> None:
    r = ask("hello there my friend", model="qwen-plus", max_tokens=3)
    assert r.finish_reason == "length" and r.usage.completion_tokens == 3


@pytest.mark.parametrize("generator", ["simple", "lm"])
@pytest.mark.parametrize("stream", [True, False])
def test_max_tokens_cuts_the_answer_with_finish_reason_length_on_the_wire(
    clean_env: None, generator: str, stream: bool
) -> None:
    with Emulator(generator=generator, api_key=TEST_KEY, token_delay=0.0) as emu:
        body = {"model": "qwen-plus", "messages": USER, "max_tokens": 3, "stream": stream}
        resp = post(emu, {**body, "stream_options": {"include_usage": True}} if stream else body)
    assert resp.status_code == 200
    if stream:
        chunks = [json.loads(d) for d in frames(resp)[:-1]]
        finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
        assert finishes[-1] == "length" and set(finishes[:-1]) == {None}
        usage = chunks[-1]["usage"]
    else:
        assert resp.json()["choices"][0]["finish_reason"] == "length"
        usage = resp.json()["usage"]
    assert usage["completion_tokens"] == 3


def test_errors_raise_the_right_class(qwen_env: Emulator) -> None:
    with pytest.raises(NotFoundError):
        ask("hi", model="qwen9-imaginary")
    with pytest.raises(AuthenticationError):
        ask("hi", api_key="sk-not-the-right-one")
    qwen_env.add_fault("status", status=400, code="data_inspection_failed")
    with pytest.raises(BadRequestError, match="inappropriate"):
        ask("hi")


def test_429_for_the_first_attempts_then_success(qwen_env: Emulator) -> None:
    qwen_env.add_fault("status", status=429, times=2)
    with Client(retry=Retry(attempts=4, backoff=0.01)) as c:
        r = c.ask("hi")
        assert r.text and r.attempts == 3
    assert [q.status for q in qwen_env.chat_requests] == [429, 429, 200]
    assert [q.attempt for q in qwen_env.chat_requests] == [1, 2, 3]


def test_exhausted_retries_raise(qwen_env: Emulator) -> None:
    qwen_env.add_fault("status", status=503, times=None)
    with Client(retry=Retry(attempts=2, backoff=0.01)) as c:
        with pytest.raises(ServerError, match="ModelUnavailable"):
            c.ask("hi")
        qwen_env.reset()
        qwen_env.add_fault("status", status=429, times=None)
        with pytest.raises(RateLimitError, match="limit_requests"):
            c.ask("hi")


def test_cut_connection_keeps_partial_text(qwen_env: Emulator) -> None:
    qwen_env.add_fault("cut", after=4)
    r = ask("one two three four five six seven", model="qwen-plus")
    assert r.incomplete and r.text == "You asked: one" and "connection" in str(r.error)
    assert len(qwen_env.chat_requests) == 1


def test_error_chunk_mid_stream(qwen_env: Emulator) -> None:
    qwen_env.add_fault("error_chunk", after=2)
    r = ask("one two three", model="qwen-plus")
    assert r.incomplete and r.text == "You asked" and getattr(r.error, "code", "") == "data_inspection_failed"


def test_latency_and_token_delay(qwen_env: Emulator) -> None:
    qwen_env.latency = 0.2
    qwen_env.token_delay = 0.01
    r = ask("hi", model="qwen-plus")
    r.complete()
    assert r.ttft is not None and r.ttft >= 0.2 and r.elapsed is not None and r.elapsed >= 0.2 + 0.05


def test_admin_endpoints_control_another_process(qwen_env: Emulator) -> None:
    root = qwen_env.base_url.split("/compatible-mode")[0]
    httpx.post(f"{root}/_emulator/faults", json={"faults": [{"kind": "status", "status": 500, "times": 1}]})
    httpx.post(f"{root}/_emulator/replies", json={"replies": [{"text": "scripted answer"}]})
    with Client(retry=Retry(attempts=3, backoff=0.01)) as c:
        assert c.ask("hi", model="qwen-plus").text == "scripted answer"
    log = httpx.get(f"{root}/_emulator/requests").json()["requests"]
    assert [q["status"] for q in log] == [500, 200]
    assert TEST_KEY not in json.dumps(log)


def test_context_cache_reports_cached_tokens(qwen_env: Emulator) -> None:
    long_system = "You are a careful assistant. " * 80
    first = ask("first question", system=long_system, model="qwen-plus")
    first.complete()
    history = [*first.messages, {"role": "assistant", "content": first.text}]
    second = ask("second question", messages=history, model="qwen-plus")
    second.complete()
    assert first.usage.cached_tokens == 0 and second.usage.cached_tokens >= 256


def test_interrupt_closes_the_connection_at_once(qwen_env: Emulator) -> None:
    import time

    from qwen_magics.emulator.answers import SimpleGenerator

    qwen_env.generator = SimpleGenerator(length=400)
    qwen_env.token_delay = 0.02
    r = ask("a long answer please", model="qwen-plus")
    stopped = time.time()
    r.interrupt()
    assert r.interrupted and r.incomplete and r.partial_text.startswith("You")
    record = qwen_env.chat_requests[-1]
    wait_until(lambda: record.client_closed is not None, what="the server to see the hang-up")
    # the server notices at its next write, 20 ms on; the whole answer would take 8 s
    assert record.client_closed - stopped < 2.0


def test_cancelling_an_async_stream_closes_the_connection(qwen_env: Emulator) -> None:
    import asyncio
    import time

    from qwen_magics import AsyncClient
    from qwen_magics.emulator.answers import SimpleGenerator

    qwen_env.generator = SimpleGenerator(length=400)
    qwen_env.token_delay = 0.02

    async def main() -> float:
        async with AsyncClient() as client:
            response = await client.ask("a long answer please", model="qwen-plus")

            streaming = asyncio.Event()

            async def consume() -> None:
                async for event in response:
                    if event.type == "text":
                        streaming.set()  # the answer is under way: cancel it mid-stream

            task = asyncio.create_task(consume())
            await asyncio.wait_for(streaming.wait(), 10)
            task.cancel()
            stopped = time.time()
            try:
                await task
            except asyncio.CancelledError:
                pass
            assert response.interrupted and response.partial_text.startswith("You")
            return stopped

    stopped = asyncio.run(main())
    record = qwen_env.chat_requests[-1]
    wait_until(lambda: record.client_closed is not None, what="the server to see the hang-up")
    # the server notices at its next write, 20 ms on; the whole answer would take 8 s
    assert record.client_closed - stopped < 2.0


def test_interrupting_an_async_stream_from_another_thread_closes_it_on_its_own_loop(
    qwen_env: Emulator,
) -> None:
    """The panel's Stop and Ctrl-C run on the kernel's thread while the answer streams on a worker's loop."""
    import asyncio
    import threading
    import time
    from typing import Any

    from qwen_magics import AsyncClient
    from qwen_magics.emulator.answers import SimpleGenerator

    qwen_env.generator = SimpleGenerator(length=400)
    qwen_env.token_delay = 0.02  # 4 s for the whole answer
    streaming = threading.Event()
    seen: dict[str, Any] = {}

    async def read() -> None:
        async with AsyncClient() as client:
            response = await client.ask("a long answer please", model="qwen-plus")
            seen["response"] = response
            async for event in response:
                if event.type == "text":
                    streaming.set()
            seen["ended"] = time.time()

    worker = threading.Thread(target=lambda: asyncio.run(read()), name="test-stream-loop")
    worker.start()
    assert streaming.wait(5)
    time.sleep(0.2)
    response = seen["response"]
    stopped = time.time()
    response.interrupt()  # from this thread, not the stream's
    worker.join(2)
    assert not worker.is_alive() and seen["ended"] - stopped < 0.5  # the reader's loop ends at once
    assert response.done and response.interrupted and response.incomplete
    partial, whole = (
        response.partial_text,
        "".join(SimpleGenerator(length=400).answer("a long answer please")),
    )
    assert partial.startswith("You asked") and whole.startswith(partial)  # what arrived is kept
    assert len(partial) < len(whole) // 2  # and the rest never came
    deadline = time.time() + 2
    while qwen_env.chat_requests[-1].client_closed is None and time.time() < deadline:
        time.sleep(0.01)
    closed = qwen_env.chat_requests[-1].client_closed
    assert closed is not None and closed - stopped < 0.5  # the emulator saw the connection close


def test_json_mode_follows_a_schema_written_in_the_system_message(qwen_env: Emulator) -> None:
    schema = {"type": "object", "properties": {"moons": {"type": "integer"}}, "required": ["moons"]}
    r = ask(
        "The planet Mars.",
        model="qwen-plus",
        system=f"Answer with JSON only, following this JSON Schema:\n{json.dumps(schema)}",
        response_format={"type": "json_object"},
    )
    assert json.loads(r.text) == {"moons": 1}
    r = ask("Mars as json.", model="qwen-plus", response_format={"type": "json_object"})
    assert json.loads(r.text) == {"answer": "Mars as json."}


def test_n_gives_several_choices_where_the_model_allows_it(emulator: Emulator) -> None:
    from qwen_magics.emulator.answers import SimpleGenerator

    emulator.generator = SimpleGenerator()
    body = {"model": "qwen-plus", "messages": USER, "n": 3, "temperature": 0.5}
    choices = post(emulator, body).json()["choices"]
    assert [c["index"] for c in choices] == [0, 1, 2] and all(c["message"]["content"] for c in choices)
    resp = post(emulator, {**body, "stream": True, "stream_options": {"include_usage": True}})
    chunks = [json.loads(d) for d in frames(resp)[:-1]]
    finished = [c["choices"][0]["index"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finished == [0, 1, 2]
    one = post(emulator, {**body, "n": 1}).json()["usage"]["completion_tokens"]
    assert chunks[-1]["usage"]["completion_tokens"] == 3 * one
    refused = post(emulator, {"model": "qwen3.6-plus", "messages": USER, "n": 2})
    assert refused.status_code == 400 and "does not support n" in refused.json()["error"]["message"]
