"""The emulator's HTTP server: DashScope's compatible-mode endpoints on loopback, with faults.

``Emulator`` runs in a thread (tests, offline mode) or as ``qwen-magics serve``. Every request is
logged (never its key). Faults are injected per request: an error status for the next N attempts or
at random, a connection cut or an error chunk mid-stream, extra latency. ``/_emulator/...`` lets a
test in another process read the log and set faults. The Files and Batches endpoints are in
``batches.py``; ``charges`` is the ledger of what each answer would have cost.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import random
import socket
import ssl
import sys
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from ..models import BATCH_DISCOUNT, MODELS, estimate_cost
from .answers import Generator, PrefixCache, SimpleGenerator, make_completion
from .batches import BatchService, read_body_chunks, send_file
from .protocol import Completion, ProtocolError, error_body, new_request_id, sse, validate
from .servers import DIALECTS, OWNED_BY, as_dashscope, unknown_fields

__all__ = ["BATCH_FAULTS", "Charge", "Emulator", "Fault", "RequestRecord"]

log = logging.getLogger("qwen_magics.emulator")

PREFIXES = ("/compatible-mode/v1", "/v1")
BATCH_FAULTS = ("batch_fail", "batch_expire", "line_error")  # drawn by batches, not by HTTP requests
RATE_DOC = "https://www.alibabacloud.com/help/en/model-studio/error-code"

# (code, type, message) DashScope sends for each status, from the reference's error table
STANDARD_ERRORS: dict[int, tuple[str, str, str]] = {
    400: (
        "data_inspection_failed",
        "data_inspection_failed",
        "Input data may contain inappropriate content.",
    ),
    401: (
        "invalid_api_key",
        "invalid_request_error",
        f"Incorrect API key provided. For details, see: {RATE_DOC}#apikey-error",
    ),
    403: ("access_denied", "access_denied", "Access denied."),
    404: (
        "model_not_found",
        "invalid_request_error",
        "The model `x` does not exist or you do not have access to it.",
    ),
    429: (
        "limit_requests",
        "limit_requests",
        f"You have exceeded your current request limit. For details, see: {RATE_DOC}#rate-limit",
    ),
    500: (
        "internal_error",
        "internal_error",
        "An internal error has occured, try again later or contact service support.",
    ),
    502: ("internal_error", "internal_error", "Bad gateway."),
    503: ("ModelUnavailable", "ModelUnavailable", "Model is unavailable, try again later."),
    504: ("RequestTimeOut", "RequestTimeOut", "Request timed out, try again later."),
}


@dataclass
class Fault:
    """One injected failure.

        kind: ``status`` (answer ``status`` instead), ``cut`` (close the connection after ``after``
    answer chunks), ``error_chunk`` (send ``data: {"error": ...}`` after ``after`` chunks),
    ``latency`` (wait ``seconds`` before answering); and what other OpenAI-compatible servers do:
    ``body`` (answer ``status`` with ``body`` as ``content_type``: vLLM's flat error, FastAPI's
    ``detail``, a proxy's HTML page, an empty body), ``no_done`` (close after the last chunk without
    ``data: [DONE]``, as transformers serve does), ``no_usage`` (never send usage), ``think_inline``
    (the reasoning inside the content, in ``<think>`` tags), ``reasoning_field`` (the reasoning in
    ``reasoning``) and ``think_blanks`` (as transformers serve streams Qwen3: the answer after the
    reasoning begins with the blank lines that followed ``</think>``, and an answer without thinking
    is led by a blank reasoning chunk, the empty ``<think>`` block of its prompt). For batches:
    ``batch_fail`` (the next batch fails validation with ``code`` and ``message``), ``batch_expire``
    (the next batch expires after ``after`` lines) and ``line_error`` (a batch line is refused with
    ``status``, into the error file). ``times``: how
    many requests it hits (None: all). ``probability``: the chance it hits a request.
    ``first_attempt``: only a body's first try.
    """

    kind: str = "status"
    status: int = 429
    code: str | None = None
    message: str | None = None
    after: int = 3
    times: int | None = 1
    probability: float = 1.0
    first_attempt: bool = False
    seconds: float = 0.0
    done_after_error: bool = False
    body: str = ""
    content_type: str = "application/json"

    def error(self) -> ProtocolError:
        status = self.status if self.kind in ("status", "line_error") else 400
        code, etype, message = STANDARD_ERRORS.get(status, ("internal_error", "internal_error", "Error."))
        if self.kind == "error_chunk":
            code, etype, message = (
                "data_inspection_failed",
                "data_inspection_failed",
                "Output data may contain inappropriate content.",
            )
        return ProtocolError(status, self.code or code, self.message or message, etype)


@dataclass(frozen=True)
class Charge:
    """What one answer (or one batch, at half price) would have been billed."""

    model: str
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    cost: float
    batch: bool = False


@dataclass
class RequestRecord:
    path: str
    method: str
    body: Any
    auth: str  # "ok", "missing" or "refused"; the key itself is never kept
    attempt: int = 1
    status: int = 200
    fault: str | None = None
    at: float = field(default_factory=time.time)
    client_closed: float | None = None  # when the client hung up mid-stream (Stop, cancel)

    @property
    def params(self) -> dict[str, Any]:
        """The body without its messages and stream settings: what was asked of the model."""
        if not isinstance(self.body, dict):
            return {}
        skip = {"messages", "stream", "stream_options"}
        return {k: v for k, v in self.body.items() if k not in skip}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # compare() and apply() open a dozen connections at once; with the default backlog of 5 the
    # kernel drops the surplus SYNs and each retries a second later
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-answer is normal (Stop, interrupts), and so is one that refuses
        our TLS certificate; anything else is logged."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, ssl.SSLError)):
            return
        log.exception("emulator: error while answering %s", client_address)


class Emulator:
    """A local DashScope. ``with Emulator() as emu: ask(..., base_url=emu.base_url)``.

    ``dialect="vllm"`` or ``"openai"`` plays another server instead (see ``servers.py``).
    ``batch_speed``: the Batch API's lines a second (None: as fast as it answers; also
    ``emulator.batches.speed``, with ``.pause`` for the seconds spent validating and finalizing)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str | None = None,
        latency: float = 0.0,
        token_delay: float = 0.0,
        generator: Generator | str = "lm",
        seed: int | None = None,
        tls: tuple[str, str] | None = None,
        dialect: str = "dashscope",
        batch_speed: float | None = None,
    ) -> None:
        if dialect not in DIALECTS:
            raise ValueError(f"unknown dialect {dialect!r}; use one of {', '.join(DIALECTS)}")
        self.dialect = dialect  # which server it plays: DashScope, vLLM or a strict OpenAI-style one
        self.host = host
        self.port = port
        self.api_key = api_key
        self.latency = latency
        self.token_delay = token_delay
        if isinstance(generator, str) and generator not in ("lm", "simple"):
            raise ValueError(f"unknown generator {generator!r}; use 'lm' or 'simple'")
        self._generator_spec = generator
        self._generator: Generator | None = None
        self.tls = tls  # (certfile, keyfile): serve HTTPS, to test certificate checks
        self.requests: list[RequestRecord] = []
        self.faults: list[Fault] = []
        self.replies: list[tuple[str, str | None]] = []
        self.tool_replies: list[list[dict[str, str]]] = []
        self.charges: list[Charge] = []
        self.batches = BatchService(self, speed=batch_speed)  # lines a second; None: at full speed
        self._cache = PrefixCache()
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._attempts: dict[str, int] = {}
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def generator(self) -> Generator:
        """What writes the answers; the language model is trained on the first request, not at start."""
        if self._generator is None:
            with self._lock:
                if self._generator is None:
                    self._generator = _generator(self._generator_spec)
        return self._generator

    @generator.setter
    def generator(self, value: Generator | str) -> None:
        self._generator_spec, self._generator = value, None

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> Emulator:
        handler = type("Handler", (_Handler,), {"emulator": self})
        self._server = _Server((self.host, self.port), handler)
        self.port = self._server.server_address[1]
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            # the handshake happens in the connection's thread, so one stuck client cannot block accept()
            self._server.socket = context.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        if not self.is_loopback:
            warnings.warn(
                f"the emulator listens on {self.host}, not loopback: other machines can reach it and its "
                "/_emulator admin endpoints; bind 127.0.0.1 unless that is what you want",
                stacklevel=2,
            )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            name="qwen-emulator",
            kwargs={"poll_interval": 0.1},
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.batches.close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        path = PREFIXES[0] if self.dialect == "dashscope" else "/v1"
        return f"{scheme}://{_url_host(self.host)}:{self.port}{path}"

    @property
    def is_loopback(self) -> bool:
        return _is_loopback(self.host)

    # -- test controls ------------------------------------------------------------------------
    def add_fault(self, kind: str = "status", **kw: Any) -> Fault:
        fault = Fault(kind=kind, **kw)
        with self._lock:
            self.faults.append(fault)
        return fault

    def queue_reply(self, text: str, reasoning: str | None = None) -> None:
        """The next request is answered with exactly this text (for structured-output tests)."""
        with self._lock:
            self.replies.append((text, reasoning))

    def queue_tool_calls(self, *calls: tuple[str, str] | dict[str, str]) -> None:
        """The next request with ``tools`` is answered with exactly these calls: (name, arguments
        text) pairs, the text sent as it is (malformed JSON included); no calls: a text answer."""
        from .toolcalls import new_call_id

        turn = [
            dict(c) if isinstance(c, dict) else {"id": new_call_id(), "name": c[0], "arguments": c[1]}
            for c in calls
        ]
        with self._lock:
            self.tool_replies.append(turn)

    def reset(self) -> None:
        self.batches.reset()  # outside the lock: its workers take it to bill their lines
        with self._lock:
            self.requests.clear()
            self.faults.clear()
            self.replies.clear()
            self.tool_replies.clear()
            self._attempts.clear()
            self.charges.clear()

    @property
    def chat_requests(self) -> list[RequestRecord]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def spent(self) -> float:
        """USD the answers so far would have cost (batches at half price)."""
        with self._lock:
            return sum(c.cost for c in self.charges)

    # -- answering: one path for live chat and batch lines -------------------------------------
    def refusal(self, body: Any) -> ProtocolError | dict[str, Any] | None:
        """Why this server would refuse a chat body (a strict server's 422 body, or DashScope's
        error), or None; a body that passes may go to ``complete``."""
        refused = unknown_fields(body, self.dialect)
        if refused is not None:
            return refused
        return validate(as_dashscope(body, self.dialect))

    def complete(self, body: dict[str, Any]) -> Completion:
        """The answer to a body ``refusal`` passed, billed at the live price (batches rebill theirs)."""
        body = as_dashscope(body, self.dialect)
        return make_completion(body, self.generator, self._cache, self._next_reply(), self._next_calls(body))

    def _charge(
        self, model: str, prompt: int, completion: int, reasoning: int, *, batch: bool = False
    ) -> None:
        cost = estimate_cost(model, prompt, completion, reasoning) or 0.0
        charge = Charge(
            model, prompt, completion, reasoning, cost * (BATCH_DISCOUNT if batch else 1.0), batch
        )
        with self._lock:
            self.charges.append(charge)

    def _charge_completion(self, completion: Completion) -> None:
        usage = completion.usage()
        reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens", 0)
        self._charge(completion.model, usage["prompt_tokens"], usage["completion_tokens"], reasoning)

    def _draw_batch_fault(self, kinds: tuple[str, ...]) -> Fault | None:
        """The first batch fault of these kinds that hits (one batch, or one line)."""
        with self._lock:
            for fault in self.faults:
                if fault.kind not in kinds or (fault.times is not None and fault.times <= 0):
                    continue
                if fault.probability < 1.0 and self._rng.random() >= fault.probability:
                    continue
                if fault.times is not None:
                    fault.times -= 1
                return fault
        return None

    # -- request handling (called from handler threads) ---------------------------------------
    def _record(self, record: RequestRecord) -> list[Fault]:
        """Log a request and draw the faults that hit it."""
        with self._lock:
            key = hashlib.sha1(json.dumps(record.body, sort_keys=True).encode()).hexdigest()
            record.attempt = self._attempts.get(key, 0) + 1
            self._attempts[key] = record.attempt
            self.requests.append(record)
            hits = []
            for fault in self.faults:
                if fault.kind in BATCH_FAULTS or (fault.times is not None and fault.times <= 0):
                    continue
                if fault.first_attempt and record.attempt != 1:
                    continue
                if fault.probability < 1.0 and self._rng.random() >= fault.probability:
                    continue
                if fault.times is not None:
                    fault.times -= 1
                hits.append(fault)
            return hits

    def _next_reply(self) -> tuple[str, str | None] | None:
        with self._lock:
            return self.replies.pop(0) if self.replies else None

    def _next_calls(self, body: dict[str, Any]) -> list[dict[str, str]] | None:
        with self._lock:
            return self.tool_replies.pop(0) if body.get("tools") and self.tool_replies else None


