"""What the emulator says: the answer, reasoning and JSON text of one request.

``SimpleGenerator`` gives plain deterministic text, for tests that assert on exact words. The
default generator is the offline language model (``lm.py``), which samples real text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, Protocol

from .vision import describe, image_parts, image_tokens

__all__ = ["Generator", "SimpleGenerator", "split_tokens"]

_TOKEN = re.compile(r"\s*[\w']+|\s*[^\w\s]|\s+")


def split_tokens(text: str) -> list[str]:
    """Word pieces, each with its leading white space, that join back to ``text``."""
    return _TOKEN.findall(text)


class Generator(Protocol):
    def answer(
        self,
        prompt: str,
        *,
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        presence_penalty: float | None = None,
        seed: int | None = None,
        max_tokens: int = 200,
        stop: list[str] | None = None,
    ) -> Iterator[str]: ...

    def reason(
        self,
        prompt: str,
        *,
        seed: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        budget: int | None = None,
    ) -> Iterator[str]: ...

    def json_text(
        self,
        prompt: str,
        schema: dict[str, Any] | None,
        *,
        seed: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
    ) -> Iterator[str]: ...

    def count_tokens(self, text: str) -> int: ...


class SimpleGenerator:
    """Deterministic text that says what it was asked, for exact assertions."""

    def __init__(self, length: int = 0) -> None:
        self.length = length  # extra filler words, for long streams

    def answer(
        self,
        prompt: str,
        *,
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        presence_penalty: float | None = None,
        seed: int | None = None,
        max_tokens: int = 200,
        stop: list[str] | None = None,
    ) -> Iterator[str]:
        words = " ".join(prompt.split()[:12])
        text = f"You asked: {words}. This is the emulator's answer"
        if temperature is not None:
            text += f" at temperature {temperature}"
        text += "."
        if self.length:
            text += " " + " ".join(f"word{i}" for i in range(self.length))
        for s in stop or []:
            if s and s in text:
                text = text[: text.index(s)]
        yield from split_tokens(text)

    def reason(
        self,
        prompt: str,
        *,
        seed: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        budget: int | None = None,
    ) -> Iterator[str]:
        tokens = split_tokens(f"The question is about {' '.join(prompt.split()[:6])}. I will answer briefly.")
        yield from tokens[: budget or None]

    def json_text(
        self,
        prompt: str,
        schema: dict[str, Any] | None,
        *,
        seed: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
    ) -> Iterator[str]:
        value = _example(schema) if schema else {"answer": " ".join(prompt.split()[:6])}
        yield from split_tokens(json.dumps(value))

    def count_tokens(self, text: str) -> int:
        return len(split_tokens(text))


def _example(schema: dict[str, Any], name: str = "value") -> Any:
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {k: _example(v, k) for k, v in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [_example(schema.get("items") or {"type": "string"}, name) for _ in range(2)]
    if kind in ("integer", "number"):
        return _within(1 if kind == "integer" else 1.5, schema, kind == "integer")
    if kind == "boolean":
        return True
    return f"{name} text"


def _within(value: float, schema: dict[str, Any], integer: bool) -> float:
    """The example number kept inside the schema's minimum and maximum (the middle when both)."""
    low, high = schema.get("minimum"), schema.get("maximum")
    if isinstance(low, (int, float)) and isinstance(high, (int, float)) and low <= high:
        value = (low + high) / 2
    elif isinstance(low, (int, float)):
        value = max(value, low)
    elif isinstance(high, (int, float)):
        value = min(value, high)
    return int(value) if integer else value


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


_SCHEMA_WORDS = re.compile(r"json schema", re.IGNORECASE)


def schema_in_text(text: str) -> dict[str, Any] | None:
    """The first JSON object written after the words "JSON Schema", if the text has one."""
    decoder = json.JSONDecoder()
    for mention in _SCHEMA_WORDS.finditer(text):
        start = text.find("{", mention.end())
        while start >= 0:
            try:
                value, _ = decoder.raw_decode(text, start)
            except ValueError:
                start = text.find("{", start + 1)
                continue
            if isinstance(value, dict) and ("type" in value or "properties" in value):
                return value
            break
    return None


class PrefixCache:
    """DashScope's implicit context cache, roughly: a repeated message prefix of 256+ tokens hits."""

    MIN_TOKENS = 256

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def cached_tokens(self, counts: list[int], keys: list[str]) -> int:
        best = 0
        for i in range(1, len(keys)):
            prefix = "\x1e".join(keys[:i])
            if prefix in self._seen and sum(counts[:i]) >= self.MIN_TOKENS:
                best = sum(counts[:i])
            self._seen.add(prefix)
        return best


