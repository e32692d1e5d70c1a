"""The exceptions qwen-magics raises.

::

    QwenError
    ├── ConfigError            no key / unknown region / bad base URL
    ├── ParameterError         a parameter out of DashScope's range; nothing was sent
    ├── APIError               the service answered with an error body
    │   ├── BadRequestError        400
    │   ├── AuthenticationError    401 (keys are region-bound)
    │   ├── PermissionDeniedError  403
    │   ├── NotFoundError          404 (unknown model)
    │   ├── RateLimitError         429
    │   └── ServerError            5xx
    ├── APIConnectionError     no answer: refused, reset, timed out
    ├── StreamInterrupted      the stream broke after tokens arrived (kept on Response.error)
    └── StructuredOutputError  an answer that is not the JSON that was asked for

Every message says what to do next. None contains the API key: messages are built from the
service's answer and our own words, never from request headers.
"""

from __future__ import annotations

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
    429: RateLimitError,
}


def api_error(status: int | None, body: Any, *, request_id: str | None = None) -> APIError:
    """Build the right APIError from a decoded error body (``{"error": {...}}`` or a flat one)."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        err = body if isinstance(body, dict) else {"message": str(body or "")}
    message = str(err.get("message") or "").strip() or f"HTTP {status} with no message"
    code = err.get("code") or None
    etype = err.get("type") or None
    if request_id is None and isinstance(body, dict):
        request_id = body.get("request_id") or _strip_chatcmpl(body.get("id"))
    if status is None:
        cls: type[APIError] = APIError
    elif status >= 500:
        cls = ServerError
    else:
        cls = _BY_STATUS.get(status, APIError)
    return cls(message, status=status, code=code, type=etype, request_id=request_id)


def _strip_chatcmpl(value: Any) -> str | None:
    if isinstance(value, str) and value.startswith("chatcmpl-"):
        return value[len("chatcmpl-") :]
    return value if isinstance(value, str) and value else None
