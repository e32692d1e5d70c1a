"""The HTTP client: one request to the Chat Completions endpoint, with retries, as a Response.

``ask`` / ``aask`` and ``Client`` / ``AsyncClient`` share the protocol pieces below (body, headers,
error bodies, retry delays, stream parsing); only the waiting differs. Errors before the first token
raise; a stream that breaks after tokens arrived returns its Response with ``incomplete=True``.
"""

from __future__ import annotations

import json
import logging
import random
import ssl
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from . import config as _config
from .errors import (
    APIError,
    AuthenticationError,
    ConfigError,
    QwenError,
    StreamInterrupted,
    api_error,
)
from .errors import ConnectionError as QwenConnectionError
from .params import PARAMS, build_body, build_messages, check_params
from .sse import SSEDecoder
from .stream import ChunkParser, Event, Response

__all__ = ["AsyncClient", "BackoffGate", "Client", "Retry", "aask", "ask"]

log = logging.getLogger("qwen_magics")


@dataclass(frozen=True)
class Retry:
    """Exponential backoff with jitter for 429, 5xx and connection errors before the first token.

    DashScope sends no Retry-After; one that is present is honoured (up to ``max_backoff``).
    """

    attempts: int = 4
    backoff: float = 0.5
    max_backoff: float = 20.0
    total: float = 90.0
    jitter: float = 0.5

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_backoff)
        base = min(self.backoff * 2 ** (attempt - 1), self.max_backoff)
        return base * (1 - self.jitter * random.random())


class BackoffGate:
    """A pause shared by concurrent requests: one 429 slows them all instead of each hammering."""

    def __init__(self) -> None:
        self._until = 0.0

    def pause(self, seconds: float) -> None:
        self._until = max(self._until, time.monotonic() + seconds)

    def remaining(self) -> float:
        return max(0.0, self._until - time.monotonic())


# -- protocol pieces shared by both clients ---------------------------------------------------
@dataclass
class _Prepared:
    url: str
    headers: dict[str, str]
    body: dict[str, Any]
    params: dict[str, Any]
    settings: _config.Settings
    stream: bool


def _prepare(
    prompt: str | None,
    *,
    settings: _config.Settings,
    system: str | None,
    messages: Any,
    params: dict[str, Any],
    stream: bool,
    extra: Mapping[str, Any],
) -> _Prepared:
    given = {k: v for k, v in params.items() if v is not None}
    check_params(given, settings.model, stream=stream)
    msgs = build_messages(prompt, system=system, messages=messages)
    if settings.api_key is None and settings.base_url_source == "region":
        raise ConfigError(
            "no API key: set DASHSCOPE_API_KEY (a key from Model Studio, region "
            f"{settings.region}), point DASHSCOPE_BASE_URL at an OpenAI-compatible server, or "
            "use the offline simulator (`%load_ext qwen_magics` with no key, or qwen_magics.offline())"
        )
    body = build_body(settings.model, msgs, given, stream=stream, extra=extra)
    headers = {
        "Content-Type": "application/json",
        "Accept": "text/event-stream" if stream else "application/json",
    }
    headers.update(auth_headers(settings))
    return _Prepared(f"{settings.base_url}/chat/completions", headers, body, given, settings, stream)


def auth_headers(settings: _config.Settings) -> dict[str, str]:
    """The Authorization header. Blanks around the key (a pasted line break) are dropped; a character
    a header cannot carry is refused by position, because httpx's own error would print the key."""
    if not settings.api_key:
        return {}
    key = settings.api_key.strip()
    if not key:
        raise ConfigError("the API key is blank; set DASHSCOPE_API_KEY to the key from Model Studio")
    for i, ch in enumerate(key):
        if not (ch.isascii() and ch.isprintable()):
            raise ConfigError(
                f"the API key holds {ch!r} at character {i + 1}, which an HTTP header cannot carry; "
                "copy the key again into DASHSCOPE_API_KEY"
            )
    return {"Authorization": f"Bearer {key}"}


