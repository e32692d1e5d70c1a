"""The wire side of one request: its body and headers, the error an answer means, whether to retry.

No waiting and no connection here: ``client.py`` drives these pieces, sync and async alike. This is
the one place where httpx's transport exceptions become qwen-magics errors, and the one place the
API key goes into a header.
"""

from __future__ import annotations

import json
import random
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from .. import config as _config
from ..errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    ConfigError,
    QwenError,
    StreamInterrupted,
    api_error,
)
from ..images import fit_messages
from ..models import get_model
from .dialect import Dialect, refused_hint
from .dialect import apply as apply_dialect
from .params import Prompt, build_body, build_messages, check_images, check_params

__all__ = [
    "BackoffGate",
    "Prepared",
    "Retry",
    "auth_headers",
    "check_key",
    "error_from_body",
    "map_transport",
    "model_ids",
    "prepare",
    "retry_after_header",
    "retryable",
]


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
class Prepared:
    url: str
    headers: dict[str, str]
    body: dict[str, Any]
    params: dict[str, Any]
    settings: _config.Settings
    stream: bool
    dialect: Dialect | None = None


def prepare(
    prompt: Prompt | None,
    *,
    settings: _config.Settings,
    system: str | None,
    messages: Any,
    params: dict[str, Any],
    stream: bool,
    extra: Mapping[str, Any],
    dialect: Dialect | None = None,
    require_key: bool = True,
) -> Prepared:
    """The request's body and headers. ``dialect`` says how thinking and budget go on the wire
    (None: DashScope's fields); a dialect that cannot take them refuses here, before sending.
    ``require_key`` False: the body alone, for a replay that may never send it."""
    given = {k: v for k, v in params.items() if v is not None}
    check_params(given, settings.model, stream=stream)
    msgs = build_messages(prompt, system=system, messages=messages)
    check_images(settings.model, msgs)
    info = get_model(settings.model)
    if info is not None and info.vision:  # vl_high_resolution_images raises what the model reads
        most = info.image_budget(bool(extra.get("vl_high_resolution_images")))
        msgs = fit_messages(msgs, most * info.image_patch**2)
    if require_key:
        check_key(settings)
    plain = {k: v for k, v in given.items() if k not in ("thinking", "budget")}
    body = build_body(settings.model, msgs, plain, stream=stream, extra=extra)
    apply_dialect(body, given, dialect)
    headers = {
        "Content-Type": "application/json",
        "Accept": "text/event-stream" if stream else "application/json",
    }
    headers.update(auth_headers(settings) if require_key else {})
    return Prepared(f"{settings.base_url}/chat/completions", headers, body, given, settings, stream, dialect)


def check_key(settings: _config.Settings) -> None:
    """Qwen Cloud needs a key: say how to give one (or how to go without)."""
    if settings.api_key is None and settings.base_url_source == "region":
        raise ConfigError(
            "no API key: run qwen_magics.login() (or %qwen login), which asks for it without showing "
            f"it, or set DASHSCOPE_API_KEY (a key from Model Studio, region {settings.region}), "
            "point DASHSCOPE_BASE_URL at an OpenAI-compatible server, or "
            "use the offline simulator: QWEN_OFFLINE=1, or qwen_magics.offline() first "
            "(`%load_ext qwen_magics` starts it on its own when no key is set)"
        )


def auth_headers(settings: _config.Settings) -> dict[str, str]:
    """The Authorization header. Blanks around the key (a pasted line break) are dropped; a character
    a header cannot carry is refused by position, because httpx's own error would print the key."""
    if not settings.api_key:
        return {}
    key = settings.api_key.strip()
    if not key:
        raise ConfigError("the API key is blank; set DASHSCOPE_API_KEY to the key from Model Studio")
    problem = _config.key_problem(key)
    if problem:
        raise ConfigError(f"{problem}; copy the key again into DASHSCOPE_API_KEY (or %qwen login)")
    return {"Authorization": f"Bearer {key}"}


def error_from_body(
    status: int, raw: bytes, headers: httpx.Headers, settings: _config.Settings, prep: Prepared | None = None
) -> APIError:
    """An error body is JSON, or one SSE ``data:`` line when the request asked to stream. When the
    server refuses a field of ``prep``'s body as unknown, the hint names the setting that changes it."""
    text = raw.decode("utf-8", errors="replace").strip()
    body: Any
    if text.startswith("data:"):
        text = text[5:].strip().split("\n", 1)[0]
    try:
        body = json.loads(text) if text else ""
    except ValueError:
        body = text  # plain text, or a proxy's HTML page: errors.server_words reads either
    err = api_error(status, body, request_id=headers.get("x-request-id"))
    if isinstance(err, AuthenticationError):
        if settings.base_url_source == "region" or settings.base_url in _config.REGIONS.values():
            err.hint = (
                f"The key was refused. Keys only work in their own region; this request went to "
                f"{settings.where}. Run %qwen login again and choose the key's region, or set "
                "DASHSCOPE_API_KEY or QWEN_REGION."
            )
        else:
            err.hint = (
                f"The key was refused by {settings.where}. Run %qwen login again with that server's "
                "key, or set DASHSCOPE_API_KEY."
            )
        err.args = (err._compose(),)
    elif prep is not None and 400 <= status < 500:
        hint = refused_hint(err.message, prep.body, prep.dialect)
        if hint:
            err.hint = hint
            err.args = (err._compose(),)
    return err


def model_ids(status: int, raw: bytes, headers: httpx.Headers, settings: _config.Settings) -> list[str]:
    """The ids of a ``GET /models`` answer (``{"data": [{"id": ...}, ...]}``); an error answer raises
    the same APIError a chat request would get."""
    if status != 200:
        raise error_from_body(status, raw, headers, settings)
    try:
        data = json.loads(raw).get("data")
    except (ValueError, AttributeError):
        data = None
    if not isinstance(data, list):
        raise APIError(
            f"{settings.where} answered GET /models without a model list; check the base URL",
            status=status,
            request_id=headers.get("x-request-id"),
        )
    return [str(m["id"]) for m in data if isinstance(m, dict) and m.get("id")]


def retry_after_header(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def map_transport(exc: Exception, where: str) -> QwenError:
    """The one place where httpx's transport exceptions become ours."""
    if isinstance(exc, httpx.TimeoutException):
        return APIConnectionError(
            f"no answer from {where} in time ({type(exc).__name__}); check the network or raise the timeout"
        )
    refused = _certificate_refused(exc)
    if refused is not None:
        error = APIConnectionError(
            f"could not connect to {where}: its TLS certificate is not trusted ({refused}). If the server "
            "uses a certificate authority of your own, set SSL_CERT_FILE (or SSL_CERT_DIR) to it before "
            "the first request; otherwise check the base URL"
        )
        error.retryable = False
        return error
    if isinstance(exc, httpx.ConnectError):
        return APIConnectionError(f"could not connect to {where}: {exc}; check the base URL and the network")
    return APIConnectionError(f"the connection to {where} failed: {type(exc).__name__}: {exc}")


def _certificate_refused(exc: BaseException) -> str | None:
    """Why the server's certificate failed verification, when that is what happened."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen.verify_message or seen.reason or "certificate verify failed"
        seen = seen.__cause__ or seen.__context__
    return None


def retryable(error: QwenError) -> bool:
    if isinstance(error, APIError):
        return error.retryable
    if isinstance(error, APIConnectionError):
        return error.retryable
    return isinstance(error, StreamInterrupted)
