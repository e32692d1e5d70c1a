"""From a user's parameters to a request body, checked against DashScope's ranges first.

A parameter that is None was not given and is not sent, so the model's own default applies. A bad
value raises ParameterError naming the parameter and its range; nothing is sent.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .. import images
from ..errors import ParameterError
from ..models import MODELS, ModelInfo, get_model, vision_models

__all__ = [
    "PARAMS",
    "Prompt",
    "WIRE_NAMES",
    "always_thinks",
    "build_body",
    "check_images",
    "check_params",
    "check_text",
    "parse_value",
]

SEED_MAX = 2**31 - 1
# a prompt: text, or a list of text and pictures (strings, content parts, Figures, Images)
Prompt = str | Sequence[Any]

# user name -> wire name
WIRE_NAMES = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "presence_penalty": "presence_penalty",
    "thinking": "enable_thinking",
    "budget": "thinking_budget",
    "max_tokens": "max_tokens",
    "seed": "seed",
    "stop": "stop",
    "response_format": "response_format",
}
PARAMS = tuple(WIRE_NAMES)

# the type of each parameter when it is typed as text
_WHOLE = ("top_k", "max_tokens", "seed", "budget")
_NUMBER = ("temperature", "top_p", "presence_penalty")
_TEXT = ("model", "system", "stop", "history")  # history: a file, or off
_NOT_GIVEN = ("", "none", "null", "default")
_BOOLS = {
    **dict.fromkeys(("on", "true", "yes", "1"), True),
    **dict.fromkeys(("off", "false", "no", "0"), False),
}

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _number(name: str, value: Any, *, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = "a whole number" if integer else "a number"
        raise ParameterError(name, f"{name} must be {kind}; got {value!r}")
    if integer and not isinstance(value, int):
        raise ParameterError(name, f"{name} must be a whole number; got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ParameterError(name, f"{name} must be a finite number; got {value!r}")
    return float(value)


def _in_range(
    name: str,
    value: Any,
    low: float,
    high: float,
    text: str,
    *,
    integer: bool = False,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    x = _number(name, value, integer=integer)
    too_low = x <= low if low_open else x < low
    too_high = x >= high if high_open else x > high
    if too_low or too_high:
        raise ParameterError(name, f"{name} must be in {text} (DashScope's range); got {value!r}")


def check_text(name: str, text: str) -> None:
    """Reject text the service cannot take or that is surely a mistake: lone surrogates, NUL..."""
    if not isinstance(text, str):
        raise ParameterError(name, f"{name} must be text; got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ParameterError(
            name,
            f"{name} holds invalid Unicode at character {exc.start} (a lone surrogate); "
            "fix the text or decode it with errors='replace'",
        ) from None
    bad = _CONTROL.search(text)
    if bad:
        raise ParameterError(
            name,
            f"{name} holds the control character {bad.group()!r} at character {bad.start()}; "
            "remove it (tabs and newlines are fine)",
        )


def parse_value(name: str, text: str) -> Any:
    """A value typed as text (``%qwen config``, a ``--compare`` grid, a panel field) as its parameter's
    type: nothing, ``default`` or ``none`` is None (not sent); ``on`` / ``off`` for thinking; whole
    numbers and numbers; text for model, system and stop. A name that is not a parameter (``raw``,
    ``timeout``) gets the type its text looks like. Ranges are check_params' business."""
    word = text.strip()
    low = word.lower()
    if low in _NOT_GIVEN:
        return None
    if name in _TEXT:
        return word
    if name == "thinking":
        if low not in _BOOLS:
            raise ParameterError(name, f"thinking={word!r}: write on or off (or default)")
        return _BOOLS[low]
    if name == "response_format":
        if word not in ("text", "json_object"):
            raise ParameterError(name, f"response_format={word!r}: write text or json_object")
        return {"type": word}
    if name in _WHOLE or name in _NUMBER:
        try:
            return int(word) if name in _WHOLE else float(word)
        except ValueError:
            kind = "a whole number" if name in _WHOLE else "a number"
            raise ParameterError(name, f"{name}={word!r} is not {kind}") from None
    if low in _BOOLS and not low.isdigit():
        return _BOOLS[low]
    for number in (int, float):
        try:
            return number(word)
        except ValueError:
            pass
    return word


