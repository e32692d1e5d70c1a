"""What the emulator makes of pictures: their tokens, counted by size as a vision model counts them,
and one sentence on each (its size and main colour), so a test can see that a picture arrived whole.

A model counts a picture in squares of ``image_patch`` pixels, after scaling it down to at most
``image_tokens`` of them, plus two tokens that mark where it starts and ends. A URL the service
would fetch is not fetched here (no network): it counts as a picture of the model's largest size.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from typing import Any

from ..images import image_size

__all__ = ["describe", "image_parts", "image_tokens"]

# named colours a sentence can say; the main colour is the nearest name most pixels have
_COLOURS = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "grey": (128, 128, 128),
    "red": (220, 30, 30),
    "green": (30, 160, 60),
    "blue": (30, 90, 220),
    "yellow": (240, 220, 40),
    "orange": (250, 140, 20),
    "purple": (130, 50, 160),
    "pink": (240, 150, 190),
    "brown": (130, 80, 40),
    "cyan": (40, 200, 220),
}


def image_parts(messages: list[dict[str, Any]]) -> Iterator[str]:
    """The URL of every picture in the messages, in order."""
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            for p in content:
                if isinstance(p, dict) and p.get("type") == "image_url":
                    url = (p.get("image_url") or {}).get("url")
                    yield url if isinstance(url, str) else ""


def image_tokens(url: str, patch: int, most: int) -> int:
    """The tokens of one picture for a model reading ``patch``-pixel squares, at most ``most``."""
    size = image_size(url)
    if size is None:
        return most + 2
    w, h = size
    tokens = math.ceil(w / patch) * math.ceil(h / patch)
    return max(4, min(tokens, most)) + 2


def describe(url: str) -> str:
    """One sentence on a picture: ``The image is 640×480 pixels, mostly blue.``"""
    size = image_size(url)
    if size is None:
        return f"The image at {url[:80]} was not fetched here." if not url.startswith("data:") else ""
    colour = _main_colour(url)
    return f"The image is {size[0]}×{size[1]} pixels" + (f", mostly {colour}." if colour else ".")


def _main_colour(url: str) -> str | None:
    try:
        import base64

        from PIL import Image
    except ImportError:
        return None
    try:
        data = base64.b64decode(url.partition(";base64,")[2])
        with Image.open(io.BytesIO(data)) as picture:
            small = picture.convert("RGB").resize((32, 32))
    except Exception:
        return None
    raw = small.tobytes()
    pixels: dict[bytes, int] = {}
    for i in range(0, len(raw), 3):
        pixels[raw[i : i + 3]] = pixels.get(raw[i : i + 3], 0) + 1
    counts: dict[str, int] = {}
    for rgb, count in pixels.items():
        name = min(_COLOURS, key=lambda n: sum((x - y) ** 2 for x, y in zip(rgb, _COLOURS[n], strict=True)))
        counts[name] = counts.get(name, 0) + count
    return max(counts, key=lambda n: counts[n]) if counts else None