def _error_from_body(status: int, raw: bytes, headers: httpx.Headers, settings: _config.Settings) -> APIError:
    """An error body is JSON, or one SSE ``data:`` line when the request asked to stream."""
    text = raw.decode("utf-8", errors="replace").strip()
    body: Any
    if text.startswith("data:"):
        text = text[5:].strip().split("\n", 1)[0]
    try:
        body = json.loads(text) if text else {}
    except ValueError:
        body = {"error": {"message": text[:300] or f"HTTP {status}"}}
    err = api_error(status, body, request_id=headers.get("x-request-id"))
    if isinstance(err, AuthenticationError):
        err.hint = (
            f"The key was refused. Keys only work in their own region; this request went to "
            f"{settings.where}. Set DASHSCOPE_API_KEY or QWEN_REGION."
        )
        err.args = (err._compose(),)
    return err


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _map_transport(exc: Exception, where: str) -> QwenError:
    """The one place where httpx's transport exceptions become ours."""
    if isinstance(exc, httpx.TimeoutException):
        return QwenConnectionError(
            f"no answer from {where} in time ({type(exc).__name__}); check the network or raise the timeout"
        )
    refused = _certificate_refused(exc)
    if refused is not None:
        error = QwenConnectionError(
            f"could not connect to {where}: its TLS certificate is not trusted ({refused}). If the server "
            "uses a certificate authority of your own, set SSL_CERT_FILE (or SSL_CERT_DIR) to it before "
            "the first request; otherwise check the base URL"
        )
        error.retryable = False
        return error
    if isinstance(exc, httpx.ConnectError):
        return QwenConnectionError(f"could not connect to {where}: {exc}; check the base URL and the network")
    return QwenConnectionError(f"the connection to {where} failed: {type(exc).__name__}: {exc}")