def _generator(spec: Generator | str) -> Generator:
    if not isinstance(spec, str):
        return spec
    if spec == "simple":
        return SimpleGenerator()
    if spec == "lm":
        from .lm import LanguageModel

        return LanguageModel.load()
    raise ValueError(f"unknown generator {spec!r}; use 'lm' or 'simple'")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    emulator: Emulator
    server_version = "istio-envoy"
    sys_version = ""
    # small writes (headers, then chunks) must not wait for the client's delayed ACK: ~40 ms a request
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing -----------------------------------------------------------------------------
    def _send(self, status: int, payload: bytes, content_type: str, request_id: str | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(payload)))
        if request_id:
            self.send_header("x-request-id", request_id)
        if self.emulator.dialect == "dashscope":
            self.send_header("x-dashscope-call-gateway", "true")
        self.end_headers()
        self.wfile.write(payload)

    def _json(self, status: int, obj: Any, request_id: str | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json", request_id)

    def _file(self, path: Path, offset: int, size: int, request_id: str) -> None:
        """A stored file's bytes, streamed from disk."""
        self.send_response(200)
        self.send_header("content-type", "application/octet-stream")
        self.send_header("content-length", str(size))
        self.send_header("x-request-id", request_id)
        self.end_headers()
        send_file(self.wfile, path, offset, size)

    def body_chunks(self) -> Any:
        return read_body_chunks(self.rfile, self.headers)

    def json_body(self) -> Any:
        try:
            return json.loads(b"".join(self.body_chunks()) or b"{}")
        except ValueError:
            return None

    def _batch_api(self, method: str, route: str) -> None:
        """Files and Batches: logged, faulted and authenticated like chat, then ``batches.py``."""
        emu = self.emulator
        request_id = new_request_id()
        record = RequestRecord(self.path, method, None, self._auth())
        faults = emu._record(record)
        for fault in faults:
            if fault.kind == "latency":
                self._sleep(fault.seconds)
            elif fault.kind in ("status", "body"):
                self.close_connection = True  # the body, if any, is left unread
                record.status, record.fault = fault.status, f"{fault.kind} {fault.status}"
                if fault.kind == "body":
                    return self._send(fault.status, fault.body.encode(), fault.content_type, request_id)
                return self._error(fault.error(), request_id, False)
        if record.auth != "ok":
            self.close_connection = True
            code, etype, message = STANDARD_ERRORS[401]
            record.status = 401
            return self._json(401, error_body(ProtocolError(401, code, message, etype), request_id))
        query = dict(parse_qsl(self.path.partition("?")[2]))
        emu.batches.handle(self, method, route, query)

    def do_DELETE(self) -> None:
        route = self._route()
        if route is not None and route.startswith("/files/"):
            return self._batch_api("DELETE", route)
        return self._json(404, {"error": {"message": "Not Found", "type": "not_found"}})

    def _error(self, err: ProtocolError, request_id: str, stream: bool) -> None:
        body = error_body(err, request_id)
        if stream:  # DashScope answers a rejected stream request with one SSE line
            self._send(err.status, sse(body), "text/event-stream;charset=UTF-8", request_id)
        else:
            self._json(err.status, body, request_id)

    def _auth(self) -> str:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or not header[7:].strip():
            return "missing"
        expected = self.emulator.api_key
        return "ok" if expected is None or header[7:].strip() == expected else "refused"

    def _route(self) -> str | None:
        path = self.path.split("?", 1)[0]
        for prefix in PREFIXES:
            if path.startswith(prefix + "/"):
                return path[len(prefix) :]
        return None

    # -- verbs --------------------------------------------------------------------------------
    def do_GET(self) -> None:
        if self.path.startswith("/_emulator/"):
            return self._admin_get()
        route = self._route()
        request_id = new_request_id()
        if route is not None and route.startswith(("/files", "/batches")):
            return self._batch_api("GET", route)
        if route == "/chat/completions":
            return self._json(
                400,
                error_body(ProtocolError(400, None, "Request method 'GET' is not supported."), request_id),
                request_id,
            )
        if route is None or not route.startswith("/models"):
            return self._json(404, {"error": {"message": "Not Found", "type": "not_found"}})
        if self._auth() != "ok":
            code, etype, message = STANDARD_ERRORS[401]
            return self._json(401, error_body(ProtocolError(401, code, message, etype), request_id))
        owner = OWNED_BY[self.emulator.dialect]
        models = [
            {"id": name, "object": "model", "created": 1752741600, "owned_by": owner} for name in MODELS
        ]
        if route == "/models":
            return self._json(200, {"object": "list", "data": models}, request_id)
        wanted = route[len("/models/") :]
        match = [m for m in models if m["id"] == wanted]
        if match:
            return self._json(200, match[0], request_id)
        return self._json(
            404,
            error_body(
                ProtocolError(
                    404,
                    "model_not_found",
                    f"The model `{wanted}` does not exist or you do not have access to it.",
                ),
                request_id,
            ),
            request_id,
        )

    def do_POST(self) -> None:
        route = self._route()
        if route is not None and route.startswith(("/files", "/batches")):
            return self._batch_api("POST", route)
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.startswith("/_emulator/"):
            return self._admin_post(raw)
        if self._route() != "/chat/completions":
            return self._json(404, {"error": {"message": "Not Found", "type": "not_found"}})
        emu = self.emulator
        request_id = new_request_id()
        auth = self._auth()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        stream = isinstance(body, dict) and body.get("stream") is True
        record = RequestRecord(self.path, "POST", body, auth)
        faults = emu._record(record)
        if auth != "ok":
            code, etype, message = STANDARD_ERRORS[401]
            record.status = 401
            return self._error(ProtocolError(401, code, message, etype), request_id, stream)
        for fault in faults:
            if fault.kind == "latency":
                self._sleep(fault.seconds)
            elif fault.kind == "status":
                record.status, record.fault = fault.status, f"status {fault.status}"
                return self._error(fault.error(), request_id, stream)
            elif fault.kind == "body":
                record.status, record.fault = fault.status, f"body {fault.status}"
                return self._send(fault.status, fault.body.encode(), fault.content_type, request_id)
        self._sleep(emu.latency)
        refused = emu.refusal(body)
        if isinstance(refused, dict):
            record.status = 422
            return self._json(422, refused, request_id)
        if refused is not None:
            record.status = refused.status
            return self._error(refused, request_id, stream)
        completion = emu.complete(body)
        body = as_dashscope(body, emu.dialect)
        completion.request_id = request_id
        emu._charge_completion(completion)
        if not stream:
            return self._json(200, completion.body(), request_id)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        kinds = {f.kind for f in faults}
        chunks = completion.chunks(include_usage=include_usage and "no_usage" not in kinds)
        if "no_done" in kinds or emu.dialect == "openai":
            chunks = [c for c in chunks if c != b"data: [DONE]\n\n"]
        if "think_blanks" in kinds:
            chunks = _think_blanks(chunks)
        if kinds & {"think_inline", "reasoning_field"}:
            chunks = _reshape(chunks, inline="think_inline" in kinds)
        broken = next((f for f in faults if f.kind in ("cut", "error_chunk")), None)
        if broken is not None:
            record.fault = broken.kind
        self._stream(chunks, request_id, broken, record)

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.emulator._stopping.wait(seconds)

    def _stream(
        self, chunks: list[bytes], request_id: str, fault: Fault | None, record: RequestRecord
    ) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream;charset=UTF-8")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("x-request-id", request_id)
        if self.emulator.dialect == "dashscope":
            self.send_header("x-dashscope-call-gateway", "true")
        self.send_header("cache-control", "no-cache")
        self.end_headers()
        delay = self.emulator.token_delay
        write = self.wfile.write
        try:
            for i, chunk in enumerate(chunks):
                if fault is not None and i == fault.after + 1:
                    if fault.kind == "cut":
                        self._cut(chunk)
                        return
                    error = error_body(fault.error(), request_id)
                    error.pop("request_id", None)
                    write(_chunked(sse(error)))
                    if fault.done_after_error:
                        write(_chunked(b"data: [DONE]\n\n"))
                    write(b"0\r\n\r\n")
                    return
                if delay and i and self.emulator._stopping.wait(delay):
                    return self._cut(b"")
                write(_chunked(chunk))
            write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            record.client_closed = time.time()
            self.close_connection = True

    def _cut(self, chunk: bytes) -> None:
        """Half a chunk, then the connection drops: what a network failure looks like."""
        if chunk:
            self.wfile.write(_chunked(chunk)[: len(chunk) // 2])
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- admin --------------------------------------------------------------------------------
    def _admin_get(self) -> None:
        emu = self.emulator
        if self.path.startswith("/_emulator/requests"):
            with emu._lock:
                records = [asdict(r) for r in emu.requests]
            return self._json(200, {"requests": records})
        if self.path.startswith("/_emulator/faults"):
            with emu._lock:
                return self._json(200, {"faults": [asdict(f) for f in emu.faults]})
        return self._json(404, {"error": "unknown admin path"})

    def _admin_post(self, raw: bytes) -> None:
        emu = self.emulator
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            return self._json(400, {"error": "admin bodies are JSON"})
        path = self.path.split("?", 1)[0]
        if path == "/_emulator/faults":
            for spec in data.get("faults", []):
                emu.add_fault(**spec)
        elif path == "/_emulator/settings":
            for name in ("latency", "token_delay"):
                if name in data:
                    setattr(emu, name, float(data[name]))
            if "batch_speed" in data:
                emu.batches.speed = None if data["batch_speed"] is None else float(data["batch_speed"])
            if "batch_pause" in data:
                emu.batches.pause = float(data["batch_pause"])
            if "batch_hour" in data:
                emu.batches.hour = float(data["batch_hour"])
        elif path == "/_emulator/replies":
            for reply in data.get("replies", []):
                emu.queue_reply(reply["text"], reply.get("reasoning"))
        elif path == "/_emulator/tool_calls":
            for turn in data.get("turns", []):
                emu.queue_tool_calls(*turn)
        elif path == "/_emulator/reset":
            emu.reset()
        else:
            return self._json(404, {"error": "unknown admin path"})
        return self._json(200, {"ok": True})


def _reshape(chunks: list[bytes], *, inline: bool) -> list[bytes]:
    """The stream as another server sends its reasoning: ``inline``, inside the content between
    ``<think>`` and ``</think>`` (no reasoning parser; each tag split across two chunks), else in a
    ``reasoning`` field (newer vLLM, OpenRouter)."""
    out: list[bytes] = []
    thinking = False
    for raw in chunks:
        if not raw.startswith(b"data: {"):
            out.append(raw)
            continue
        chunk = json.loads(raw[6:])
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            reasoning = delta.pop("reasoning_content", None)
            if not inline:
                if reasoning:
                    delta["reasoning"] = reasoning
                continue
            content = delta.get("content") or ""
            tag = {**choice, "finish_reason": None}
            if reasoning:
                if not thinking:
                    thinking = True
                    out.append(sse({**chunk, "choices": [{**tag, "delta": {"content": "<th"}}]}))
                    reasoning = "ink>\n" + reasoning
                delta["content"] = reasoning
            elif thinking and (content or choice.get("finish_reason")):
                thinking = False
                out.append(sse({**chunk, "choices": [{**tag, "delta": {"content": "</thi"}}]}))
                delta["content"] = "nk>\n\n" + content
        out.append(sse(chunk))
    return out


def _think_blanks(chunks: list[bytes]) -> list[bytes]:
    """The blank lines around Qwen3's ``<think>`` block where transformers serve leaves them: before
    the first answer text, and as a blank reasoning chunk when there was no reasoning."""
    out: list[bytes] = []
    reasoned: bool | None = False
    for raw in chunks:
        if not raw.startswith(b"data: {"):
            out.append(raw)
            continue
        chunk = json.loads(raw[6:])
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("reasoning_content"):
                reasoned = True
            elif delta.get("content") and reasoned is not None:
                if not reasoned:
                    blank = {**choice, "delta": {"reasoning_content": "\n\n"}, "finish_reason": None}
                    out.append(sse({**chunk, "choices": [blank]}))
                delta["content"] = "\n\n" + delta["content"]
                reasoned = None  # once, before the first answer text
        out.append(sse(chunk))
    return out


def _chunked(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)
