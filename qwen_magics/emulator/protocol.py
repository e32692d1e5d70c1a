"""What DashScope's compatible mode answers to a request body: its checks, wording and chunks.

No sockets here. ``validate`` returns the error DashScope would send (or None); ``Completion`` builds
the non-stream body and the SSE chunks of one answer. Wording and shapes follow DashScope's
documentation and answers captured from the real service.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from ..models import get_model

__all__ = ["Completion", "ProtocolError", "error_body", "new_request_id", "validate"]


@dataclass
class ProtocolError(Exception):
    status: int
    code: str | None
    message: str
    type: str | None = "invalid_request_error"


def new_request_id() -> str:
    return str(uuid.uuid4())


def error_body(err: ProtocolError, request_id: str) -> dict[str, Any]:
    inner: dict[str, Any] = {"message": err.message, "type": err.type, "param": None}
    if err.code:
        inner["code"] = err.code
    return {"error": inner, "id": f"chatcmpl-{request_id}", "request_id": request_id}


def _bad(message: str, code: str = "invalid_parameter_error") -> ProtocolError:
    return ProtocolError(400, code, message)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def mentions_json(messages: list[dict[str, Any]]) -> bool:
    for m in messages:
        content = m.get("content")
        text = content if isinstance(content, str) else json.dumps(content)
        if "json" in text.lower():
            return True
    return False


def thinking_on(body: dict[str, Any]) -> bool:
    info = get_model(body.get("model", ""))
    if info is None:
        return False
    value = body.get("enable_thinking")
    return info.thinks_by_default if value is None else bool(value) and info.thinking != "none"


def validate(body: Any) -> ProtocolError | None:
    """The first rule the body breaks, in DashScope's words, or None."""
    if not isinstance(body, dict):
        return ProtocolError(400, None, "Required body invalid, please check the request body format.")
    model = body.get("model")
    if not model:
        return _bad("you must provide a model parameter.")
    info = get_model(model)
    if info is None:
        return ProtocolError(
            404, "model_not_found", f"The model `{model}` does not exist or you do not have access to it."
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _bad("[] is too short - 'messages'")
    for m in messages:
        if not isinstance(m, dict) or "content" not in m:
            return _bad("The content field is a required field.")
    if not any(m.get("role") == "user" for m in messages):
        return _bad("The input messages do not contain elements with the role of user.")
    pictures = [p for m in messages if isinstance(m.get("content"), list) for p in m["content"]]
    if not info.vision and any(isinstance(p, dict) and p.get("type") == "image_url" for p in pictures):
        return _bad("input content must be a string.")  # a text model's refusal of content parts
    t = body.get("temperature")
    if t is not None:
        if not _is_number(t):
            return _bad("'temperature' must be Float")
        if not 0 <= t < 2:
            return _bad("Temperature should be in [0.0, 2.0)")
    p = body.get("top_p")
    if p is not None:
        if not _is_number(p):
            return _bad("'top_p' must be Float")
        if not 0 < p <= 1:
            return _bad("Range of top_p should be (0.0, 1.0]")
    k = body.get("top_k")
    if k is not None and (not _is_int(k) or k < 0):
        return _bad("Parameter top_k be greater than or equal to 0")
    pp = body.get("presence_penalty")
    if pp is not None and (not _is_number(pp) or not -2 <= pp <= 2):
        return _bad("Presence_penalty should be in [-2.0, 2.0]")
    mt = body.get("max_tokens")
    if mt is not None and (not _is_int(mt) or not 1 <= mt <= info.max_output):
        return _bad(f"Range of max_tokens should be [1, {info.max_output}]")
    n = body.get("n")
    if n is not None and (not _is_int(n) or not 1 <= n <= 4):
        return _bad("Range of n should be [1, 4]")
    if n is not None and n > info.n_max:  # wording not documented: only some models take n > 1
        return _bad(f"The model {model} does not support n greater than {info.n_max}.")
    seed = body.get("seed")
    if seed is not None:
        if not _is_int(seed):
            return _bad("'seed' must be Integer", "invalid_value")
        if seed < 0:
            return _bad(f"{seed} is lesser than the minimum of 0 - 'seed'", "invalid_value")
        if seed > 2**31 - 1:
            return _bad(f"{seed} is greater than the maximum of 2147483647 - 'seed'", "invalid_value")
    stop = body.get("stop")
    if stop is not None and not (
        isinstance(stop, str)
        or (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
        or (isinstance(stop, list) and all(_is_int(s) for s in stop))
    ):
        return _bad(
            'The "stop" parameter must be of type "str", "list[str]", "list[int]", or '
            '"list[list[int]]", and all elements within the list must be of the same type.'
        )
    et = body.get("enable_thinking")
    if et is not None:
        if info.thinking == "none" and et:
            return ProtocolError(
                400,
                "InvalidParameter.NotSupportEnableThinking",
                f"The model {model} does not support enable_thinking.",
            )
        if info.thinking == "only" and et is False:
            return _bad("The value of the enable_thinking parameter is restricted to True.")
    thinking = thinking_on(body)
    tb = body.get("thinking_budget")
    if tb is not None and (not _is_int(tb) or not 0 < tb <= max(info.max_cot, 1)):
        return _bad(
            f"The thinking_budget parameter must be a positive integer and not greater than {info.max_cot}"
        )
    stream = body.get("stream", False)
    if not stream and info.stream_only:
        return _bad(
            "This model only support stream mode, please enable the stream parameter to access the model. "
        )
    if not stream and thinking and not info.nonstream_thinking:
        return _bad("parameter.enable_thinking must be set to false for non-streaming calls")
    rf = body.get("response_format")
    if rf is not None:
        rtype = rf.get("type") if isinstance(rf, dict) else rf
        if rtype not in ("text", "json_object", "json_schema"):
            return _bad(
                "Unknown format of response_format, response_format should be a dict, "
                "includes 'type' and an optional key 'json_schema'. The response_format "
                f"type from user is {rtype}."
            )
        if rtype in ("json_object", "json_schema"):
            if thinking:
                return _bad("Json mode response is not supported when enable_thinking is true")
            if rtype == "json_schema" and (
                not info.json_schema or not isinstance(rf.get("json_schema"), dict)
            ):
                return _bad(f"The model {model} does not support response_format json_schema.")
            if not info.json_object:
                return _bad(f"The model {model} does not support response_format json_object.")
            if rtype == "json_object" and not mentions_json(messages):
                return _bad(
                    "'messages' must contain the word 'json' in some form, to use "
                    "'response_format' of type 'json_object'."
                )
    from .toolcalls import validate_tools  # it builds on ProtocolError

    return validate_tools(body, takes_tools=info.tools, thinking=thinking)


@dataclass
class Completion:
    """One answer: its ids, texts and usage; renders as a body or as SSE chunks."""

    model: str
    request_id: str = field(default_factory=new_request_id)
    created: int = field(default_factory=lambda: int(time.time()))
    reasoning_tokens: list[str] = field(default_factory=list)
    answer_tokens: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    cached_tokens: int = 0
    image_tokens: int = 0  # of prompt_tokens
    finish_reason: str = "stop"
    thinking: bool = False
    others: list[Completion] = field(default_factory=list)  # choices 1.. when n > 1
    tool_calls: list[dict[str, str]] = field(default_factory=list)  # {"id", "name", "arguments"}
    argument_tokens: list[list[str]] = field(default_factory=list)  # each call's arguments in pieces

    @property
    def id(self) -> str:
        return f"chatcmpl-{self.request_id}"

    @property
    def choices(self) -> list[Completion]:
        return [self, *self.others]

    def usage(self) -> dict[str, Any]:
        completion = sum(
            len(c.reasoning_tokens)
            + len(c.answer_tokens)
            + sum(map(len, c.argument_tokens))
            + len(c.tool_calls)
            for c in self.choices
        )
        usage: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }
        if self.thinking:
            usage["completion_tokens_details"] = {
                "reasoning_tokens": sum(len(c.reasoning_tokens) for c in self.choices),
                "text_tokens": completion,
            }
        usage["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        if self.image_tokens:
            usage["prompt_tokens_details"]["image_tokens"] = self.image_tokens
        return usage

    def _message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"content": "".join(self.answer_tokens), "role": "assistant"}
        if self.thinking:
            message["reasoning_content"] = "".join(self.reasoning_tokens)
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "function": {"arguments": call["arguments"], "name": call["name"]},
                    "id": call["id"],
                    "index": i,
                    "type": "function",
                }
                for i, call in enumerate(self.tool_calls)
            ]
        return message

    def body(self) -> dict[str, Any]:
        return {
            "choices": [
                {"message": c._message(), "finish_reason": c.finish_reason, "index": i, "logprobs": None}
                for i, c in enumerate(self.choices)
            ],
            "object": "chat.completion",
            "usage": self.usage(),
            "created": self.created,
            "system_fingerprint": None,
            "model": self.model,
            "id": self.id,
        }

    def _chunk(self, delta: dict[str, Any], finish: str | None = None, index: int = 0) -> bytes:
        chunk = {
            "choices": [{"delta": delta, "finish_reason": finish, "index": index, "logprobs": None}],
            "object": "chat.completion.chunk",
            "usage": None,
            "created": self.created,
            "system_fingerprint": None,
            "model": self.model,
            "id": self.id,
        }
        return sse(chunk)

    def chunks(self, *, include_usage: bool) -> list[bytes]:
        """Role chunk, reasoning phase, answer phase, finish chunk, usage chunk, [DONE]."""
        out: list[bytes] = []
        for i, c in enumerate(self.choices):  # with n > 1, one choice after the other
            if self.thinking:
                first = c.reasoning_tokens[0] if c.reasoning_tokens else ""
                out.append(
                    self._chunk({"content": None, "reasoning_content": first, "role": "assistant"}, None, i)
                )
                for tok in c.reasoning_tokens[1:]:
                    out.append(self._chunk({"content": None, "reasoning_content": tok}, None, i))
                if c.tool_calls:
                    out.extend(c._call_chunks(role=False))
                    continue
                for tok in c.answer_tokens:
                    out.append(self._chunk({"content": tok, "reasoning_content": None}, None, i))
                out.append(self._chunk({"content": "", "reasoning_content": None}, c.finish_reason, i))
            elif c.tool_calls:
                out.extend(c._call_chunks(role=True))
            else:
                out.append(self._chunk({"content": "", "role": "assistant"}, None, i))
                for tok in c.answer_tokens:
                    out.append(self._chunk({"content": tok}, None, i))
                out.append(self._chunk({"content": ""}, c.finish_reason, i))
        if include_usage:
            out.append(
                sse(
                    {
                        "choices": [],
                        "object": "chat.completion.chunk",
                        "usage": self.usage(),
                        "created": self.created,
                        "system_fingerprint": None,
                        "model": self.model,
                        "id": self.id,
                    }
                )
            )
        out.append(b"data: [DONE]\n\n")
        return out

    def _call_chunks(self, *, role: bool) -> list[bytes]:
        """Tool calls as qwen-plus streams them: the first fragment of each call carries its id, name
        and first slice of arguments; the others ``"id": ""`` and more arguments; then a fragment
        with ``"arguments": null`` in a choice without finish_reason, and the finish chunk."""
        out: list[bytes] = []
        for n, (call, pieces) in enumerate(zip(self.tool_calls, self.argument_tokens, strict=True)):
            for k, piece in enumerate(pieces or [""]):
                fn: dict[str, Any] = {"arguments": piece}
                if k == 0:
                    fn = {"name": call["name"], "arguments": piece}
                frag = {"index": n, "id": call["id"] if k == 0 else "", "type": "function", "function": fn}
                delta: dict[str, Any] = {"content": None, "tool_calls": [frag]}
                if role and n == 0 and k == 0:
                    delta["role"] = "assistant"
                out.append(self._chunk(delta))
        last = len(self.tool_calls) - 1
        tail = {"function": {"arguments": None}, "index": last, "id": "", "type": "function"}
        out.append(sse({**self._frame(), "choices": [{"delta": {"tool_calls": [tail]}, "index": 0}]}))
        out.append(self._chunk({}, "tool_calls"))
        return out

    def _frame(self) -> dict[str, Any]:
        return {
            "object": "chat.completion.chunk",
            "usage": None,
            "created": self.created,
            "system_fingerprint": None,
            "model": self.model,
            "id": self.id,
        }


def sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"
