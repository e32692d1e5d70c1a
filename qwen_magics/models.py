"""The model table: what each Qwen model does with thinking, JSON and streaming, and what it costs.

Figures are Model Studio's international list prices (USD per million tokens, base tier) and its
documented limits. ``batch``: the model takes Batch API jobs in the international region (the
Singapore pages list qwen-max, qwen-plus, qwen-flash and qwen-turbo; Beijing lists more).
``vision``: the model takes pictures (image parts); ``image_pixels`` is the largest picture it
reads at its default resolution (a larger one is scaled down before sending) and ``image_patch``
the side of the square of pixels one image token stands for: Model Studio's vision
guide gives 28 px and 1,280 tokens for Qwen2.5-VL models (qwen-vl-max/plus, QVQ) and 32 px and
2,560 tokens for Qwen3-VL and newer. Where the documentation is uncertain the behaviour is a
field of the model, not a rule in code, so one line changes when the facts do. Both the client
(costs, defaults, checks) and the emulator (what it accepts) read this one table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "BATCH_DISCOUNT",
    "MODELS",
    "ModelInfo",
    "batch_models",
    "estimate_cost",
    "get_model",
    "vision_models",
]

Thinking = Literal["none", "hybrid", "only"]
HIGH_RESOLUTION_TOKENS = 16_384  # a picture's most tokens with vl_high_resolution_images


@dataclass(frozen=True)
class ModelInfo:
    name: str
    context: int
    max_output: int
    thinking: Thinking
    thinking_default: bool
    # prices in USD per million tokens (international, base tier)
    price_in: float
    price_out: float
    price_thinking: float | None = None  # None: reasoning tokens cost price_out
    price_cached: float | None = None  # None: cached input costs price_in
    max_cot: int = 0  # largest thinking_budget; 0 when the model cannot think
    stream_only: bool = False  # refuses stream=false altogether (QwQ)
    nonstream_thinking: bool = True  # thinking allowed without streaming
    json_object: bool = True  # response_format json_object (outside thinking)
    json_schema: bool = False  # response_format json_schema
    n_max: int = 1  # largest n
    vision: bool = False  # takes image parts
    image_patch: int = 0  # pixels on a side of one image token
    image_tokens: int = 0  # most tokens one image takes (default resolution)
    tools: bool = True  # takes ``tools`` (function calling); n must then be 1
    tools_stream: bool = True  # tool calls may stream (older guides said tools could not)
    batch: bool = False  # takes Batch API jobs (international list: qwen-max, -plus, -flash, -turbo)
    note: str = ""

    @property
    def image_pixels(self) -> int:
        """The largest picture (width × height) read at full size; 0 for a text model."""
        return self.image_tokens * self.image_patch**2 if self.vision else 0

    def image_budget(self, high_resolution: bool = False) -> int:
        """Most tokens one picture takes: ``image_tokens``, or 16,384 with ``vl_high_resolution_images``."""
        return HIGH_RESOLUTION_TOKENS if high_resolution and self.vision else self.image_tokens

    @property
    def thinks_by_default(self) -> bool:
        return self.thinking == "only" or (self.thinking == "hybrid" and self.thinking_default)

    def describe_thinking(self) -> str:
        if self.thinking == "none":
            return "no thinking"
        if self.thinking == "only":
            return "always thinks"
        return "thinks by default" if self.thinking_default else "thinking off by default"


MODELS: dict[str, ModelInfo] = {
    m.name: m
    for m in [
        ModelInfo(
            "qwen3.6-plus",
            1_000_000,
            65_536,
            "hybrid",
            True,
            0.50,
            3.00,
            price_cached=0.05,
            max_cot=81_920,
            json_schema=False,
            vision=True,
            image_patch=32,
            image_tokens=2_560,
            note="thinking default on (moderate confidence); JSON Schema support unconfirmed; "
            "takes images (third-party catalogs)",
        ),
        ModelInfo(
            "qwen3.5-plus",
            1_000_000,
            65_536,
            "hybrid",
            True,
            0.40,
            2.40,
            max_cot=81_920,
            json_schema=False,
            vision=True,
            image_patch=32,
            image_tokens=2_560,
            note="takes images (third-party catalogs)",
        ),
        ModelInfo(
            "qwen3.5-flash",
            1_000_000,
            65_536,
            "hybrid",
            True,
            0.10,
            0.40,
            max_cot=81_920,
            json_schema=True,
            note="price from third-party catalogs",
        ),
        ModelInfo(
            "qwen-plus",
            1_000_000,
            32_768,
            "hybrid",
            False,
            0.40,
            1.20,
            price_thinking=4.00,
            max_cot=38_912,
            nonstream_thinking=False,
            json_schema=True,
            n_max=4,
            batch=True,
        ),
        ModelInfo(
            "qwen-flash",
            1_000_000,
            32_768,
            "hybrid",
            False,
            0.05,
            0.40,
            max_cot=38_912,
            nonstream_thinking=False,
            batch=True,
        ),
        ModelInfo(
            "qwen-turbo",
            1_000_000,
            16_384,
            "hybrid",
            False,
            0.05,
            0.20,
            price_thinking=0.50,
            max_cot=38_912,
            nonstream_thinking=False,
            batch=True,
        ),
        ModelInfo(
            "qwen3-max",
            262_144,
            65_536,
            "none",
            False,
            1.20,
            6.00,
            note="the alias may now point to a hybrid snapshot; emulated without thinking",
        ),
        ModelInfo(
            "qwq-plus",
            131_072,
            8_192,
            "only",
            True,
            0.80,
            2.40,
            max_cot=32_768,
            stream_only=True,
            json_object=False,
            tools=False,
            note="the guides list no function calling for QwQ",
        ),
        # the vision models (protocol reference §12); limits and prices from Model Studio's model
        # list, lower confidence than the text models' above
        ModelInfo(
            "qwen3-vl-plus",
            262_144,
            32_768,
            "hybrid",
            False,
            0.20,
            1.60,
            max_cot=81_920,
            vision=True,
            image_patch=32,
            image_tokens=2_560,
        ),
        ModelInfo(
            "qwen3-vl-flash",
            262_144,
            32_768,
            "hybrid",
            False,
            0.05,
            0.40,
            max_cot=81_920,
            vision=True,
            image_patch=32,
            image_tokens=2_560,
        ),
        ModelInfo(
            "qwen-vl-max",
            131_072,
            8_192,
            "none",
            False,
            0.80,
            3.20,
            vision=True,
            image_patch=28,
            image_tokens=1_280,
        ),
        ModelInfo(
            "qwen-vl-plus",
            131_072,
            8_192,
            "none",
            False,
            0.21,
            0.63,
            vision=True,
            image_patch=28,
            image_tokens=1_280,
        ),
        ModelInfo(
            "qvq-max",
            131_072,
            8_192,
            "only",
            True,
            1.20,
            4.80,
            max_cot=16_384,
            stream_only=True,
            json_object=False,
            vision=True,
            image_patch=28,
            image_tokens=1_280,
        ),
        ModelInfo(
            "qwen3-omni-flash",
            65_536,
            16_384,
            "hybrid",
            False,
            0.43,
            1.66,
            max_cot=32_768,
            stream_only=True,
            json_object=False,
            vision=True,
            image_patch=32,
            image_tokens=2_560,
            note="audio and video in as well (not used here); prices of text input and output",
        ),
    ]
}


def vision_models() -> list[str]:
    """The models of the table that take images."""
    return [m.name for m in MODELS.values() if m.vision]


def batch_models() -> list[str]:
    """The models of the table that take Batch API jobs."""
    return [m.name for m in MODELS.values() if m.batch]


def get_model(name: str) -> ModelInfo | None:
    """The table's entry for a model or one of its snapshots (``qwen-plus-2025-07-28``)."""
    if name in MODELS:
        return MODELS[name]
    for base in sorted(MODELS, key=len, reverse=True):
        if name.startswith(base + "-") and (name[len(base) + 1 :][:1].isdigit() or "latest" in name):
            return MODELS[base]
    return None


BATCH_DISCOUNT = 0.5  # Batch API lines cost half the live price, input and output alike


def estimate_cost(
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    reasoning_tokens: int = 0,
    cached_tokens: int = 0,
) -> float | None:
    """Estimated USD for one call from the table's base-tier prices; None for an unknown model."""
    info = get_model(model)
    if info is None:
        return None
    cached = min(cached_tokens, prompt_tokens)
    reasoning = min(reasoning_tokens, completion_tokens)
    price_cached = info.price_in if info.price_cached is None else info.price_cached
    price_think = info.price_out if info.price_thinking is None else info.price_thinking
    total = (
        (prompt_tokens - cached) * info.price_in
        + cached * price_cached
        + (completion_tokens - reasoning) * info.price_out
        + reasoning * price_think
    )
    return total / 1_000_000
