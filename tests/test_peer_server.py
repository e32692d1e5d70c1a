"""Against a real third-party OpenAI-compatible server: ``transformers serve`` on loopback with a tiny
Qwen3 built at test time (``tests/peer.py``), through the package's public API: ``ask``, ``Client``,
``compare`` and a ``%%qwen`` cell in a real shell.

What it does differently from DashScope, as seen here (transformers 5.24): no ``data: [DONE]``
(the stream closes after the finish chunk, which carries the usage); ``GET /v1/models`` lists only
the pinned model, its id the local path, ``owned_by: "local"``; a model other than the pinned one is
a 400 ``detail``; a field it does not know (``enable_thinking``, ``thinking_budget``, ``top_k``) is a
422 ``{"detail": "Unexpected fields in the request: {...}"}``, while OpenAI fields it does not use
(``stream_options``, ``presence_penalty``, ``response_format``) are ignored with a warning in its log;
``chat_template_kwargs`` reach the chat template; a failure inside generation is one
``data: {"error": "..."}`` line after the role chunk.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import qwen_magics as qm
from qwen_magics import APIError, BadRequestError

from .outputs import rendered, rendered_markdown, run
from .peer import ANSWER, REASONING, PeerServer, build_in_subprocess

pytestmark = pytest.mark.peer
PROMPT = "Why is the sky blue?"


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PeerServer]:
    """``transformers serve`` on the tiny model, once for this module (stopped after it, so the rest of
    the suite does not share the machine with it); a failing test that used it shows its log
    (conftest's ``pytest_runtest_makereport``)."""
    root = tmp_path_factory.mktemp("peer")
    model = root / "tiny-qwen3"
    build_in_subprocess(model, home=root / "hf-home")
    server = PeerServer(model, log_path=root / "serve.log", home=root / "hf-home").start()
    yield server
    server.stop()


@pytest.fixture
def peer_env(peer: PeerServer, clean_env: None, monkeypatch: pytest.MonkeyPatch) -> PeerServer:
    """What a user sets to point qwen-magics at the server: its URL and the model it serves; no key."""
    monkeypatch.setenv("DASHSCOPE_BASE_URL", peer.base_url)
    monkeypatch.setenv("QWEN_MODEL", peer.model)
    return peer


# -- a whole answer is whole ----------------------------------------------------------------------
def test_a_complete_streamed_answer_is_whole_without_done(peer_env: PeerServer) -> None:
    r = qm.ask(PROMPT)
    assert r.text == ANSWER and r.reasoning == REASONING.strip()  # no blank lines from </think>\n\n
    assert r.finish_reason == "stop" and not r.incomplete and r.error is None and not r.truncated
    assert r.usage.reported and r.usage.completion_tokens == 16 and r.usage.prompt_tokens > 0
    assert r.model == peer_env.model and r.request_id
    footer = r.footer()
    assert "cut short" not in footer and "incomplete" not in footer and "usage not reported" not in footer


def test_an_answer_stopped_at_max_tokens_is_truncated_not_incomplete(peer_env: PeerServer) -> None:
    r = qm.ask(PROMPT, max_tokens=8)  # six tokens of thinking, then "Hello" and ","
    assert r.text == "Hello," and r.finish_reason == "length" and r.truncated and r.max_tokens == 8
    assert not r.incomplete and r.usage.completion_tokens == 8
    assert "stopped at max_tokens (8)" in r.footer() and "cut short" not in r.footer()


def test_a_stop_string_ends_the_answer_as_finished(peer_env: PeerServer) -> None:
    r = qm.ask(PROMPT, stop=" sea", temperature=0.3, top_p=0.9, seed=1)
    assert r.text.startswith("Hello, world!") and "salty" not in r.text
    assert r.finish_reason == "stop" and not r.incomplete


def test_a_non_streamed_answer(peer_env: PeerServer) -> None:
    r = qm.ask(PROMPT, stream=False)
    assert r.text == ANSWER and r.reasoning == REASONING.strip() and r.finish_reason == "stop"
    assert r.usage.completion_tokens == 16 and not r.incomplete


async def _aask(base_url: str, model: str) -> qm.Response:
    async with qm.AsyncClient(base_url=base_url, model=model) as client:
        r = await client.ask(PROMPT)
        async for _ in r:
            pass
        return r


def test_the_client_with_an_explicit_base_url_sync_and_async(peer: PeerServer, clean_env: None) -> None:
    import asyncio

    with qm.Client(base_url=peer.base_url, model=peer.model) as client:
        assert client.models() == [peer.model]
        r = client.ask(PROMPT)
        assert r.text == ANSWER and not r.incomplete
    r = asyncio.run(_aask(peer.base_url, peer.model))
    assert r.text == ANSWER and r.reasoning == REASONING.strip() and not r.incomplete


# -- in a notebook ------------------------------------------------------------------------------------
def test_a_cell_streams_the_answer_and_its_footer_shows_usage(ip, peer: PeerServer) -> None:  # type: ignore[no-untyped-def]
    run(ip, f"%qwen config base_url={peer.base_url} model={peer.model}")
    cap = run(ip, f"%%qwen\n{PROMPT}")
    final = rendered_markdown(cap.outputs)
    r = ip.user_ns["_qwen"]
    assert r.text == ANSWER and not r.incomplete and len(cap.outputs) >= 2
    assert ANSWER in final and "qwen-thinking" in final and REASONING.strip() in final
    footer = final.rsplit("<sub>", 1)[1]
    assert "in / 16 out" in footer and "tok/s" in footer
    assert "cut short" not in footer and "incomplete" not in footer.lower()


def test_compare_over_temperature_runs_every_cell(peer_env: PeerServer) -> None:
    c = qm.compare(PROMPT, temperature=[0.2, 1.0], show=False)
    df = c.df
    assert list(df["temperature"]) == [0.2, 1.0]
    assert list(df["text"]) == [ANSWER, ANSWER] and df["error"].isna().all()
    assert list(df["completion_tokens"]) == [16, 16]


# -- the server's own words -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"top_k": 5}, "422: Unexpected fields in the request: {'top_k'} The server refused top_k; leave"),
        ({"thinking_budget": 50}, "422: Unexpected fields in the request: {'thinking_budget'} The server"),
    ],
)
def test_a_field_the_server_does_not_know_is_its_422_in_its_words(
    peer_env: PeerServer, params: dict[str, int], words: str
) -> None:
    with pytest.raises(APIError) as caught:
        qm.ask(PROMPT, **params)
    assert str(caught.value).startswith(words) and caught.value.status == 422