def _certificate_refused(exc: BaseException) -> str | None:
    """Why the server's certificate failed verification, when that is what happened."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen.verify_message or seen.reason or "certificate verify failed"
        seen = seen.__cause__ or seen.__context__
    return None


def _nonstream_events(data: dict[str, Any]) -> list[Event]:
    parser = ChunkParser()
    events = parser.feed(json.dumps(data))
    return events


def _response(
    prep: _Prepared,
    source: Any,
    sent_at: float,
    request_id: str | None,
    attempts: int,
    head: list[Event] | None = None,
    closer: Any = None,
) -> Response:
    return Response(
        head=head or (),
        closer=closer,
        request=prep.body,
        params=prep.params,
        base_url=prep.settings.base_url,
        offline=prep.settings.offline,
        request_id=request_id,
        source=source,
        sent_at=sent_at,
        attempts=attempts,
    )


def _is_token(event: Event) -> bool:
    return event.type in ("text", "reasoning", "error")


def _until_first_token(events: Iterator[Event]) -> list[Event]:
    """The events up to the first token (or error): what decides whether a try succeeded."""
    head: list[Event] = []
    for event in events:
        head.append(event)
        if _is_token(event):
            break
    return head


async def _auntil_first_token(events: AsyncIterator[Event]) -> AsyncIterator[Event]:
    async for event in events:
        yield event
        if _is_token(event):
            break


def _answering(head: list[Event]) -> bool:
    """The stream gave a token (or ended cleanly): the Response is handed out, never retried."""
    last = head[-1] if head else None
    return last is None or last.type != "error" or any(e.type in ("text", "reasoning") for e in head)


def _stream_end(parser: ChunkParser) -> list[Event]:
    if parser.done or parser.failed:
        return []
    return [
        Event(
            "error",
            data=StreamInterrupted(
                "the connection closed before the stream said [DONE]; the answer may be cut short"
            ),
        )
    ]


class _Base:
    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        region: str | None = None,
        model: str | None = None,
        timeout: float | None = None,
        retry: Retry | None = None,
        gate: BackoffGate | None = None,
    ) -> None:
        self._api_key = api_key
        self._base_url = base_url
        self._region = region
        self._model = model
        self._timeout = timeout
        self.retry = retry or Retry()
        self.gate = gate or BackoffGate()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.settings()!r}>"

    def settings(self, **override: Any) -> _config.Settings:
        return _config.settings(
            api_key=override.get("api_key") or self._api_key,
            base_url=override.get("base_url") or self._base_url,
            model=override.get("model") or self._model,
            region=self._region,
            timeout=self._timeout,
        )

    def _prepare(self, prompt: str | None, kw: dict[str, Any]) -> _Prepared:
        settings = self.settings(
            api_key=kw.pop("api_key", None), base_url=kw.pop("base_url", None), model=kw.pop("model", None)
        )
        system = kw.pop("system", None)
        messages = kw.pop("messages", None)
        stream = kw.pop("stream", True)
        params = {k: kw.pop(k, None) for k in PARAMS}
        return _prepare(
            prompt,
            settings=settings,
            system=system,
            messages=messages,
            params=params,
            stream=stream,
            extra=kw,
        )

    def _build(self, prep: _Prepared) -> httpx.Request:
        return self.http.build_request(  # type: ignore[attr-defined]
            "POST", prep.url, json=prep.body, headers=prep.headers, timeout=self._timeout_for(prep.settings)
        )

    def _timeout_for(self, settings: _config.Settings) -> httpx.Timeout:
        return httpx.Timeout(settings.timeout, connect=min(10.0, settings.timeout))

    def _retry_delay(
        self, error: QwenError, attempt: int, started: float, retry_after: float | None
    ) -> float:
        """How long to wait before trying again; raises the error when it is not worth another try."""
        if not _retryable(error):
            raise error
        delay = self.retry.delay(attempt, retry_after)
        if attempt >= self.retry.attempts or (time.monotonic() - started + delay) > self.retry.total:
            raise error
        log.info("retrying after %s (attempt %d, waiting %.2fs)", type(error).__name__, attempt, delay)
        if getattr(error, "status", None) == 429:
            self.gate.pause(delay)  # one rate limit slows every request of this client
        return delay


class Client(_Base):
    """A synchronous client. ``Client().ask("hi")`` streams a Response."""

    def __init__(
        self, *, http: httpx.Client | None = None, transport: httpx.BaseTransport | None = None, **kw: Any
    ) -> None:
        super().__init__(**kw)
        self._own_http = http is None
        self._transport = transport
        self.http = http or httpx.Client(transport=transport, timeout=None)
        self._live: weakref.WeakSet[Response] = weakref.WeakSet()  # streams handed out

    def close(self) -> None:
        if self._own_http:
            self.http.close()

    def _drop_orphans(self) -> None:
        """Ctrl-C inside httpx's send, after the pool gave this request a connection but before the
        response reached us, leaves that connection busy with no owner, open for good. When no
        stream of ours is still reading, every busy connection is such an orphan: start a new pool."""
        if self._own_http and all(r.done for r in self._live):
            self.http.close()
            self.http = httpx.Client(transport=self._transport, timeout=None)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ask(self, prompt: str | None = None, **kw: Any) -> Response:
        prep = self._prepare(prompt, kw)
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            wait = self.gate.remaining()
            if wait:
                time.sleep(wait)
            outcome = self._attempt(prep, attempt)
            if isinstance(outcome, Response):
                return outcome
            error, retry_after = outcome
            time.sleep(self._retry_delay(error, attempt, started, retry_after))

    def _attempt(self, prep: _Prepared, attempt: int) -> Response | tuple[QwenError, float | None]:
        """One try: the Response, or the error and the server's Retry-After."""
        sent_at = time.perf_counter()
        try:
            resp = self.http.send(self._build(prep), stream=True)
        except httpx.TransportError as exc:
            return _map_transport(exc, prep.settings.where), None
        except BaseException:
            self._drop_orphans()
            raise
        handed_out = False
        try:
            if resp.status_code != 200:
                try:
                    raw = resp.read()
                except httpx.TransportError:
                    raw = b""
                return _error_from_body(resp.status_code, raw, resp.headers, prep.settings), _retry_after(
                    resp.headers
                )
            request_id = resp.headers.get("x-request-id")
            if not prep.stream:
                try:
                    data = json.loads(resp.read())
                except (httpx.TransportError, ValueError) as exc:
                    return _map_transport(exc, prep.settings.where), None
                return _response(prep, iter(_nonstream_events(data)), sent_at, request_id, attempt)
            events = self._events(resp, prep.settings.where)
            head = _until_first_token(events)
            if _answering(head):
                response = _response(prep, events, sent_at, request_id, attempt, head, resp.close)
                self._live.add(response)
                handed_out = True
                return response
            events.close()
            return head[-1].data, None
        finally:
            if not handed_out:
                resp.close()  # also when Ctrl-C lands before the stream has an owner

    def _events(self, resp: httpx.Response, where: str) -> Generator[Event, None, None]:
        decoder, parser = SSEDecoder(), ChunkParser()
        try:
            for chunk in resp.iter_raw():
                for data in decoder.feed(chunk):
                    yield from parser.feed(data)
            for data in decoder.flush():
                yield from parser.feed(data)
            yield from _stream_end(parser)
        except httpx.TransportError as exc:
            yield Event("error", data=StreamInterrupted(str(_map_transport(exc, where))))
        finally:
            resp.close()


