"""The emulator playing a server that is not DashScope: how vLLM and strict OpenAI-style servers
take (or refuse) the thinking switch, per the protocol reference's section on other servers.

``Emulator(dialect=...)``:

* ``dashscope``: DashScope itself (``enable_thinking``, ``thinking_budget``), at
  ``/compatible-mode/v1``, ``owned_by: "system"`` and ``x-dashscope-*`` headers.
* ``vllm``: vLLM or SGLang serving Qwen3, at ``/v1``, ``owned_by: "vllm"``: thinking is read from
  ``chat_template_kwargs.enable_thinking``; DashScope's own fields are ignored, as vLLM ignores
  fields it does not know.
* ``openai``: a server that checks fields against OpenAI's Chat Completions (``transformers
  serve`` does): one it does not know is a 422 with FastAPI's ``detail``, no ``[DONE]``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DIALECTS", "OWNED_BY", "as_dashscope", "unknown_fields"]

DIALECTS = ("dashscope", "vllm", "openai")
OWNED_BY = {"dashscope": "system", "vllm": "vllm", "openai": "openai"}

# what OpenAI's Chat Completions takes; a strict server refuses anything else
OPENAI_FIELDS = frozenset(
    {
        "model",
        "messages",
        "audio",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "metadata",
        "modalities",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "reasoning_effort",
        "response_format",
        "seed",
        "service_tier",
        "stop",
        "store",
        "stream",
        "stream_options",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
        "web_search_options",
    }
)


def unknown_fields(body: Any, dialect: str) -> dict[str, Any] | None:
    """A strict server's 422 body for fields it does not know (None when all are known)."""
    if dialect != "openai" or not isinstance(body, dict):
        return None
    extra = sorted(set(body) - OPENAI_FIELDS)
    if not extra:
        return None
    return {"detail": "Unexpected fields in the request: {" + ", ".join(repr(f) for f in extra) + "}"}


def as_dashscope(body: Any, dialect: str) -> Any:
    """The request as DashScope would have been asked it, so one engine answers every dialect."""
    if dialect != "vllm" or not isinstance(body, dict):
        return body
    out = {k: v for k, v in body.items() if k not in ("enable_thinking", "thinking_budget")}
    kwargs = out.pop("chat_template_kwargs", None)
    if isinstance(kwargs, dict) and "enable_thinking" in kwargs:
        out["enable_thinking"] = kwargs["enable_thinking"]
    return out
