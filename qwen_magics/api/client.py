"""The HTTP client: one request to the Chat Completions endpoint, with retries, as a Response.

``models()`` reads the server's ``GET /models`` list through the same headers and error mapping.

``ask`` / ``aask`` and ``Client`` / ``AsyncClient`` share the protocol pieces of ``request.py``
(body, headers, error bodies, retry delays) and the stream parsing below; only the waiting differs.
Errors before the first token raise; a stream that breaks after tokens arrived returns its
Response with ``incomplete=True``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from typing import Any

import httpx

from .. import config as _config
from .. import simulator
from ..errors import ParameterError, QwenError, StreamInterrupted
from . import dialect as _dialects
from . import record, toolloop
from . import replay as _replay
from .dialect import Dialect
from .params import PARAMS, Prompt
from .record import recorder
from .request import (
    BackoffGate,
    Prepared,
    Retry,
    auth_headers,
    error_from_body,
    map_transport,
    model_ids,
    prepare,
    retry_after_header,
    retryable,
)
from .response import ChunkParser, Event, Response
from .sse import SSEDecoder

__all__ = ["AsyncClient", "BackoffGate", "Client", "Retry", "aask", "ask"]

log = logging.getLogger("qwen_magics")


def _nonstream_events(data: dict[str, Any]) -> list[Event]:
    parser = ChunkParser()
    events = parser.feed(json.dumps(data))
    return events


def _response(
    prep: Prepared,
    source: Any,
    sent_at: float,
    request_id: str | None,
    attempts: int,
    head: list[Event] | None = None,
    closer: Any = None,
) -> Response:
    response = Response(
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
        on_finish=recorder(),  # every answer the client hands out goes to the history when it ends
    )
    response.sample = record.sample()
    response.fingerprint = record.fingerprint(
        prep.body, record.host_of(prep.settings.base_url), response.sample, offline=prep.settings.offline
    )
    return response


def _found_dialect(status: int, raw: bytes, headers: httpx.Headers, settings: _config.Settings) -> Dialect:
    """What a ``GET /models`` answer says of the dialect. A refused key or a failing server raises
    as the chat request would; a server without the endpoint (404) gets the safe dialect."""
    if status in (401, 403) or status >= 500:
        raise error_from_body(status, raw, headers, settings)
    return _dialects.remember(settings, _dialects.from_models(status, raw, headers))


def _is_token(event: Event) -> bool:
    return event.type in ("text", "reasoning", "tool_call", "error")


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
    return (
        last is None
        or last.type != "error"
        or any(e.type in ("text", "reasoning", "tool_call") for e in head)
    )


def _stream_end(parser: ChunkParser) -> list[Event]:
    """What the end of the connection means. A stream that gave its finish_reason is whole: several
    servers (transformers serve, some proxies) close after it without ``data: [DONE]``."""
    if parser.done or parser.failed or parser.finished:
        return []
    return [
        *parser.flush(),
        Event(
            "error",
            data=StreamInterrupted(
                "the connection closed before the answer said it was finished; the answer may be cut short"
            ),
        ),
    ]


TOOL_OPTIONS = ("tools", "max_steps", "parallel_tool_calls", "tool_choice", "confirm")


def _tool_options(kw: dict[str, Any]) -> dict[str, Any] | None:
    """The tool loop's options taken out of ``kw``; None when no tools were given."""
    if kw.get("tools") is None:
        for name in TOOL_OPTIONS:
            if kw.pop(name, None) not in (None, False) and name != "max_steps":
                raise ParameterError(
                    name, f"{name} goes with tools=[...]; pass the functions the model may call"
                )
        return None
    opts = {name: kw.pop(name, None) for name in TOOL_OPTIONS}
    if opts["max_steps"] is None:
        opts["max_steps"] = toolloop.DEFAULT_MAX_STEPS
    return opts


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
        dialect: str | None = None,
    ) -> None:
        self._dialect = dialect
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
            dialect=self._dialect,
        )

    def _request_settings(self, **override: Any) -> _config.Settings:
        """The settings of a request about to be made; QWEN_OFFLINE=1 starts the simulator first."""
        explicit = override.get("api_key") or override.get("base_url") or self._api_key or self._base_url
        simulator.ensure(explicit=bool(explicit))
        return self.settings(**override)

    def _settings_for(self, kw: dict[str, Any]) -> tuple[_config.Settings, Dialect | None, bool]:
        """A request's settings (taking its api_key, base_url and model out of ``kw``), its dialect
        when known, and whether the server must be asked for it first."""
        settings = self._request_settings(
            api_key=kw.pop("api_key", None), base_url=kw.pop("base_url", None), model=kw.pop("model", None)
        )
        found = _dialects.known(settings)
        return settings, found, found is None and _dialects.needed(kw)

    def _prepare(
        self,
        prompt: Prompt | None,
        settings: _config.Settings,
        found: Dialect | None,
        kw: dict[str, Any],
        *,
        require_key: bool = True,
    ) -> Prepared:
        system = kw.pop("system", None)
        messages = kw.pop("messages", None)
        stream = kw.pop("stream", True)
        params = {k: kw.pop(k, None) for k in PARAMS}
        return prepare(
            prompt,
            settings=settings,
            system=system,
            messages=messages,
            params=params,
            stream=stream,
            extra=kw,
            dialect=found,
            require_key=require_key,
        )

    def _replayed(
        self,
        prompt: Prompt | None,
        settings: _config.Settings,
        found: Dialect | None,
        ask_server: bool,
        kw: dict[str, Any],
        stream: str,
    ) -> Response | None:
        """Where a request would be sent: with replay on, the recorded answer, if any (``only``
        raises ReplayMiss when there is none). A dialect not yet found is not asked for: the
        record is looked up under each dialect that could have sent the request."""
        replay = _replay.current()
        if replay.mode == "off":
            return None
        candidates = (
            [found] if not ask_server else [Dialect(name, "replay") for name in ("dashscope", "vllm")]
        )
        probe = dataclasses.replace(replay, mode="on")  # a miss under one dialect is not yet a miss
        body: dict[str, Any] = {}
        for dialect in candidates:
            try:
                prep = self._prepare(prompt, settings, dialect, dict(kw), require_key=False)
            except ParameterError:
                if not ask_server:
                    raise
                continue  # a field this dialect refuses: it cannot have sent the request
            body = body or prep.body
            hit = _replay.recorded(
                probe, prep.body, base_url=settings.base_url, offline=settings.offline, stream=stream
            )
            if hit is not None:
                return hit
        if replay.mode == "only":
            raise _replay.miss(replay, body)
        return None

    def _build(self, prep: Prepared) -> httpx.Request:
        return self.http.build_request(  # type: ignore[attr-defined]
            "POST", prep.url, json=prep.body, headers=prep.headers, timeout=self._timeout_for(prep.settings)
        )

    def _models_request(
        self, settings: _config.Settings | None = None
    ) -> tuple[httpx.Request, _config.Settings]:
        settings = settings or self._request_settings()
        url = f"{settings.base_url}/models"
        request = self.http.build_request(  # type: ignore[attr-defined]
            "GET", url, headers=auth_headers(settings), timeout=self._timeout_for(settings)
        )
        return request, settings

    def _timeout_for(self, settings: _config.Settings) -> httpx.Timeout:
        return httpx.Timeout(settings.timeout, connect=min(10.0, settings.timeout))

    def _retry_delay(
        self, error: QwenError, attempt: int, started: float, retry_after: float | None
    ) -> float:
        """How long to wait before trying again; raises the error when it is not worth another try."""
        if not retryable(error):
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

    def ask(self, prompt: Prompt | None = None, **kw: Any) -> Response:
        """One request; with ``tools=[...]`` the whole tool loop (``api/toolloop.py``) as one Response."""
        opts = _tool_options(kw)
        if opts is not None:
            loop = toolloop.prepare_loop(kw, kw.get("model") or self.settings().model, **opts)
            started = time.perf_counter()
            return toolloop.run(self, self.ask_once(prompt, **kw), loop, started)
        return self.ask_once(prompt, **kw)

    def ask_once(self, prompt: Prompt | None = None, **kw: Any) -> Response:
        """One request, whatever it carries (a tool loop's steps are these)."""
        settings, found, ask_server = self._settings_for(kw)
        replayed = self._replayed(prompt, settings, found, ask_server, kw, "sync")
        if replayed is not None:
            return replayed
        if ask_server:
            found = self.dialect(settings)
        prep = self._prepare(prompt, settings, found, kw)
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

    def dialect(self, settings: _config.Settings | None = None) -> Dialect:
        """How this server takes the thinking switch: the ``dialect`` setting, or found out once per
        base URL from its ``GET /models`` (see ``api/dialect.py``)."""
        settings = settings or self._request_settings()
        found = _dialects.known(settings)
        if found is not None:
            return found
        request, settings = self._models_request(settings)
        try:
            resp = self.http.send(request)
        except httpx.TransportError as exc:
            raise map_transport(exc, settings.where) from None
        return _found_dialect(resp.status_code, resp.content, resp.headers, settings)

    def models(self) -> list[str]:
        """The model ids the server's ``GET /models`` lists. Errors raise as for ``ask``, untried again."""
        request, settings = self._models_request()
        try:
            resp = self.http.send(request)
        except httpx.TransportError as exc:
            raise map_transport(exc, settings.where) from None
        except BaseException:
            self._drop_orphans()
            raise
        return model_ids(resp.status_code, resp.content, resp.headers, settings)

    def _attempt(self, prep: Prepared, attempt: int) -> Response | tuple[QwenError, float | None]:
        """One try: the Response, or the error and the server's Retry-After."""
        sent_at = time.perf_counter()
        try:
            resp = self.http.send(self._build(prep), stream=True)
        except httpx.TransportError as exc:
            return map_transport(exc, prep.settings.where), None
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
                error = error_from_body(resp.status_code, raw, resp.headers, prep.settings, prep)
                return error, retry_after_header(resp.headers)
            request_id = resp.headers.get("x-request-id")
            if not prep.stream:
                try:
                    data = json.loads(resp.read())
                except (httpx.TransportError, ValueError) as exc:
                    return map_transport(exc, prep.settings.where), None
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
            yield Event("error", data=StreamInterrupted(str(map_transport(exc, where))))
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

    async def ask(self, prompt: Prompt | None = None, **kw: Any) -> Response:

        opts = _tool_options(kw)
        if opts is not None:
            loop = toolloop.prepare_loop(kw, kw.get("model") or self.settings().model, **opts)
            started = time.perf_counter()
            return toolloop.arun(self, await self.ask_once(prompt, **kw), loop, started)
        return await self.ask_once(prompt, **kw)

    async def ask_once(self, prompt: Prompt | None = None, **kw: Any) -> Response:
        """One request, whatever it carries (a tool loop's steps are these)."""
        import asyncio  # here, not at import time: a program that only asks synchronously never loads it

        settings, found, ask_server = self._settings_for(kw)
        replayed = self._replayed(prompt, settings, found, ask_server, kw, "async")
        if replayed is not None:
            return replayed
        if ask_server:
            found = await self.dialect(settings)
        prep = self._prepare(prompt, settings, found, kw)
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

    async def dialect(self, settings: _config.Settings | None = None) -> Dialect:
        """The async twin of ``Client.dialect``."""
        settings = settings or self._request_settings()
        found = _dialects.known(settings)
        if found is not None:
            return found
        request, settings = self._models_request(settings)
        try:
            resp = await self.http.send(request)
        except httpx.TransportError as exc:
            raise map_transport(exc, settings.where) from None
        return _found_dialect(resp.status_code, resp.content, resp.headers, settings)

    async def models(self) -> list[str]:
        """The model ids the server's ``GET /models`` lists. Errors raise as for ``ask``, untried again."""
        request, settings = self._models_request()
        try:
            resp = await self.http.send(request)
        except httpx.TransportError as exc:
            raise map_transport(exc, settings.where) from None
        return model_ids(resp.status_code, resp.content, resp.headers, settings)

    async def _attempt(self, prep: Prepared, attempt: int) -> Response | tuple[QwenError, float | None]:
        """One try: the Response, or the error and the server's Retry-After."""
        sent_at = time.perf_counter()
        try:
            resp = await self.http.send(self._build(prep), stream=True)
        except httpx.TransportError as exc:
            return map_transport(exc, prep.settings.where), None
        handed_out = False
        try:
            if resp.status_code != 200:
                try:
                    raw = await resp.aread()
                except httpx.TransportError:
                    raw = b""
                error = error_from_body(resp.status_code, raw, resp.headers, prep.settings, prep)
                return error, retry_after_header(resp.headers)
            request_id = resp.headers.get("x-request-id")
            if not prep.stream:
                try:
                    data = json.loads(await resp.aread())
                except (httpx.TransportError, ValueError) as exc:
                    return map_transport(exc, prep.settings.where), None
                return _response(prep, iter(_nonstream_events(data)), sent_at, request_id, attempt)
            events = self._events(resp, prep.settings.where)
            try:
                head = [event async for event in _auntil_first_token(events)]
            except BaseException:
                await events.aclose()
                raise
            if _answering(head):
                handed_out = True
                return _response(prep, events, sent_at, request_id, attempt, head, resp.aclose)
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
            yield Event("error", data=StreamInterrupted(str(map_transport(exc, where))))
        finally:
            await resp.aclose()