def check_params(params: Mapping[str, Any], model: str, *, stream: bool = True) -> None:
    """Check the given (non-None) parameters, against the model table when it knows the model."""
    p = {k: v for k, v in params.items() if v is not None}
    info = get_model(model)
    if "temperature" in p:
        _in_range("temperature", p["temperature"], 0, 2, "[0, 2)", high_open=True)
    if "top_p" in p:
        _in_range("top_p", p["top_p"], 0, 1, "(0, 1]", low_open=True)
    if "top_k" in p:
        _in_range("top_k", p["top_k"], 0, math.inf, "[0, ∞) (0 or above 100 turns top-k off)", integer=True)
    if "presence_penalty" in p:
        _in_range("presence_penalty", p["presence_penalty"], -2, 2, "[-2, 2]")
    if "max_tokens" in p:
        high = info.max_output if info else math.inf
        _in_range(
            "max_tokens",
            p["max_tokens"],
            1,
            high,
            f"[1, {info.max_output}] for {info.name}" if info else "[1, ∞)",
            integer=True,
        )
    if "seed" in p:
        _in_range("seed", p["seed"], 0, SEED_MAX, f"[0, {SEED_MAX}] (2^31-1)", integer=True)
    if "thinking" in p and not isinstance(p["thinking"], bool):
        raise ParameterError("thinking", f"thinking must be True, False or None; got {p['thinking']!r}")
    if "budget" in p:
        high = info.max_cot if info and info.max_cot else math.inf
        _in_range(
            "budget",
            p["budget"],
            0,
            high,
            f"(0, {info.max_cot}] for {info.name}" if info and info.max_cot else "(0, ∞)",
            integer=True,
            low_open=True,
        )
    if "stop" in p:
        stop = p["stop"]
        ok = isinstance(stop, str) or (
            isinstance(stop, Sequence) and stop and all(isinstance(s, str) and s for s in stop)
        )
        if not ok:
            raise ParameterError("stop", f"stop must be a string or a list of strings; got {stop!r}")
        for text in [stop] if isinstance(stop, str) else stop:
            check_text("stop", text)  # a lone surrogate would fail in the JSON encoder, after the checks
    if "response_format" in p:
        rf = p["response_format"]
        if not isinstance(rf, Mapping) or rf.get("type") not in ("text", "json_object", "json_schema"):
            raise ParameterError(
                "response_format",
                'response_format must be {"type": "text"}, {"type": "json_object"} or '
                f'{{"type": "json_schema", "json_schema": {{...}}}}; got {rf!r}',
            )
    if info is None:
        return
    thinking = p.get("thinking")
    if thinking is False and info.thinking == "only":
        raise ParameterError("thinking", f"{info.name} always thinks; thinking cannot be turned off")
    if thinking is True and info.thinking == "none":
        raise ParameterError("thinking", f"{info.name} has no thinking mode; leave thinking unset")
    will_think = info.thinks_by_default if thinking is None else thinking
    if "budget" in p and not will_think:
        raise ParameterError("budget", "budget limits thinking; turn thinking on to use it")
    json_mode = isinstance(p.get("response_format"), Mapping) and p["response_format"].get("type") in (
        "json_object",
        "json_schema",
    )
    if json_mode and info.thinking == "only":
        raise always_thinks(info, schema=p["response_format"]["type"] == "json_schema")
    if json_mode and will_think:
        raise ParameterError(
            "response_format",
            f"JSON mode is refused while thinking is on ({info.name} "
            f"{'thinks by default' if thinking is None else 'was asked to think'}); "
            "pass thinking=False",
        )
    if json_mode and p["response_format"]["type"] == "json_schema" and not info.json_schema:
        raise ParameterError("response_format", f"{info.name} has no JSON Schema mode; use json_object")
    if not stream and info.stream_only:
        raise ParameterError("stream", f"{info.name} only answers streaming requests; stream=True")
    if not stream and will_think and not info.nonstream_thinking:
        raise ParameterError(
            "stream", f"{info.name} thinks only in streaming calls; stream=True or thinking=False"
        )


