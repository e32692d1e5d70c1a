"""The exceptions qwen-magics raises.

::

    QwenError
    ├── ConfigError            no key / unknown region / bad base URL
    ├── ParameterError         a parameter out of DashScope's range; nothing was sent
    ├── APIError               the service answered with an error body
    │   ├── BadRequestError        400, 422
    │   ├── AuthenticationError    401 (keys are region-bound)
    │   ├── PermissionDeniedError  403
    │   ├── NotFoundError          404 (unknown model)
    │   ├── RateLimitError         429
    │   └── ServerError            5xx
    ├── APIConnectionError     no answer: refused, reset, timed out
    ├── StreamInterrupted      the stream broke after tokens arrived (kept on Response.error)
    ├── ReplayMiss             replay only: no recorded answer for this request; nothing was sent
    └── StructuredOutputError  an answer that is not the JSON that was asked for

Every message says what to do next. None contains the API key: messages are built from the
service's answer and our own words, never from request headers.
"""

from __future__ import annotations

import html
import re
from http import HTTPStatus
from typing import Any

__all__ = [
    "APIConnectionError",
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "ConfigError",
    "NotFoundError",
    "ParameterError",
    "PermissionDeniedError",
    "QwenError",
    "RateLimitError",
    "ReplayMiss",
    "ServerError",
    "StreamInterrupted",
    "StructuredOutputError",
    "api_error",
]


class QwenError(Exception):
    """Base class of every error qwen-magics raises."""


class ConfigError(QwenError):
    """The settings do not allow a request (no key, unknown region, malformed base URL)."""


class ParameterError(QwenError, ValueError):
    """A parameter outside DashScope's range. Raised before anything is sent."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


class APIError(QwenError):
    """The service answered with an error: HTTP status, DashScope ``code``, message, request id."""

    hint = ""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        type: str | None = None,
        request_id: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.code = code
        self.type = type
        self.request_id = request_id
        if hint is not None:
            self.hint = hint
        super().__init__(self._compose())

    def _compose(self) -> str:
        head = " ".join(str(p) for p in (self.status, self.code) if p)
        text = f"{head}: {self.message}" if head else self.message
        if self.hint:
            text = f"{text} {self.hint}"
        if self.request_id:
            text = f"{text} (request id {self.request_id})"
        return text

    @property
    def retryable(self) -> bool:
        return self.status in RETRY_STATUSES


class BadRequestError(APIError):
    hint = "Check the parameters and the messages; the request was not retried."


class AuthenticationError(APIError):
    hint = "Set DASHSCOPE_API_KEY to a key of that region, or set QWEN_REGION to the key's region."


class PermissionDeniedError(APIError):
    hint = "Check that the account may use this model and has quota left."


class NotFoundError(APIError):
    hint = "List the available models with `%qwen models` and choose one with -m."


class RateLimitError(APIError):
    hint = "The request rate or token quota was exceeded; wait a little and run again."


class ServerError(APIError):
    hint = "The service had a problem; run again in a moment."


class APIConnectionError(QwenError):
    """The service could not be reached, or stopped answering, before any token arrived."""

    retryable = True  # False when waiting cannot help (a certificate that is not trusted)


class StreamInterrupted(QwenError):
    """The stream broke after tokens arrived; the partial answer is kept on the Response."""


class ReplayMiss(QwenError):
    """``%qwen replay only``: the record holds no answer to this request, so nothing was sent."""


class StructuredOutputError(QwenError):
    """The answer could not be parsed or validated as the JSON that was asked for."""

    def __init__(self, message: str, *, text: str = "", attempts: int = 1) -> None:
        super().__init__(message)
        self.text = text
        self.attempts = attempts


RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    422: BadRequestError,  # FastAPI's validation errors (transformers serve, proxies)
    429: RateLimitError,
}


def api_error(status: int | None, body: Any, *, request_id: str | None = None) -> APIError:
    """Build the right APIError from an error body: decoded JSON in any shape servers use, or text."""
    message, code, etype = server_words(status, body)
    if request_id is None and isinstance(body, dict):
        request_id = body.get("request_id") or _strip_chatcmpl(body.get("id"))
    if status is None:
        cls: type[APIError] = APIError
    elif status >= 500:
        cls = ServerError
    else:
        cls = _BY_STATUS.get(status, APIError)
    return cls(message, status=status, code=code, type=etype, request_id=request_id)


def server_words(status: int | None, body: Any) -> tuple[str, str | None, str | None]:
    """The server's own message (and code and type) from each shape servers answer errors in:
    ``{"error": {...}}`` (DashScope, OpenAI, llama.cpp, LiteLLM), vLLM's flat ``{"object": "error",
    "message": ...}``, FastAPI's ``detail`` (a string, or a list of ``{loc, msg}``), ``{"error":
    "text"}``, ``{"message": ...}``, plain text, an HTML error page (its title or heading, never
    markup); an empty one gives the status's reason phrase."""
    message, code, etype = "", None, None
    if isinstance(body, dict):
        err = body.get("error")
        where = err if isinstance(err, dict) else body
        code, etype = where.get("code"), where.get("type")
        if isinstance(err, dict):
            message = str(err.get("message") or "")
        elif isinstance(err, str):
            message = err
        elif isinstance(body.get("detail"), str):
            message = body["detail"]
        elif isinstance(body.get("detail"), list):
            message = "; ".join(_detail_item(item) for item in body["detail"])
        elif body.get("message"):
            message = str(body["message"])
    elif isinstance(body, str):
        message = _page_words(body)
    message = " ".join(message.split())[:500]
    if not message:
        message = _reason(status)
    if isinstance(code, int) or (isinstance(code, str) and code == str(status)):
        code = None  # vLLM repeats the status as its code
    return message, (str(code) if code else None), (str(etype) if etype else None)


def _detail_item(item: Any) -> str:
    """One FastAPI/pydantic validation item: ``body.temperature: Input should be ...``."""
    if not isinstance(item, dict):
        return str(item)
    loc = ".".join(str(part) for part in item.get("loc") or ())
    msg = str(item.get("msg") or item.get("message") or "")
    return f"{loc}: {msg}" if loc else msg


def _page_words(text: str) -> str:
    """Plain text as it is; an HTML page by its title or first heading, without markup."""
    if not re.search(r"<\s*(html|head|body|title|h1|!doctype)\b", text, re.I):
        return text
    for tag in ("title", "h1", "h2"):
        found = re.search(rf"<{tag}[^>]*>(.*?)</{tag}\s*>", text, re.I | re.S)
        if found:
            words = html.unescape(re.sub(r"<[^>]+>", " ", found.group(1))).strip()
            if words:
                return words
    return html.unescape(re.sub(r"<[^>]+>", " ", re.sub(r"(?is)<(script|style).*?</\1\s*>", " ", text)))


def _reason(status: int | None) -> str:
    """The status's reason phrase, for an error that came with no words."""
    try:
        return f"{HTTPStatus(status).phrase} (the server gave no message)" if status else "no message"
    except ValueError:
        return f"HTTP {status} with no message"


def _strip_chatcmpl(value: Any) -> str | None:
    if isinstance(value, str) and value.startswith("chatcmpl-"):
        return value[len("chatcmpl-") :]
    return value if isinstance(value, str) and value else None
