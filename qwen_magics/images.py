"""Images as parts of a message: figures, pictures and files from the notebook, as the service takes them.

A prompt with an image in it is a list of OpenAI-style content parts, text and ``image_url`` in the
order they were written; the image is a ``data:`` URL of its bytes, or an ``http(s)`` URL the
service fetches itself (nothing here downloads). ``part`` knows the values a notebook has: a
matplotlib Figure (or Axes), a PIL Image, an ``IPython.display.Image``, and ``image(...)`` for a
path, a URL or bytes. Nothing heavy is imported until such a value is met.

``fit`` scales a picture down to what a model takes (``ModelInfo.image_pixels``), so a large
screenshot is not refused or billed at a resolution the model discards. ``slim`` is what a record
keeps of the parts: each data URL as a digest of itself, so the history holds no megabytes of
base64 and a fingerprint is the same whether it was taken of the sent or of the recorded messages.
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Image",
    "fit",
    "fit_messages",
    "has_images",
    "image",
    "image_size",
    "label",
    "part",
    "slim",
    "text_of",
]

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)
_SLIM = ";sha256,"  # data:image/png;sha256,<hex>: a data URL as the history keeps it


@dataclass(frozen=True)
class Image:
    """An image for a prompt: ``{img}`` in ``%%qwen`` puts it there. ``url`` is a data URL of its bytes,
    or the ``http(s)`` URL it was given as."""

    url: str

    @property
    def size(self) -> tuple[int, int] | None:
        """(width, height) in pixels; None for a URL (the service fetches it) or an unreadable picture."""
        return image_size(self.url)

    def _repr_png_(self) -> bytes | None:  # shown in a notebook as the picture it is
        data = _decode(self.url)
        return data[1] if data and data[0] == "image/png" else None

    def _repr_jpeg_(self) -> bytes | None:
        data = _decode(self.url)
        return data[1] if data and data[0] == "image/jpeg" else None

    def __repr__(self) -> str:
        return f"Image({label(self.url)})"


def image(source: str | bytes | Path) -> Image:
    """An image for a prompt from a file's path, an ``http(s)`` URL (sent as is: the service fetches it)
    or the picture's bytes (PNG, JPEG, GIF, WebP, BMP)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return Image(_data_url(bytes(source)))
    if isinstance(source, str) and source.split(":", 1)[0].lower() in ("http", "https", "data"):
        return Image(source)
    if not isinstance(source, (str, Path)):
        raise TypeError(
            f"qwen_magics.image takes a path, a URL or bytes; got {type(source).__name__}. A Figure or a "
            "PIL Image goes in the prompt as it is: {fig}"
        )
    path = Path(source).expanduser()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"qwen_magics.image: there is no file {str(path)!r}") from None
    except IsADirectoryError:
        raise ValueError(f"qwen_magics.image: {str(path)!r} is a folder; name a picture in it") from None
    return Image(_data_url(data, where=str(path)))


def part(value: Any) -> dict[str, Any] | None:
    """The ``image_url`` content part of a notebook value, or None when the value is no picture."""
    url = _url_of(value)
    return None if url is None else {"type": "image_url", "image_url": {"url": url}}


def _url_of(value: Any) -> str | None:
    if isinstance(value, Image):
        return value.url
    module = type(value).__module__ or ""
    if module.startswith("matplotlib"):
        figure = value if hasattr(value, "savefig") else getattr(value, "figure", None)  # a Figure or Axes
        if figure is not None and hasattr(figure, "savefig"):
            buf = io.BytesIO()
            figure.savefig(buf, format="png", bbox_inches="tight")
            return _data_url(buf.getvalue())
        return None
    if module.startswith("PIL.") and hasattr(value, "save") and hasattr(value, "mode"):
        buf = io.BytesIO()
        picture = value if value.mode in ("RGB", "RGBA", "L", "LA", "P", "1") else value.convert("RGBA")
        picture.save(buf, format="PNG")
        return _data_url(buf.getvalue())
    if module.startswith("IPython") and type(value).__name__ == "Image":
        if getattr(value, "data", None):
            return _data_url(bytes(value.data))
        url = getattr(value, "url", None)
        return str(url) if url else None
    return None


