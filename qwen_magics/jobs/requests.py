"""``qwen_magics.batch(requests)``: a plain list of prompts or chat requests as a Batch API job, and
the finisher that turns its output back into Responses.

Each request's ``custom_id`` is its position in the list ("0", "1", ...), so the answers come back
in the list's order whatever order the service wrote them in, across every part of the job.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from .. import config, simulator
from ..api.params import PARAMS
from ..api.request import prepare
from ..api.response import ChunkParser, Event, Response
from ..errors import APIError, ParameterError, api_error
from ..models import BATCH_DISCOUNT, batch_models, estimate_cost, get_model
from . import store
from .files import LIMITS, Limits, encode_line, write_parts
from .job import Batch

__all__ = ["batch", "check_models", "failed", "finish", "read_line", "request_bodies", "retry_failed"]

CHARS_PER_TOKEN = 4  # for the estimate before sending: the usual rule of thumb for English text
ASSUMED_ANSWER = 256  # tokens an answer is assumed to take when max_tokens does not bound it


def batch(
    requests: Sequence[Any],
    *,
    model: str | None = None,
    wait: bool = True,
    completion_window: str = "24h",
    limits: Limits = LIMITS,
    **params: Any,
) -> Any:
    """Send ``requests`` through the Batch API at half the live price, and (``wait=True``) return a
    list of Responses in the same order; with ``wait=False`` the ``Batch`` job at once.

    A request is a prompt (text, or content parts) asked with ``model`` and ``params`` (the
    parameters ``ask`` takes: ``system``, ``temperature``, ``max_tokens``...), or a chat request
    dict (``{"model", "messages", ...}``) sent as it is. Requests for several models become one
    batch per model; more than ``limits`` allow in a file (50,000 requests, 500 MB) become several.
    A request the service refuses comes back as a Response whose ``.error`` says why and whose
    text is empty.
    """
    if isinstance(requests, (str, bytes, dict)) or not isinstance(requests, Sequence):
        raise ParameterError("requests", "batch() takes a list of prompts or chat request dicts")
    if not requests:
        raise ParameterError("requests", "batch() needs at least one request")
    simulator.ensure(explicit=False)
    settings = config.settings(model=model)
    bodies = [_body(r, settings, params) for r in requests]
    check_models({b["model"] for b in bodies})
    folder = store.new_workdir()
    try:
        lines = ((b["model"], encode_line(str(i), b), f"request {i}") for i, b in enumerate(bodies))
        inputs = write_parts(lines, folder, limits=limits)
        job = Batch.submit(
            inputs,
            kind="requests",
            state={"count": len(bodies)},
            completion_window=completion_window,
            estimate=_estimate(bodies),
            settings=settings,
            workdir=folder,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # left behind only when nothing was created
    return job.result() if wait else job


def _body(request: Any, settings: config.Settings, params: dict[str, Any]) -> dict[str, Any]:
    """The chat body of one request, checked as ``ask`` checks it; no stream. A hybrid-thinking
    model is told its thinking switch explicitly, as the Batch API's guide asks."""
    body = _chat_body(request, settings, params)
    info = get_model(str(body.get("model")))
    if info is not None and info.thinking == "hybrid":
        body.setdefault("enable_thinking", info.thinking_default)
    return body


def _chat_body(request: Any, settings: config.Settings, params: dict[str, Any]) -> dict[str, Any]:
    if isinstance(request, dict):
        body = {k: v for k, v in request.items() if k not in ("stream", "stream_options")}
        body.setdefault("model", settings.model)
        if not isinstance(body.get("messages"), list):
            raise ParameterError("requests", "a chat request dict needs its messages: {'messages': [...]}")
        return body
    kw = dict(params)
    system, messages = kw.pop("system", None), kw.pop("messages", None)
    chosen = {k: kw.pop(k, None) for k in PARAMS}
    prep = prepare(
        request,
        settings=settings,
        system=system,
        messages=messages,
        params=chosen,
        stream=False,
        extra=kw,
        require_key=False,
    )
    prep.body.pop("stream", None)  # a batch line never streams
    return prep.body


def check_models(models: Iterable[str]) -> None:
    """A model the table says takes no batch jobs is refused before anything is sent."""
    for name in sorted(models):
        info = get_model(name)
        if info is not None and not info.batch:
            raise ParameterError(
                "model",
                f"{name} does not take Batch API jobs; the models that do: {', '.join(batch_models())}",
            )


