"""Input files for the Batch API: JSON lines written to disk, one model a file, within the limits.

The service takes at most 50,000 requests and 500 MB a file, 6 MB a line, and one model a file;
``write_parts`` starts a new file for each model and whenever the next line would pass a limit,
and refuses a line over the line limit before anything is uploaded, naming its request.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..api.batches import ENDPOINT
from ..errors import ParameterError

__all__ = ["LIMITS", "Limits", "encode_line", "write_parts"]


@dataclass(frozen=True)
class Limits:
    """The service's limits on one input file."""

    lines: int = 50_000
    bytes: int = 500 * 1024 * 1024
    line_bytes: int = 6 * 1024 * 1024


LIMITS = Limits()


def encode_line(custom_id: str, body: dict[str, Any]) -> bytes:
    """One request as the Batch API reads it (without the line break)."""
    line = {"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body}
    return json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass
class _Open:
    path: Path
    file: IO[bytes]
    count: int = 0
    size: int = 0


def write_parts(
    lines: Iterable[tuple[str, bytes, str]],
    folder: Path,
    *,
    limits: Limits = LIMITS,
    prefix: str = "part",
) -> list[tuple[Path, str, int]]:
    """Write ``(model, line, what the line is for the user)`` into files in ``folder``; returns
    ``(path, model, line count)`` per file, in the order the files were started."""
    done: list[tuple[Path, str, int]] = []
    current: dict[str, _Open] = {}
    order: list[tuple[str, _Open]] = []
    try:
        for model, line, label in lines:
            size = len(line) + 1
            if size > limits.line_bytes:
                raise ParameterError(
                    "requests",
                    f"{label} is {_size(size)} as a batch line; the Batch API takes at most "
                    f"{_size(limits.line_bytes)} a line. Shorten it, or ask it live",
                )
            out = current.get(model)
            if out is not None and (out.count + 1 > limits.lines or out.size + size > limits.bytes):
                out.file.close()
                out = None
            if out is None:
                path = folder / f"{prefix}-{len(order) + 1}-{_safe(model)}.jsonl"
                out = _Open(path, open(path, "wb"))  # noqa: SIM115  (closed below, in finally)
                current[model] = out
                order.append((model, out))
            out.file.write(line + b"\n")
            out.count += 1
            out.size += size
    finally:
        for _, out in order:
            out.file.close()
    done = [(out.path, model, out.count) for model, out in order]
    return done


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB".replace(".0 MB", " MB")
    return f"{n / 1024:.1f} KB".replace(".0 KB", " KB")


def _safe(model: str) -> str:
    return "".join(c if c.isalnum() or c in "-._" else "_" for c in model)
