"""Bad input gets a one-line error that says what to do, and nothing is sent.

The table below is every ``%%qwen`` option with a wrong type or range, the empty cell, a 1 MB prompt,
control characters, lone surrogates, unknown models and schemas that are not schemas. Each case
asserts the message and that the emulator received no request. An unknown model is looked up in the
server's ``GET /models`` list (no prompt goes with it); a server without that list gets the request.

A second table is what servers do wrong (each error shape, a field the server refuses, thinking a
server cannot take, a stream without ``[DONE]``, usage or its end, reasoning in ``<think>`` tags),
played by the emulator, with what the cell shows.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pydantic
import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from qwen_magics.emulator import Emulator

MB = 1_048_576
VARIABLES = {
    "big": "x" * MB,
    "long": "x" * 200_001,  # just over QwenMagics.max_prompt_chars
    "ctl": "ring the \x07 bell",
    "surrogate": "half a pair: \ud800",
    "not_a_schema": {"properties": 5},
    "bad_type": {"type": "object", "properties": {"age": {"type": "integr"}}},
    "empty_schema": {},
    "Planet": pydantic.create_model("Planet", name=(str, ...)),
    "countries": [{"country": "France"}, {"country": "Peru"}],
}

# (case, options, cell, the message says); cell None: the line magic %qwen <options>
CASES: list[tuple[str, str, str | None, str]] = [
    # -- wrong type ---------------------------------------------------------------------------------
    ("temperature not a number", "-t warm", "hi", "argument -t/--temperature: invalid float value: 'warm'"),
    ("top_p not a number", "-p high", "hi", "argument -p/--top-p: invalid float value: 'high'"),
    ("top_k not whole", "--top-k 1.5", "hi", "argument --top-k: invalid int value: '1.5'"),
    (
        "presence_penalty not a number",
        "--presence-penalty x",
        "hi",
        "argument --presence-penalty: invalid float",
    ),
    ("budget not whole", "--budget lots", "hi", "argument --budget: invalid int value: 'lots'"),
    ("max_tokens not whole", "--max-tokens 1e3", "hi", "argument --max-tokens: invalid int value: '1e3'"),
    ("seed not whole", "--seed 1.5", "hi", "argument --seed: invalid int value: '1.5'"),
    (
        "samples not whole",
        "--samples two --compare 'temperature=0.1,0.2'",
        "hi",
        "argument --samples: invalid int",
    ),
    ("option without its value", "-t", "hi", "argument -t/--temperature: expected one argument"),
    ("switch given a value", "--thinking=yes", "hi", "argument --thinking: ignored explicit argument 'yes'"),
    ("unknown option", "--temprature 0.3", "hi", "unrecognized arguments: --temprature 0.3"),
    (
        "unbalanced quote",
        "-s 'be terse",
        "hi",
        "could not read the options (No closing quotation); check the quotes",
    ),
    ("-o not a name", "-o 2x", "hi", "-o/--out: '2x' is not a valid variable name"),
    ("-o a keyword", "-o class", "hi", "-o/--out: 'class' is not a valid variable name"),
    # -- out of range -------------------------------------------------------------------------------
    (
        "temperature 2",
        "-t 2",
        "hi",
        "-t/--temperature: temperature must be in [0, 2) (DashScope's range); got 2.0",
    ),
    ("temperature negative", "-t -0.1", "hi", "temperature must be in [0, 2)"),
    ("temperature nan", "-t nan", "hi", "-t/--temperature: temperature must be a finite number; got nan"),
    ("temperature inf", "-t inf", "hi", "temperature must be a finite number; got inf"),
    ("top_p 0", "-p 0", "hi", "-p/--top-p: top_p must be in (0, 1] (DashScope's range); got 0.0"),
    ("top_p above 1", "-p 1.5", "hi", "top_p must be in (0, 1]"),
    ("top_k negative", "--top-k -1", "hi", "--top-k: top_k must be in [0, ∞)"),
    (
        "presence_penalty 2.5",
        "--presence-penalty 2.5",
        "hi",
        "--presence-penalty: presence_penalty must be in [-2, 2]",
    ),
    ("budget 0", "--budget 0", "hi", "--budget: budget must be in (0, 81920] for qwen3.6-plus"),
    ("budget above the model's", "--budget 100000", "hi", "budget must be in (0, 81920] for qwen3.6-plus"),
    (
        "max_tokens 0",
        "--max-tokens 0",
        "hi",
        "--max-tokens: max_tokens must be in [1, 65536] for qwen3.6-plus",
    ),
    ("max_tokens above the model's", "-m qwen3-max --max-tokens 100000", "hi", "[1, 65536] for qwen3-max"),
    ("seed negative", "--seed -1", "hi", "--seed: seed must be in [0, 2147483647] (2^31-1)"),
    ("seed 2^31", "--seed 2147483648", "hi", "seed must be in [0, 2147483647]"),
    ("stop empty", "--stop ''", "hi", "--stop: stop must be a string or a list of strings; got ['']"),
    (
        "samples 0",
        "--samples 0 --compare 'temperature=0.1,0.2'",
        "hi",
        "--samples: samples must be a whole number of at least 1",
    ),
    ("samples without compare", "--samples 3", "hi", "--samples goes with --compare"),
    # -- options that do not go together ------------------------------------------------------------
    ("thinking off on a thinking-only model", "-m qwq-plus --no-thinking", "hi", "qwq-plus always thinks"),
    ("thinking on a model without it", "-m qwen3-max --thinking", "hi", "qwen3-max has no thinking mode"),
    (
        "budget with thinking off",
        "--no-thinking --budget 100",
        "hi",
        "--budget: budget limits thinking; turn thinking on",
    ),
    (
        "no-stream on a stream-only model",
        "-m qwq-plus --no-stream",
        "hi",
        "--no-stream: qwq-plus only answers streaming",
    ),
    (
        "two modes",
        "--panel --json",
        "hi",
        "choose one of --panel, --compare, --json/--schema (got panel, json)",
    ),
    ("continue a grid", "-c --compare 'temperature=0.1'", "hi", "-c/--continue works with plain answers"),
    (
        "panel without the control",
        "--panel --presence-penalty 0.5",
        "hi",
        "--presence-penalty: the panel has no control for it",
    ),
    ("empty grid", "--compare ''", "hi", "--compare: the grid is empty"),
    (
        "grid of an unknown parameter",
        "--compare 'temprature=0.1'",
        "hi",
        "--compare: unknown parameter 'temprature'",
    ),
    (
        "grid value not a number",
        "--compare 'temperature=a,b'",
        "hi",
        "--compare: temperature='a' is not a number",
    ),
    ("grid without values", "--compare temperature", "hi", "is not name=value1,value2"),
    # -- judging a comparison -----------------------------------------------------------------------
    (
        "unknown check",
        "--check 'nonsense' --compare 'temperature=0.1,0.2'",
        "hi",
        "--check nonsense: unknown",
    ),
    (
        "threshold not a number",
        "--threshold high --check contains:x",
        "hi",
        "argument --threshold: invalid float",
    ),
    (
        "threshold out of range",
        "--threshold 1.5 --check contains:x",
        "hi",
        "--threshold: threshold is a score",
    ),
    ("cases not defined", "--cases nowhere", "{country}?", "--cases: there is no variable 'nowhere'"),
    (
        "cases not rows",
        "--cases big",
        "{country}?",
        "--cases: big is a str, not a DataFrame or a list of dicts",
    ),
    ("field not a case column", "--cases countries", "{capital}?", "{capital} is not a column of --cases"),
    ("prompts not defined", "--prompts nowhere", None, "--prompts: there is no variable 'nowhere'"),
    ("check with --json", "--check contains:x --json", "hi", "--check goes with --compare, not with --json"),
    # -- the prompt ---------------------------------------------------------------------------------
    ("blank cell", "", "\n   \n", "the prompt: the prompt is empty; write the question to ask"),
    (
        "1 MB prompt",
        "",
        "x" * MB,
        "the prompt is 1,048,576 characters (system prompt included), more than "
        "QwenMagics.max_prompt_chars = 200,000; nothing was sent",
    ),
    (
        "1 MB variable",
        "",
        "Summarise {big}",
        "To send it anyway: %qwen config max_prompt_chars=1048586 (none: no limit)",
    ),
    (
        "system prompt over the limit",
        "-s '{long}'",
        "hi",
        "the prompt is 200,003 characters (system prompt included)",
    ),
    ("1 MB system prompt", "-s '{big}'", "hi", "the prompt is 1,048,578 characters (system prompt included)"),
    (
        "NUL in the prompt",
        "",
        "a\x00b",
        "the prompt: prompt holds the control character '\\x00' at character 1; remove it",
    ),
    ("escape in the prompt", "", "red \x1b[31m", "prompt holds the control character '\\x1b' at character 4"),
    (
        "control character from a variable",
        "",
        "Read: {ctl}",
        "prompt holds the control character '\\x07' at character 15",
    ),
    (
        "control character in the system prompt",
        "-s '{ctl}'",
        "hi",
        "-s/--system: system holds the control character '\\x07'",
    ),
    (
        "lone surrogate",
        "",
        "a\ud800b",
        "prompt holds invalid Unicode at character 1 (a lone surrogate); "
        "fix the text or decode it with errors='replace'",
    ),
    (
        "lone surrogate from a variable",
        "",
        "{surrogate}",
        "prompt holds invalid Unicode at character 13 (a lone surrogate)",
    ),
    ("lone surrogate in stop", "--stop '\udfff'", "hi", "--stop: stop holds invalid Unicode at character 0"),
    (
        "control character in stop",
        "--stop 'end\x00'",
        "hi",
        "--stop: stop holds the control character '\\x00' at character 3",
    ),
    (
        "undefined variable",
        "",
        "Tell me about {plant}",
        "prompt variable {plant}: 'plant' is not defined. Define it first, or write {{plant}}",
    ),
    # -- the model ----------------------------------------------------------------------------------
    ("unknown model", "-m gpt-4o", "hi", "-m/--model: unknown model 'gpt-4o': http://127.0.0.1:"),
    ("misspelt model", "-m qwen3.6-plsu", "hi", "nothing was sent. Did you mean 'qwen3.6-plus'"),
    ("empty model", "-m ''", "hi", "-m/--model: the model name is empty; leave -m out for the default model"),
    ("control character in the model", "-m 'qwen-plus\x00'", "hi", "unknown model 'qwen-plus\\x00'"),
    # -- schemas that are not schemas ---------------------------------------------------------------
    (
        "empty schema",
        "--schema ''",
        "hi",
        "--schema: the schema is empty; a schema is a Pydantic model, a JSON Schema dict",
    ),
    ("schema of punctuation", "--schema ','", "hi", "--schema: the schema names no fields"),
    (
        "schema field without a name",
        "--schema ': the age'",
        "hi",
        "--schema: the field ': the age' has no name",
    ),
    (
        "short form with an unknown type",
        "--schema 'name, age integr'",
        "hi",
        "unknown type 'integr' for 'age'; use str, int, float or bool",
    ),
    (
        "dict without type or properties",
        "--schema empty_schema",
        "hi",
        "--schema: this dict is not a JSON Schema (no 'type' or 'properties'",
    ),
    (
        "properties not a dict",
        "--schema not_a_schema",
        "hi",
        "--schema: the schema: 'properties' must map names to schemas; got 5",
    ),
    (
        "nested type unknown",
        "--schema bad_type",
        "hi",
        "--schema: the schema → age: 'type' 'integr' is not a JSON Schema type",
    ),
    (
        "schema class not defined",
        "--schema NotDefined",
        "hi",
        "--schema: NotDefined is not defined in the notebook; run the cell that defines it first "
        "(for one field called 'NotDefined', write 'NotDefined str')",
    ),
    (
        "misspelt schema class",
        "--schema Plnet",
        "hi",
        "--schema: Plnet is not defined in the notebook; did you mean Planet?",
    ),
    ("dotted schema not defined", "--schema models.Person", "hi", "--schema: models is not defined"),
    # -- structured output on a model that always thinks --------------------------------------------
    (
        "JSON mode on a model that always thinks",
        "--json -m qwq-plus",
        "hi",
        "-m/--model: qwq-plus always thinks, and JSON mode is refused while thinking; use a model that "
        "can turn thinking off (qwen3.6-plus, ",
    ),
    (
        "schema on a model that always thinks",
        "--schema 'name, moons int' -m qwq-plus",
        "hi",
        "-m/--model: qwq-plus always thinks",
    ),
    # -- a grid's cells get the checks of one request -----------------------------------------------
    (
        "grid cell out of range",
        "--compare 'temperature=0.2,5'",
        "hi",
        '--compare: the cell "temperature=5": temperature must be in [0, 2) (DashScope\'s range); got 5.0; '
        "nothing was sent",
    ),
    (
        "grid cell that cannot stop thinking",
        "--compare 'model=qwen-plus,qwq-plus' --no-thinking",
        "hi",
        '--compare: the cell "qwq-plus": qwq-plus always thinks; thinking cannot be turned off',
    ),
    # -- the line magic and its settings ------------------------------------------------------------
    ("line magic out of range", "-t 5 what is 2+2?", None, "-t/--temperature: temperature must be in [0, 2)"),
    ("line magic empty", "-t 0.5", None, "the prompt is empty"),
    ("default out of range", "config temperature=5", None, "%qwen config temperature must be in [0, 2)"),
    (
        "default of the wrong type",
        "config max_tokens=many",
        None,
        "%qwen config max_tokens='many' is not a whole number",  # the grid's words for the same slip
    ),
    (
        "unknown setting",
        "config temprature=0.5",
        None,
        "temprature: unknown setting; known: model, system, temperature",
    ),
    ("prompt limit below 1", "config max_prompt_chars=0", None, "max_prompt_chars must be at least 1"),
    (
        "key typed into a notebook",
        "config api_key=sk-abc",
        None,
        "api_key: keep the API key out of notebooks (this line is saved with it, and in the history); "
        "run %qwen login",
    ),
    (
        "key typed after %qwen login",
        "login sk-abcdef0123456789",
        None,
        "%qwen login takes no key on its line: that line is saved in the notebook and in IPython's history",
    ),
    ("login to an unknown region", "login mars", None, "%qwen login takes one region (singapore, virginia"),
    (
        "unknown region",
        "config region=mars",
        None,
        "unknown region 'mars'; set QWEN_REGION to one of singapore",
    ),
    (
        "base URL without a scheme",
        "config base_url=example.com/v1",
        None,
        "the base URL must start with http:// or https://",
    ),
]


@pytest.fixture
def ip(shell):  # type: ignore[no-untyped-def]
    shell.run_line_magic("load_ext", "qwen_magics")
    shell.user_ns.update(VARIABLES)
    yield shell
    for name in VARIABLES:
        shell.user_ns.pop(name, None)


# 15-20 s on a 2-core machine: IPython splits the option line with shlex, whose time grows with the square of
# the line's length; "system prompt over the limit" checks the same refusal in the fast selection
SLOW = {"1 MB system prompt"}


@pytest.mark.parametrize(
    ("case", "options", "cell", "says"),
    [pytest.param(*c, id=c[0], marks=[pytest.mark.slow] if c[0] in SLOW else []) for c in CASES],
)
def test_bad_input_is_one_clear_line_and_nothing_is_sent(
    ip: Any, qwen_env: Emulator, case: str, options: str, cell: str | None, says: str
) -> None:
    with capture_output() as cap, pytest.raises(UsageError) as err:
        if cell is None:
            ip.run_line_magic("qwen", options)
        else:
            ip.run_cell_magic("qwen", options, cell)
    message = str(err.value)
    assert says in message
    assert "\n" not in message and len(message) < 400
    assert qwen_env.requests == []  # no chat request; an unknown model's GET /models carries no prompt
    assert cap.outputs == [] and cap.stdout == ""  # not even the waiting placeholder


def test_a_long_prompt_goes_once_the_limit_is_raised(ip: Any, qwen_env: Emulator) -> None:
    with pytest.raises(UsageError, match="max_prompt_chars"):
        ip.run_cell_magic("qwen", "--no-thinking", "Summarise {big}")
    with capture_output():
        ip.run_line_magic("qwen", "config max_prompt_chars=none")
        ip.run_cell_magic("qwen", "--no-thinking", "Summarise {big}")
    (request,) = qwen_env.chat_requests
    assert len(request.body["messages"][-1]["content"]) == MB + len("Summarise ")
    ip.run_line_magic("qwen", "config max_prompt_chars=200000")


def test_a_grid_value_out_of_range_stops_the_whole_grid_before_any_cell_is_sent(
    ip: Any, qwen_env: Emulator
) -> None:
    # like -t 5 on one request; the valid cell used to run while the other showed the range error
    with capture_output() as cap, pytest.raises(UsageError, match='the cell "temperature=5": temperature'):
        ip.run_cell_magic("qwen", "--compare 'temperature=5,0.3' --no-thinking", "hi")
    assert qwen_env.requests == [] and cap.outputs == []
    with capture_output() as cap:
        ip.run_cell_magic("qwen", "--compare 'temperature=1.5,0.3' --no-thinking", "hi")
    assert sorted(r.params["temperature"] for r in qwen_env.chat_requests) == [0.3, 1.5]
    assert "failed" not in cap.outputs[-1].data["text/plain"]


# -- a server with models of its own -------------------------------------------------------------
class OtherServer(BaseHTTPRequestHandler):
    """An OpenAI-compatible server with other model names (a vLLM or Ollama), or no /models at all."""

    protocol_version = "HTTP/1.1"
    models: ClassVar[list[str] | None] = ["llama-3.1-8b-instruct"]
    posted: ClassVar[list[dict[str, Any]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/v1/models" and self.models is not None:
            data = {"object": "list", "data": [{"id": m, "object": "model"} for m in self.models]}
            return self._send(200, json.dumps(data).encode(), "application/json")
        self._send(404, b'{"detail": "Not Found"}', "application/json")

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.posted.append(body)
        chunks = [{"choices": [{"index": 0, "delta": {"content": w}}]} for w in ("Hello", " there.")]
        chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        stream = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
        self._send(200, stream, "text/event-stream")


@pytest.fixture
def other_server(shell: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[type[OtherServer]]:
    handler = type("Handler", (OtherServer,), {"posted": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # shutdown() waits out one poll: the default half second would be most of these tests' time
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    monkeypatch.setenv("DASHSCOPE_BASE_URL", f"http://127.0.0.1:{server.server_address[1]}/v1")
    shell.run_line_magic("load_ext", "qwen_magics")
    yield handler
    server.shutdown()
    server.server_close()


def test_another_servers_own_models_are_sent_and_its_typos_are_caught(other_server: Any, shell: Any) -> None:
    with capture_output() as cap:
        shell.run_cell_magic("qwen", "-m llama-3.1-8b-instruct", "hi")
    assert "Hello there." in cap.outputs[-1].data["text/plain"]
    with pytest.raises(
        UsageError, match=r"unknown model 'llama-3.1-8b-instrut'.*Did you mean 'llama-3.1-8b-instruct'"
    ):
        shell.run_cell_magic("qwen", "-m llama-3.1-8b-instrut", "hi")
    assert [b["model"] for b in other_server.posted] == ["llama-3.1-8b-instruct"]


def test_a_server_without_a_model_list_gets_the_request_as_it_is(other_server: Any, shell: Any) -> None:
    other_server.models = None  # GET /models answers 404
    with capture_output() as cap:
        shell.run_cell_magic("qwen", "-m my-local-model", "hi")
    assert "Hello there." in cap.outputs[-1].data["text/plain"]
    assert [b["model"] for b in other_server.posted] == ["my-local-model"]


# -- what servers do wrong: the message a user sees in the cell -----------------------------------
PROXY_PAGE = (
    "<html><head><title>403 Forbidden</title></head><body><center><h1>403 Forbidden</h1></center>"
    "<hr><center>nginx</center></body></html>"
)
NESTED = {"error": {"message": "Range of top_p should be (0.0, 1.0]", "code": "InvalidParameter"}}
VLLM = {"object": "error", "message": "max_tokens must be >= 1.", "type": "BadRequestError", "code": 400}
FASTAPI = {"detail": "Unexpected fields in the request: {'enable_thinking'}"}
PYDANTIC = {"detail": [{"loc": ["body", "temperature"], "msg": "Input should be less than 2", "type": "x"}]}


def body(status: int, payload: Any, kind: str = "application/json") -> dict[str, Any]:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return {"kind": "body", "status": status, "body": text, "content_type": kind}


# (case, the emulator plays, fault, options, the cell shows)
SERVER_CASES: list[tuple[str, str, dict[str, Any] | None, str, str]] = [
    ("nested error object", "dashscope", body(400, NESTED), "", "400 InvalidParameter: Range of top_p"),
    ("vLLM's flat error", "dashscope", body(400, VLLM), "", "Qwen API error: 400: max_tokens must be >= 1."),
    (
        "a field the server does not know",
        "dashscope",
        body(422, FASTAPI),
        "--no-thinking",
        "422: Unexpected fields in the request: {'enable_thinking'} The server refused enable_thinking, "
        "which thinking/budget send under dialect dashscope. Set the dialect this server speaks",
    ),
    (
        "FastAPI's list of details",
        "dashscope",
        body(422, PYDANTIC),
        "",
        "422: body.temperature: Input should be less than 2",
    ),
    ("error as text", "dashscope", body(400, {"error": "model 'qwen9' not found"}), "", "400: model 'qwen9'"),
    ("a message alone", "dashscope", body(404, {"message": "no such route"}), "", "404: no such route"),
    ("plain text", "dashscope", body(400, "prompt too long", "text/plain"), "", "400: prompt too long"),
    ("a proxy's HTML page", "dashscope", body(403, PROXY_PAGE, "text/html"), "", "403: 403 Forbidden"),
    ("an empty body", "dashscope", body(409, ""), "", "409: Conflict (the server gave no message)"),
    (
        "thinking on a server without the switch",
        "openai",
        None,
        "--no-thinking",
        "this server takes no thinking switch (dialect openai, found from GET /models: owned_by "
        "openai): leave thinking unset",
    ),
    (
        "a budget on vLLM",
        "vllm",
        None,
        "--thinking --budget 100",
        "budget is a DashScope field and this server has none (dialect vllm",
    ),
    (
        "top_k on a strict server",
        "openai",
        None,
        "--top-k 5",
        "422: Unexpected fields in the request: {'top_k'} The server refused top_k; leave top_k unset",
    ),
    ("no [DONE] after the finish", "dashscope", {"kind": "no_done"}, "", "· total "),
    ("no usage", "dashscope", {"kind": "no_usage"}, "", "usage not reported · first token"),
    (
        "a stream cut before its finish",
        "dashscope",
        {"kind": "cut", "after": 3},
        "--no-thinking",
        "· incomplete: the connection to http://127.0.0.1:",
    ),
    (
        "reasoning inline in <think> tags",
        "dashscope",
        {"kind": "think_inline"},
        "--thinking",
        "Thinking: The question is about Why is the sky blue?. I will answer briefly.\n\nYou asked:",
    ),
]


@pytest.mark.parametrize(
    ("case", "plays", "fault", "options", "shows"), SERVER_CASES, ids=[c[0] for c in SERVER_CASES]
)
def test_what_a_server_does_wrong_is_shown_in_words(
    shell: Any,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    plays: str,
    fault: dict[str, Any] | None,
    options: str,
    shows: str,
) -> None:
    emu = Emulator(generator="simple", dialect=plays).start()
    try:
        if fault is not None:
            emu.add_fault(**fault)
        monkeypatch.setenv("DASHSCOPE_BASE_URL", emu.base_url)
        shell.run_line_magic("load_ext", "qwen_magics")
        with capture_output() as cap:
            try:
                shell.run_cell_magic("qwen", options, "Why is the sky blue?")
                shown = "\n".join(o.data.get("text/plain", "") for o in cap.outputs[-2:])
            except UsageError as refused:  # found before sending: one line, nothing sent
                shown = str(refused)
                assert emu.chat_requests == [] and "\n" not in shown
    finally:
        emu.stop()
    assert shows in shown, shown
    assert "<" not in shown  # no markup from an HTML page, no <think> tags
    if "no [DONE]" in case or "no usage" in case:
        assert "cut short" not in shown and "incomplete" not in shown
    if "no usage" in case:
        assert "cost unknown" in shown and "$" not in shown
