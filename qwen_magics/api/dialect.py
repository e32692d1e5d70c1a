"""How a server takes the thinking switch: the ``dialect`` setting, and finding it out when unset.

``thinking`` and ``budget`` are DashScope fields. Other servers that run Qwen3 take the switch in
the chat template's arguments, or not at all:

==========  ==============================================  =====================================
dialect     thinking                                        budget
==========  ==============================================  =====================================
dashscope   ``enable_thinking``                             ``thinking_budget``
vllm        ``chat_template_kwargs: {"enable_thinking"}``   refused before sending
openai      refused before sending                          refused before sending
==========  ==============================================  =====================================

``vllm`` is also what SGLang, llama.cpp's server (``--jinja``) and ``transformers serve`` read.
DashScope URLs (and the emulator's ``/compatible-mode/v1``) are ``dashscope``; for any other URL
with no dialect set, the first request that turns thinking on or off asks the server's ``GET
/models`` once: ``owned_by`` ``vllm``, ``sglang`` or ``llamacpp`` (or transformers serve's model
list) means ``vllm``, DashScope's ``system`` (or an ``x-dashscope-*`` header) means ``dashscope``,
anything else ``openai`` (the safe choice: nothing is sent that the server might refuse). What was
found is kept per base URL and shown by ``%qwen config``.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from .. import config as _config
from ..errors import ParameterError
from .params import WIRE_NAMES

__all__ = [
    "DIALECTS",
    "Dialect",
    "apply",
    "forget",
    "from_models",
    "known",
    "needed",
    "refused_hint",
    "remember",
]

DIALECTS = _config.DIALECTS
TEMPLATE_SERVERS = ("vllm", "sglang", "llamacpp")  # owned_by values of servers reading chat_template_kwargs
FIELDS = ("enable_thinking", "thinking_budget", "chat_template_kwargs")  # what a dialect may add
# how servers say a field is unknown: FastAPI/transformers, pydantic, OpenAI, vLLM, llama.cpp
_REFUSAL = re.compile(
    r"unexpected|unrecognized|unknown|extra|not permitted|not allowed|unsupported|not supported|invalid field"
)
CHANGE = "`%qwen config dialect=NAME`, qwen_magics.configure(dialect=NAME) or QWEN_DIALECT"


@dataclass(frozen=True)
class Dialect:
    name: str
    why: str  # "set by configuration", "a DashScope URL", "found from GET /models: owned_by vllm"


_found: dict[str, Dialect] = {}
_lock = threading.Lock()


def needed(params: Mapping[str, Any]) -> bool:
    """Whether the request carries a field whose wire form depends on the dialect."""
    return params.get("thinking") is not None or params.get("budget") is not None


def known(settings: _config.Settings) -> Dialect | None:
    """The dialect without asking the server: the setting, the URL, or what was found before."""
    if settings.dialect:
        return Dialect(settings.dialect, settings.dialect_source)
    with _lock:
        return _found.get(settings.base_url)


def remember(settings: _config.Settings, dialect: Dialect) -> Dialect:
    with _lock:
        _found[settings.base_url] = dialect
    return dialect


def forget() -> None:
    """Drop what was found (a server at the same URL may have been swapped)."""
    with _lock:
        _found.clear()


def from_models(status: int, raw: bytes, headers: httpx.Headers) -> Dialect:
    """The dialect a ``GET /models`` answer shows."""
    if any(name.lower().startswith("x-dashscope") for name in headers):
        return Dialect("dashscope", "found from GET /models: DashScope's x-dashscope headers")
    if status != 200:
        return Dialect("openai", f"found from GET /models: it answered {status}")
    try:
        data = [m for m in json.loads(raw).get("data") if isinstance(m, dict)]
    except (ValueError, AttributeError, TypeError):
        data = []
    owners = {str(m.get("owned_by", "")).lower() for m in data}
    if data and all(isinstance(m.get("status"), dict) for m in data):
        # transformers serve lists each model with its load status; it applies chat_template_kwargs
        return Dialect("vllm", "found from GET /models: transformers serve's model list")
    for owner in TEMPLATE_SERVERS:
        if owner in owners:
            return Dialect("vllm", f"found from GET /models: owned_by {owner}")
    if owners == {"system"}:
        return Dialect("dashscope", "found from GET /models: owned_by system, as DashScope")
    shown = ", ".join(sorted(o for o in owners if o)) or "nothing"
    return Dialect("openai", f"found from GET /models: owned_by {shown}")


def apply(body: dict[str, Any], params: Mapping[str, Any], dialect: Dialect | None) -> None:
    """Put thinking and budget into ``body`` the way the dialect takes them; refuse what it cannot
    take, before anything is sent."""
    thinking, budget = params.get("thinking"), params.get("budget")
    if thinking is None and budget is None:
        return
    name = dialect.name if dialect else "dashscope"
    if name == "dashscope":
        if thinking is not None:
            body["enable_thinking"] = thinking
        if budget is not None:
            body["thinking_budget"] = budget
        return
    assert dialect is not None
    if name == "openai" and thinking is not None:
        raise ParameterError(
            "thinking",
            f"this server takes no thinking switch (dialect openai, {dialect.why}): leave thinking unset, "
            "or, if it serves Qwen3 reading chat_template_kwargs (vLLM, SGLang, llama.cpp, transformers "
            f"serve), set dialect=vllm with {CHANGE}",
        )
    if budget is not None:
        raise ParameterError(
            "budget",
            f"budget is a DashScope field and this server has none (dialect {name}, {dialect.why}): "
            f"leave budget unset, or, if it takes thinking_budget, set dialect=dashscope with {CHANGE}",
        )
    kwargs = dict(body.get("chat_template_kwargs") or {})
    kwargs["enable_thinking"] = thinking
    body["chat_template_kwargs"] = kwargs


def refused_hint(words: str, body: Mapping[str, Any], dialect: Dialect | None) -> str:
    """When a 4xx answer refuses a field we sent as unknown, which setting changes it; "" otherwise
    (a range error about a known field is the server's own business)."""
    lowered = words.lower()
    if not _REFUSAL.search(lowered):
        return ""
    named = {f for f in body if re.search(rf"\b{re.escape(f.lower())}\b", lowered)}
    for field in FIELDS:
        if field in named:
            name = dialect.name if dialect else "dashscope"
            others = " or ".join(f"dialect={d}" for d in DIALECTS if d != name)
            return (
                f"The server refused {field}, which thinking/budget send under dialect {name}. "
                f"Set the dialect this server speaks ({others}) with {CHANGE}, or leave thinking and "
                "budget unset."
            )
    for param, wire in WIRE_NAMES.items():
        if wire in named:
            return f"The server refused {wire}; leave {param} unset for this server."
    return ""