def test_a_model_it_does_not_serve_is_its_400_in_its_words(peer_env: PeerServer) -> None:
    with pytest.raises(BadRequestError) as caught:
        qm.ask(PROMPT, model="qwen3.6-plus")
    assert str(caught.value).startswith(
        f"400: Server is pinned to '{peer_env.model}'; requested 'qwen3.6-plus'."
    )


def test_a_cell_shows_the_servers_words_for_its_error(ip, peer: PeerServer) -> None:  # type: ignore[no-untyped-def]
    run(ip, f"%qwen config base_url={peer.base_url} model={peer.model}")
    cap = run(ip, f"%%qwen --top-k 5\n{PROMPT}")
    shown = " ".join(b.get("text/plain", "") for b in rendered(cap.outputs))
    assert "422" in shown and "Unexpected fields in the request: {'top_k'}" in shown


def test_a_failure_inside_generation_is_its_error_line_in_its_words(peer_env: PeerServer) -> None:
    # generation_config is a transformers serve field: a temperature it refuses fails in generate()
    with pytest.raises(APIError) as caught:
        qm.ask(PROMPT, generation_config='{"do_sample": true, "temperature": -1.0}')
    assert "`temperature` (=-1.0) has to be a strictly positive float" in str(caught.value)


# -- thinking: the dialect -----------------------------------------------------------------------
def test_thinking_off_works_on_the_dialect_found_from_the_servers_model_list(peer_env: PeerServer) -> None:
    models = httpx.get(f"{peer_env.base_url}/models").json()["data"]
    assert [(m["id"], m["owned_by"]) for m in models] == [(peer_env.model, "local")]
    with qm.Client() as client:
        found = client.dialect()
    assert (found.name, found.why) == ("vllm", "found from GET /models: transformers serve's model list")

    off = qm.ask(PROMPT, thinking=False)  # sent as chat_template_kwargs: Qwen3's template closes <think>
    assert off.text == ANSWER and off.reasoning == "" and not off.incomplete
    assert off.usage.completion_tokens == 10  # the answer alone
    on = qm.ask(PROMPT, thinking=True)
    assert on.text == ANSWER and on.reasoning == REASONING.strip()


def test_thinking_in_dashscopes_fields_is_refused_in_the_servers_words_with_the_setting_to_change(
    peer_env: PeerServer,
) -> None:
    qm.configure(dialect="dashscope")
    with pytest.raises(BadRequestError) as caught:
        qm.ask(PROMPT, thinking=False)
    message = str(caught.value)
    assert message.startswith("422: Unexpected fields in the request: {'enable_thinking'}")
    assert "The server refused enable_thinking" in message and "%qwen config dialect=NAME" in message


def test_a_budget_and_a_dialect_without_thinking_are_refused_before_sending(peer_env: PeerServer) -> None:
    with pytest.raises(qm.ParameterError, match="budget is a DashScope field"):
        qm.ask(PROMPT, thinking=True, budget=50)
    qm.configure(dialect="openai")
    with pytest.raises(qm.ParameterError, match="this server takes no thinking switch"):
        qm.ask(PROMPT, thinking=False)


def test_a_cell_with_thinking_off_on_the_real_server(ip, peer: PeerServer) -> None:  # type: ignore[no-untyped-def]
    run(ip, f"%qwen config base_url={peer.base_url} model={peer.model}")
    shown = rendered(run(ip, f"%%qwen --no-thinking\n{PROMPT}").outputs)
    assert ip.user_ns["_qwen"].text == ANSWER and ip.user_ns["_qwen"].reasoning == ""
    assert "Thinking" not in str(shown[-1])
    config_shown = rendered(run(ip, "%qwen config").outputs)[-1]["text/plain"]
    assert "vllm (found from GET /models: transformers serve's model list)" in config_shown


def test_the_model_is_built_here_and_nothing_comes_from_a_hub(peer: PeerServer) -> None:
    files = {p.name for p in Path(peer.model).iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= files
    assert not any((peer.home / "hub").glob("*"))  # the server's own, empty, Hugging Face cache