def always_thinks(info: ModelInfo, *, schema: bool = False) -> ParameterError:
    """JSON mode on a model that cannot stop thinking: the refusal, naming models that can stop."""
    able = [m for m in MODELS.values() if m.thinking == "hybrid" and m.json_object]
    if schema:  # those with a JSON Schema mode first
        able.sort(key=lambda m: not m.json_schema)
    names = ", ".join(m.name for m in able[:3])
    return ParameterError(
        "model",
        f"{info.name} always thinks, and JSON mode is refused while thinking; use a model that can "
        f"turn thinking off ({names}: structured output turns it off for that request), "
        f"or ask {info.name} for plain text instead",
    )


def build_body(
    model: str,
    messages: list[dict[str, Any]],
    params: Mapping[str, Any],
    *,
    stream: bool,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON body: only the parameters that were given, under their wire names."""
    body: dict[str, Any] = {"model": model, "messages": messages}
    for name, value in params.items():
        if value is not None:
            body[WIRE_NAMES[name]] = list(value) if name == "stop" and not isinstance(value, str) else value
    if extra:
        body.update(extra)
    body["stream"] = stream
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def build_messages(
    prompt: Prompt | None,
    *,
    system: str | None = None,
    messages: Sequence[Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """System message first (when given), then earlier turns, then the prompt as the user turn."""
    out: list[dict[str, Any]] = []
    history = [dict(m) for m in messages or []]
    for i, m in enumerate(history):
        if not isinstance(m.get("role"), str) or "content" not in m:
            raise ParameterError("messages", f"messages[{i}] needs a 'role' and a 'content'")
        if isinstance(m["content"], str):
            check_text(f"messages[{i}]", m["content"])
    if system is not None:
        check_text("system", system)
        history = [m for m in history if m["role"] != "system"]
        out.append({"role": "system", "content": system})
    out.extend(history)
    if isinstance(prompt, (list, tuple)):
        parts = _parts(prompt)
        if parts:
            check_text("prompt", images.text_of(parts))
            out.append({"role": "user", "content": parts})
    elif isinstance(prompt, str) and prompt.strip():
        check_text("prompt", prompt)
        out.append({"role": "user", "content": prompt})
    if not any(m["role"] == "user" for m in out):
        raise ParameterError("prompt", "the prompt is empty; write the question to ask")
    return out


def _parts(prompt: Sequence[Any]) -> list[dict[str, Any]]:
    """A prompt given as a list: its content parts, where a string is text and a picture (a Figure,
    a PIL Image, ``qwen_magics.image(...)``) an image part; text that is only blanks is left out."""
    out: list[dict[str, Any]] = []
    for i, item in enumerate(prompt):
        if isinstance(item, str):
            if item.strip() or (out and out[-1].get("type") == "text"):
                out.append({"type": "text", "text": item})
            continue
        if isinstance(item, Mapping) and item.get("type") in ("text", "image_url"):
            out.append(dict(item))
            continue
        found = images.part(item)
        if found is None:
            raise ParameterError(
                "prompt",
                f"prompt[{i}] is a {type(item).__name__}: a prompt given as a list holds text and pictures "
                "(a Figure, a PIL Image, qwen_magics.image(path, URL or bytes))",
            )
        out.append(found)
    return out


def check_images(model: str, messages: Sequence[Mapping[str, Any]]) -> None:
    """A model the table knows to read text only refuses a picture here, before anything is sent."""
    if not any(images.has_images(m.get("content")) for m in messages):
        return
    info = get_model(model)
    if info is None or info.vision:
        return
    raise ParameterError(
        "prompt",
        f"{model} reads text only and the prompt has a picture; ask a model that takes images: "
        f"{', '.join(vision_models())} (e.g. -m qwen3-vl-plus); nothing was sent",
    )
