"""JSON for the offline model's JSON modes: a JSON Schema filled with values the model samples.

Names come from the topic's things, texts are sampled sentences and phrases, numbers are plausible
for their key; all within the schema's types, required keys and bounds. Without a schema, an
object fit for the prompt: {"items": [...]} when it counts or lists things, else a summary.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .words import _content, _number, _set, _stem, _words

if TYPE_CHECKING:
    from .lm import LanguageModel, _Sampler

__all__ = ["JsonFiller"]

_NAME_KEYS = _set("name title label item term topic keyword tag word kind type")
_TEXT_KEYS = tuple(_set("description summary explanation reason detail text content fact note body step tip"))
# plausible numbers by a word in their key
_RANGES = {"year": (1950, 2024), "age": (1, 90), "percent": (0, 100), "score": (0, 100), "rating": (1, 5)}
_RANGES |= {"moons": (0, 95), "legs": (0, 8), "minutes": (5, 60), "count": (1, 20), "number": (1, 20)}
_RANGES |= {"size": (1, 20), "quantity": (1, 20), "price": (1, 50)}


class JsonFiller:
    """Fills a JSON Schema with values sampled from the model for one prompt."""

    def __init__(self, lm: LanguageModel, prompt: str, s: _Sampler) -> None:
        self.lm, self.prompt, self.s = lm, prompt, s
        self.words, self.n = _content(prompt), _number(prompt)
        known = _NAME_KEYS | set(_TEXT_KEYS) | set(_RANGES)
        self.keys = list(dict.fromkeys(w.lower() for w in _words(prompt) if _stem(w) in known))
        self.mix = lm._mixture(" ".join(w for w in self.words if w.lower() not in self.keys))
        self.taken: set[str] = set()
        self.last = ""  # the latest name, which a description then talks about

    def free(self) -> dict[str, Any]:
        """No schema: {"items": [...]} when the prompt counts or lists things, else a summary."""
        if self.n or "list" in {w.lower() for w in _words(self.prompt)}:
            keys = self.keys or ["name", "description"]
            return {"items": [{k: self.fill({}, k, i, {}) for k in keys} for i in range(self.n or 3)]}
        summary = self.string("summary", {})
        topic = " ".join(self.words[:2]).lower() or "general"
        return {
            "topic": topic,
            "summary": summary,
            "keywords": [self.string("keyword", {}) for _ in range(3)],
        }

    def fill(self, sch: Any, key: str, index: int, root: dict[str, Any], depth: int = 0) -> Any:
        """A value for the (sub)schema sch found under key (index: place in an array).

        Deep down (a recursive schema) it takes no optional keys, no null-able value and the fewest items.
        """
        sch, deep = sch if isinstance(sch, dict) else {}, depth > 4
        if isinstance(sch.get("$ref"), str) and sch["$ref"].startswith("#/"):
            target: Any = root
            for part in sch["$ref"][2:].split("/"):
                target = target.get(part, {}) if isinstance(target, dict) else {}
            return self.fill(target, key, index, root, depth + 1)
        if "const" in sch:
            return sch["const"]
        if isinstance(sch.get("enum"), list) and sch["enum"]:
            return self.s.pick([(v, 1 / len(sch["enum"])) for v in sch["enum"]])
        for alt in ("anyOf", "oneOf", "allOf"):
            if isinstance(sch.get(alt), list) and sch[alt]:
                options = [o for o in sch[alt] if isinstance(o, dict) and (o.get("type") != "null") != deep]
                return self.fill((options or sch[alt])[0], key, index, root, depth)
        kind = sch.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = "object" if "properties" in sch else "array" if "items" in sch else None
            kind = kind or ("integer" if _stem(key) in _RANGES else "string")
        if kind == "object":
            props = sch.get("properties") if isinstance(sch.get("properties"), dict) else {}
            required = list(sch.get("required") or [])
            keys = list(dict.fromkeys([k for k in props if not deep or k in required] + required))
            return {k: self.fill(props.get(k, {}), k, index, root, depth + 1) for k in keys}
        if kind == "array":
            low, high = int(sch.get("minItems", 0)), int(sch.get("maxItems", 10**6))
            n = low if deep else min(max(self.n or self.s.integer(2, 4), low), high)
            return [self.fill(sch.get("items", {}), _stem(key), i, root, depth + 1) for i in range(n)]
        if kind in ("integer", "number"):
            return self.number(key, sch, index, kind == "integer")
        if kind == "boolean":
            return self.s.t <= 1e-6 or self.s.rng.random() < 0.5
        return None if kind == "null" else self.string(key, sch)

    def number(self, key: str, sch: dict[str, Any], index: int, integer: bool) -> int | float:
        """A plausible number for the key, within the schema's bounds."""
        k = key.lower()
        low, high = next((r for word, r in _RANGES.items() if word in k), (1, 100))
        if k in ("id", "rank", "index", "position", "order"):
            low = high = index + 1
        b = {n: v for n, v in sch.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        step = 1 if integer else 0.01
        lo_s = max(b.get("minimum", -math.inf), b.get("exclusiveMinimum", -math.inf) + step)
        hi_s = min(b.get("maximum", math.inf), b.get("exclusiveMaximum", math.inf) - step)
        lo, hi = max(low, lo_s), min(high, hi_s)
        if lo > hi:  # the plausible range lies outside the schema's: keep to the schema
            lo = lo_s if lo_s > -math.inf else hi_s - 10
            hi = min(hi_s, lo + 10)
        if integer:
            return self.s.integer(math.ceil(lo), max(math.ceil(lo), math.floor(hi)))
        x = lo + (hi - lo) * (0.5 if self.s.t <= 1e-6 else self.s.rng.random())
        return min(max(round(x, 2), lo), hi)

    def string(self, key: str, sch: dict[str, Any]) -> str:
        """A name, a sentence or a short phrase, as the key suggests."""
        k = _stem(key.lower())
        if sch.get("format") in ("date", "date-time"):
            s = self.s
            day = f"{s.integer(2000, 2024)}-{s.integer(1, 12):02d}-{s.integer(1, 28):02d}"
            return day if sch["format"] == "date" else day + "T12:00:00Z"
        if k in _NAME_KEYS or k.endswith("name"):
            name = self.lm._name(self.mix, self.s, self.taken)
            text = name[0].upper() + name[1:] if name else self.lm._sentence(self.mix, self.s, [], 3, True)
            self.last = text
        elif k.endswith(_TEXT_KEYS):
            text = self.lm._sentence(self.mix, self.s, _words(self.last) or self.words, 28)
        else:
            text = self.lm._sentence(self.mix, self.s, self.words, 6, phrase=True)
        while len(text) < int(sch.get("minLength", 0)):
            text += " " + self.lm._sentence(self.mix, self.s, [], 8, phrase=True)
        high = sch.get("maxLength")
        return text[: int(high)].rstrip() or text[: int(high)] if isinstance(high, int) else text