def _data_url(data: bytes, where: str = "the bytes") -> str:
    mime = _sniff(data)
    if mime is None:
        raise ValueError(
            f"qwen_magics.image: {where} are not a PNG, JPEG, GIF, WebP or BMP picture"
            if where == "the bytes"
            else f"qwen_magics.image: {where} is not a PNG, JPEG, GIF, WebP or BMP picture"
        )
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _sniff(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((mime for magic, mime in _MAGIC if data.startswith(magic)), None)


def _decode(url: str) -> tuple[str, bytes] | None:
    """A base64 data URL's MIME type and bytes; None for any other URL."""
    if not url.startswith("data:") or ";base64," not in url:
        return None
    head, _, payload = url.partition(";base64,")
    try:
        return head[5:], base64.b64decode(payload, validate=False)
    except ValueError:
        return None


def image_size(url: str) -> tuple[int, int] | None:
    """(width, height) of a data URL's picture, read from its header; None when unknown."""
    decoded = _decode(url)
    if decoded is None:
        return None
    data = decoded[1]
    if data.startswith(b"\x89PNG") and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    try:
        from PIL import Image as PILImage
    except ImportError:
        return None
    try:
        with PILImage.open(io.BytesIO(data)) as picture:
            return picture.size
    except Exception:
        return None


def fit(url: str, max_pixels: int) -> str:
    """The picture of a data URL scaled down (aspect kept) to at most ``max_pixels``; as it was when
    it is small enough, a URL the service fetches, or PIL is missing."""
    size = image_size(url)
    decoded = _decode(url)
    if size is None or decoded is None or size[0] * size[1] <= max_pixels:
        return url
    try:
        from PIL import Image as PILImage
    except ImportError:
        return url
    scale = math.sqrt(max_pixels / (size[0] * size[1]))
    new = (max(1, int(size[0] * scale)), max(1, int(size[1] * scale)))
    with PILImage.open(io.BytesIO(decoded[1])) as picture:
        small = picture.convert("RGBA" if "A" in picture.getbands() else "RGB").resize(new)
    buf = io.BytesIO()
    if decoded[0] == "image/jpeg":
        small.save(buf, format="JPEG", quality=90)
        return f"data:image/jpeg;base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"
    small.save(buf, format="PNG")
    return f"data:image/png;base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def _map_images(messages: Sequence[dict[str, Any]], change: Any) -> list[dict[str, Any]]:
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            parts = []
            for p in content:
                if isinstance(p, dict) and p.get("type") == "image_url":
                    url = (p.get("image_url") or {}).get("url")
                    if isinstance(url, str):
                        p = {**p, "image_url": {**p["image_url"], "url": change(url)}}
                parts.append(p)
            m = {**m, "content": parts}
        out.append(m)
    return out


def fit_messages(messages: Sequence[dict[str, Any]], max_pixels: int) -> list[dict[str, Any]]:
    """The messages with every data-URL picture fitted to ``max_pixels``."""
    return _map_images(messages, lambda url: fit(url, max_pixels))


def slim(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages with each data URL replaced by its digest (``data:image/png;sha256,…``); the same
    messages again for messages already slim."""

    def digest(url: str) -> str:
        if not url.startswith("data:") or _SLIM in url:
            return url
        head = url.split(";", 1)[0].split(",", 1)[0]
        return f"{head}{_SLIM}{hashlib.sha256(url.encode()).hexdigest()}"

    return _map_images(messages, digest)


def has_images(content: Any) -> bool:
    return isinstance(content, list) and any(
        isinstance(p, dict) and p.get("type") == "image_url" for p in content
    )


def label(url: str) -> str:
    """How an image is named in text: ``[image 640×480]``, ``[image https://…]``."""
    if not url.startswith("data:"):
        return f"[image {url if len(url) <= 60 else url[:59] + '…'}]"
    size = image_size(url)
    return f"[image {size[0]}×{size[1]}]" if size else "[image]"


def text_of(content: Any) -> str:
    """A message content's text: a string as it is, parts' text joined, each image named by ``label``."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for p in content:
            if not isinstance(p, dict):
                continue
            if p.get("type") == "image_url":
                out.append(label(str((p.get("image_url") or {}).get("url", ""))))
            else:
                out.append(str(p.get("text", "")))
        return "".join(out)
    return "" if content is None else str(content)