class AsyncClient(_Base):
    """The asynchronous twin: ``await AsyncClient().ask("hi")``, then ``async for`` its events."""

    def __init__(
        self,
        *,
        http: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(
            transport=transport, timeout=None, limits=httpx.Limits(max_connections=64)
        )

    async def aclose(self) -> None:
        if self._own_http:
            await self.http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def ask(self, prompt: str | None = None, **kw: Any) -> Response:
        import asyncio  # here, not at import time: `import qwen_magics` stays light

        prep = self._prepare(prompt, kw)
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            wait = self.gate.remaining()
            while wait:
                await asyncio.sleep(wait)
                wait = self.gate.remaining()
            outcome = await self._attempt(prep, attempt)
            if isinstance(outcome, Response):
                return outcome
            error, retry_after = outcome
            await asyncio.sleep(self._retry_delay(error, attempt, started, retry_after))

    async def _attempt(self, prep: _Prepared, attempt: int) -> Response | tuple[QwenError, float | None]:
        """One try: the Response, or the error and the server's Retry-After."""
        sent_at = time.perf_counter()
        try:
            resp = await self.http.send(self._build(prep), stream=True)
        except httpx.TransportError as exc:
            return _map_transport(exc, prep.settings.where), None
        handed_out = False
        try:
            if resp.status_code != 200:
                try:
                    raw = await resp.aread()
                except httpx.TransportError:
                    raw = b""
                return _error_from_body(resp.status_code, raw, resp.headers, prep.settings), _retry_after(
                    resp.headers
                )
            request_id = resp.headers.get("x-request-id")
            if not prep.stream:
                try:
                    data = json.loads(await resp.aread())
                except (httpx.TransportError, ValueError) as exc:
                    return _map_transport(exc, prep.settings.where), None
                return _response(prep, iter(_nonstream_events(data)), sent_at, request_id, attempt)
            events = self._events(resp, prep.settings.where)
            try:
                head = [event async for event in _auntil_first_token(events)]
            except BaseException:
                await events.aclose()
                raise
            if _answering(head):
                handed_out = True
                return _response(prep, events, sent_at, request_id, attempt, head)
            await events.aclose()
            return head[-1].data, None
        finally:
            if not handed_out:
                await resp.aclose()

    async def _events(self, resp: httpx.Response, where: str) -> AsyncGenerator[Event, None]:
        decoder, parser = SSEDecoder(), ChunkParser()
        try:
            async for chunk in resp.aiter_raw():
                for data in decoder.feed(chunk):
                    for event in parser.feed(data):
                        yield event
            for data in decoder.flush():
                for event in parser.feed(data):
                    yield event
            for event in _stream_end(parser):
                yield event
        except httpx.TransportError as exc:
            yield Event("error", data=StreamInterrupted(str(_map_transport(exc, where))))
        finally:
            await resp.aclose()


def _retryable(error: QwenError) -> bool:
    if isinstance(error, APIError):
        return error.retryable
    if isinstance(error, QwenConnectionError):
        return error.retryable
    return isinstance(error, StreamInterrupted)


_default_client: Client | None = None


def _shared_client() -> Client:
    global _default_client
    if _default_client is None:
        import atexit

        _default_client = Client()
        atexit.register(_default_client.close)  # its idle keep-alive connections, at exit
    return _default_client


def ask(
    prompt: str | None = None,
    *,
    model: str | None = None,
    system: str | None = None,
    messages: list[dict[str, Any]] | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    top_k: int | None = None,
    presence_penalty: float | None = None,
    thinking: bool | None = None,
    budget: int | None = None,
    max_tokens: int | None = None,
    seed: int | None = None,
    stop: str | list[str] | None = None,
    response_format: dict[str, Any] | None = None,
    stream: bool = True,
    api_key: str | None = None,
    base_url: str | None = None,
    **extra: Any,
) -> Response:
    """Ask Qwen once. Parameters left as None are not sent, so the model's defaults apply."""
    return _shared_client().ask(
        prompt,
        model=model,
        system=system,
        messages=messages,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        presence_penalty=presence_penalty,
        thinking=thinking,
        budget=budget,
        max_tokens=max_tokens,
        seed=seed,
        stop=stop,
        response_format=response_format,
        stream=stream,
        api_key=api_key,
        base_url=base_url,
        **extra,
    )


async def aask(
    prompt: str | None = None,
    *,
    model: str | None = None,
    system: str | None = None,
    messages: list[dict[str, Any]] | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    top_k: int | None = None,
    presence_penalty: float | None = None,
    thinking: bool | None = None,
    budget: int | None = None,
    max_tokens: int | None = None,
    seed: int | None = None,
    stop: str | list[str] | None = None,
    response_format: dict[str, Any] | None = None,
    stream: bool = True,
    api_key: str | None = None,
    base_url: str | None = None,
    client: AsyncClient | None = None,
    **extra: Any,
) -> Response:
    """The async twin of ``ask``. Pass ``client=`` to share connections and backoff."""
    kw = dict(
        model=model,
        system=system,
        messages=messages,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        presence_penalty=presence_penalty,
        thinking=thinking,
        budget=budget,
        max_tokens=max_tokens,
        seed=seed,
        stop=stop,
        response_format=response_format,
        stream=stream,
        api_key=api_key,
        base_url=base_url,
        **extra,
    )
    if client is not None:
        return await client.ask(prompt, **kw)
    own = AsyncClient()
    try:
        response = await own.ask(prompt, **kw)
    except BaseException:
        await own.aclose()
        raise
    return await _closing(response, own)


async def _closing(response: Response, client: AsyncClient) -> Response:
    """Close a one-off AsyncClient when its response's stream ends."""
    source = response._source
    if source is None or not hasattr(source, "__anext__"):
        await client.aclose()
        return response

    async def wrapped() -> AsyncIterator[Event]:
        try:
            async for event in source:  # type: ignore[union-attr]
                yield event
        finally:
            await source.aclose()  # type: ignore[union-attr]
            await client.aclose()

    response._source = wrapped()
    return response
