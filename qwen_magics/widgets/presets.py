"""Sampling presets from Model Studio's scenario guide: a starting point for temperature and top_p.

The figures are the vendor's own recommendations (text generation guide, "Recommended parameter
settings for different scenarios"), so a newcomer starts from settings the service was tuned for.
"""

from __future__ import annotations

__all__ = ["CUSTOM", "MODEL_DEFAULT", "PRESETS", "match_preset"]

# name -> (temperature, top_p)
PRESETS: dict[str, tuple[float, float]] = {
    "creative writing": (0.9, 0.95),
    "code generation": (0.2, 0.8),
    "factual Q&A": (0.1, 0.7),
    "translation": (0.3, 0.8),
}

MODEL_DEFAULT = "model default"  # send neither: the model's own defaults apply
CUSTOM = "custom"  # values a user chose by hand


def match_preset(temperature: float | None, top_p: float | None) -> str:
    """The preset these values are, ``model default`` when neither is set, else ``custom``."""
    if temperature is None and top_p is None:
        return MODEL_DEFAULT
    for name, values in PRESETS.items():
        if (temperature, top_p) == values:
            return name
    return CUSTOM