_default_client: Client | None = None


def _shared_client() -> Client:
    global _default_client
    if _default_client is None:
        import atexit

        _default_client = Client()
        atexit.register(_default_client.close)  # its idle keep-alive connections, at exit
    return _default_client


def ask(
    prompt: Prompt | None = None,
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
    tools: list[Any] | None = None,
    max_steps: int = toolloop.DEFAULT_MAX_STEPS,
    parallel_tool_calls: bool | None = None,
    tool_choice: Any = None,
    confirm: Any = None,
    stream: bool = True,
    api_key: str | None = None,
    base_url: str | None = None,
    **extra: Any,
) -> Response:
    """Ask Qwen once. Parameters left as None are not sent, so the model's defaults apply.

    ``tools=[fn, ...]`` lets the model call notebook functions: the loop runs the calls it asks for
    and sends their results back, up to ``max_steps`` requests; ``Response.tool_calls`` is the trace."""
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
        **_tool_kw(tools, max_steps, parallel_tool_calls, tool_choice, confirm),
        **extra,
    )


def _tool_kw(tools: Any, max_steps: int, parallel: bool | None, choice: Any, confirm: Any) -> dict[str, Any]:
    given = {"tools": tools, "parallel_tool_calls": parallel, "tool_choice": choice, "confirm": confirm}
    out = {k: v for k, v in given.items() if v is not None}
    if tools is not None:
        out["max_steps"] = max_steps
    return out


async def aask(
    prompt: Prompt | None = None,
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
    tools: list[Any] | None = None,
    max_steps: int = toolloop.DEFAULT_MAX_STEPS,
    parallel_tool_calls: bool | None = None,
    tool_choice: Any = None,
    confirm: Any = None,
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
        **_tool_kw(tools, max_steps, parallel_tool_calls, tool_choice, confirm),
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
    if response.done:
        await client.aclose()
    else:
        response.close_with(client)
    return response