def make_completion(
    body: dict[str, Any],
    generator: Generator,
    cache: PrefixCache,
    reply: tuple[str, str | None] | None = None,
    calls: list[dict[str, str]] | None = None,
):  # type: ignore[no-untyped-def]
    """Run the generator for a validated body and package its tokens with honest usage. With
    ``tools`` the answer may be tool calls (``calls``: the ones a test queued), and ``n`` is 1."""
    from ..models import get_model
    from .protocol import Completion, thinking_on
    from .toolcalls import answered_results, plan_calls

    info = get_model(body["model"])
    assert info is not None
    messages = body["messages"]
    texts = [_content_text(m.get("content")) for m in messages]
    counts = [generator.count_tokens(t) + 4 for t in texts]
    prompt = next(_content_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user")
    system = " ".join(t for m, t in zip(messages, texts, strict=True) if m.get("role") == "system")
    steer = f"{system} {prompt}".strip()
    thinking = thinking_on(body)
    sampling = {"temperature": body.get("temperature"), "top_p": body.get("top_p"), "seed": body.get("seed")}
    max_tokens = body.get("max_tokens") or info.max_output
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else [s for s in stop or [] if isinstance(s, str)]

    completion = Completion(model=body["model"], thinking=thinking)
    pictures = list(image_parts(messages))
    most = info.image_budget(bool(body.get("vl_high_resolution_images")))
    completion.image_tokens = sum(image_tokens(u, info.image_patch, most) for u in pictures)
    completion.prompt_tokens = sum(counts) + completion.image_tokens
    if body.get("tools"):  # tool descriptions are input too
        completion.prompt_tokens += generator.count_tokens(json.dumps(body["tools"]))
    completion.cached_tokens = cache.cached_tokens(counts, [json.dumps(m, sort_keys=True) for m in messages])
    # n > 1: more choices, other samples of the same request (seed + i when seeded)
    n = 1 if body.get("tools") else body.get("n") or 1  # forced to 1 when tools are given
    extra = [Completion(model=body["model"], thinking=thinking) for _ in range(1, n)]
    choices = [completion, *extra]
    for i, choice in enumerate(choices):
        seed = body.get("seed")
        sampling["seed"] = None if seed is None else seed + i
        _fill(choice, body, generator, prompt, steer, texts, sampling, max_tokens, stops, reply)
    last = next(m for m in reversed(messages) if m.get("role") == "user")
    seen = " ".join(filter(None, (describe(u) for u in image_parts([last]))))
    if seen and reply is None and not body.get("response_format"):
        for choice in choices:  # what the prompt's pictures show, as a vision model would begin
            choice.answer_tokens = [*split_tokens(seen + "\n\n"), *choice.answer_tokens]
            if len(choice.answer_tokens) > max_tokens:
                choice.answer_tokens = choice.answer_tokens[:max_tokens]
                choice.finish_reason = "length"
    completion.others = choices[1:]
    if body.get("tools") and reply is None:
        completion.tool_calls = plan_calls(body, prompt) if calls is None else calls
        if completion.tool_calls:
            completion.answer_tokens = []
            completion.argument_tokens = [_argument_pieces(c["arguments"]) for c in completion.tool_calls]
            completion.finish_reason = "tool_calls"
        else:
            results = answered_results(messages)
            rf = body.get("response_format") or {}
            json_mode = isinstance(rf, dict) and rf.get("type") in ("json_object", "json_schema")
            if results and not json_mode:  # the answer starts from what the tools returned
                said = " ".join(f"{name} returned {_short(text)}." for name, text in results)
                completion.answer_tokens = [*split_tokens(said + " "), *completion.answer_tokens]
    return completion


def _short(text: str, most: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= most else text[: most - 1] + "…"


def _argument_pieces(arguments: str) -> list[str]:
    """Arguments text in slices of a few characters, as a model writes them; they join back."""
    return [arguments[i : i + 6] for i in range(0, len(arguments), 6)] or [""]


def _fill(
    completion: Any,
    body: dict[str, Any],
    generator: Generator,
    prompt: str,
    steer: str,
    texts: list[str],
    sampling: dict[str, Any],
    max_tokens: int,
    stops: list[str],
    reply: tuple[str, str | None] | None,
) -> None:
    """One choice's reasoning and answer tokens, cut at max_tokens."""
    thinking = completion.thinking
    if reply is not None:
        text, reasoning = reply
        if thinking:
            completion.reasoning_tokens = split_tokens(reasoning or "Thinking about the question.")
        answer = split_tokens(text)
    else:
        if thinking:
            completion.reasoning_tokens = list(
                generator.reason(steer, budget=body.get("thinking_budget"), **sampling)
            )
        rf = body.get("response_format") or {}
        rtype = rf.get("type") if isinstance(rf, dict) else None
        if rtype in ("json_object", "json_schema"):
            if rtype == "json_schema":
                schema = (rf.get("json_schema") or {}).get("schema")
            else:  # JSON mode: a schema written into the messages is followed, as a model would
                schema = schema_in_text("\n".join(texts))
            # the values are about what the user asked, not about the format instructions
            answer = list(generator.json_text(prompt, schema, **sampling))
        else:
            answer = list(
                generator.answer(
                    steer,
                    top_k=body.get("top_k"),
                    presence_penalty=body.get("presence_penalty"),
                    max_tokens=max_tokens + 1,
                    stop=stops or None,
                    **sampling,
                )
            )
    if len(answer) > max_tokens:
        answer = answer[:max_tokens]
        completion.finish_reason = "length"
    completion.answer_tokens = [t for t in answer if t]