def _estimate(bodies: list[dict[str, Any]]) -> float | None:
    """USD at the batch price, from the prompts' length and the answers' max_tokens (or a guess)."""
    total = 0.0
    for body in bodies:
        tokens_in = len(json.dumps(body.get("messages"), ensure_ascii=False)) // CHARS_PER_TOKEN
        tokens_out = body.get("max_tokens") or ASSUMED_ANSWER
        cost = estimate_cost(str(body.get("model")), tokens_in, int(tokens_out))
        if cost is None:
            return None
        total += cost * BATCH_DISCOUNT
    return total


# -- the finisher ---------------------------------------------------------------------------------
def finish(job: Batch) -> list[Response]:
    """A Response per request, in the order of the list (by ``custom_id``, never by line order).
    A failed line's Response has ``.error`` (an APIError with the service's status, code and
    message) and no text; a request neither file mentions has an error saying so."""
    requests = dict(request_bodies(job))
    found: dict[str, Response] = {}
    base_url = job.base_url or ""
    offline = job.settings.offline
    for which, raw in job.lines():
        line = json.loads(raw)
        custom_id = str(line.get("custom_id"))
        found[custom_id] = read_line(which, line, requests.get(custom_id) or {}, base_url, offline)
    ids = _order(job, found)
    missing = APIError("the batch returned no answer for this request; run it again", code="missing")
    out = []
    for custom_id in ids:
        response = found.get(custom_id)
        if response is None:
            request = requests.get(custom_id) or {}
            response = Response(
                request=request, params={}, base_url=base_url, head=[Event("error", data=missing)]
            )
            response.batch = True
        out.append(response)
    return out


def failed(job: Batch) -> list[tuple[int, Response]]:
    """``(position, Response)`` of each request that failed."""
    return [(i, r) for i, r in enumerate(finish(job)) if r.error is not None]


def retry_failed(job: Batch, *, batch: bool = False) -> list[Response]:
    """The job's Responses with the failed ones asked again: live, or as a new batch job."""
    from ..api.client import Client

    responses = finish(job)
    todo = [
        (i, r.request) for i, r in enumerate(responses) if r.error is not None and r.request.get("messages")
    ]
    if not todo:
        return responses
    if batch:
        again = globals()["batch"]([body for _, body in todo], wait=True)
    else:
        with Client(base_url=None if job.offline else job.base_url) as client:  # where the job went
            again = [client.ask(**{**body, "stream": False}).complete() for _, body in todo]
    for (i, _), response in zip(todo, again, strict=True):
        responses[i] = response
    return responses


def request_bodies(job: Batch) -> Iterator[tuple[str, dict[str, Any]]]:
    for part in job.parts:
        if part.input_path is None or not part.input_path.exists():
            continue
        with open(part.input_path, "rb") as f:
            for raw in f:
                if raw.strip():
                    line = json.loads(raw)
                    yield str(line.get("custom_id")), line.get("body") or {}


def _order(job: Batch, found: dict[str, Response]) -> list[str]:
    count = job.state.get("count")
    if isinstance(count, int) and count >= 0:
        return [str(i) for i in range(count)]
    return sorted(found, key=lambda c: (0, int(c), c) if c.isdigit() else (1, 0, c))


def read_line(
    which: str, line: dict[str, Any], request: dict[str, Any], base_url: str, offline: bool = False
) -> Response:
    """The Response of one output or error line (``offline``: from the simulator, so no cost)."""
    answer = line.get("response") or {}
    request_id = answer.get("request_id")
    body = answer.get("body")
    if which == "output" and isinstance(body, dict) and body.get("choices") is not None:
        events = ChunkParser().feed(json.dumps(body))
        response = Response(
            request=request,
            params={},
            base_url=base_url,
            offline=offline,
            request_id=request_id,
            source=iter(events),
        )
        response.complete()
    else:
        error = line.get("error") or {}
        if isinstance(body, dict) and body.get("error"):
            err = api_error(answer.get("status_code"), body, request_id=request_id)
        else:
            err = APIError(
                str(error.get("message") or "the request failed in the batch"),
                code=error.get("code"),
                request_id=request_id,
            )
        response = Response(
            request=request, params={}, base_url=base_url, offline=offline, head=[Event("error", data=err)]
        )
        response.request_id = request_id
    response.batch = True
    return response
