"""The small JSON Schema subset models are asked for, checked in plain Python: the one validator of
structured answers (``structured/schema.py``) and of tool arguments (``tools/schema.py``).

``check`` appends a message per mismatch, each naming where in the value it is, in words a model
(and a person) can act on; ``resolve`` follows a local ``$ref`` and collapses ``Optional``.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["check", "kind_of", "resolve", "type_of"]


def type_of(sch: dict[str, Any]) -> str | None:
    kind = sch.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind is None and "properties" in sch:
        return "object"
    return kind if isinstance(kind, str) else None


def kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


_PYTHON_TYPES: dict[str, type | tuple[type, ...]] = {"string": str, "object": dict, "array": list}


def _is(value: Any, kind: str) -> bool:
    simple = _PYTHON_TYPES.get(kind)
    if simple is not None:  # no bool, number or None is a str, dict or list: as kind_of would say
        return isinstance(value, simple)
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return kind_of(value) == kind


def check(
    value: Any, sch: Any, path: str, defs: dict[str, Any], errors: list[str], root: str = "the answer"
) -> None:
    """The small JSON Schema subset models are asked for: types, properties, required, items,
    enum/const, additionalProperties, anyOf/oneOf/allOf, local $ref, and simple bounds."""
    if not isinstance(sch, dict):
        return
    where = path or root
    if isinstance(sch.get("$ref"), str):
        sch = resolve({"$ref": sch["$ref"]}, defs)
    for key in ("anyOf", "oneOf") if "anyOf" in sch or "oneOf" in sch else ():
        if isinstance(sch.get(key), list):
            trials = []
            for branch in sch[key]:
                trial: list[str] = []
                check(value, branch, path, defs, trial, root)
                if not trial:
                    break
                trials.append(trial[0])
            else:
                errors.append(f"{where}: matches none of the allowed shapes ({'; '.join(trials[:3])})")
                return
    for branch in sch.get("allOf") or []:
        check(value, branch, path, defs, errors, root)
    kinds = sch.get("type")
    if kinds is None and "properties" in sch:
        kinds = "object"
    if kinds is not None:
        options = kinds if isinstance(kinds, list) else [kinds]
        if not (_is(value, kinds) if type(kinds) is str else any(_is(value, k) for k in options)):
            errors.append(
                f"{where}: expected {' or '.join(options)}, got {kind_of(value)} "
                f"{json.dumps(value, ensure_ascii=False)[:40]}"
            )
            return
    if "enum" in sch and value not in sch["enum"]:
        errors.append(f"{where}: {value!r} is not one of {sch['enum']!r}")
    if "const" in sch and value != sch["const"]:
        errors.append(f"{where}: must be {sch['const']!r}")
    if isinstance(value, dict):
        props = sch.get("properties") or {}
        for name in sch.get("required") or []:
            if name not in value:
                errors.append(f"{where}: missing required field {name!r}")
        extra = sch.get("additionalProperties", True)
        for name, item in value.items():
            sub = f"{path}.{name}" if path else name
            if name in props:
                check(item, props[name], sub, defs, errors, root)
            elif extra is False:
                errors.append(f"{where}: unexpected field {name!r} (allowed: {', '.join(props)})")
            elif isinstance(extra, dict):
                check(item, extra, sub, defs, errors, root)
    elif isinstance(value, list):
        if "minItems" in sch and len(value) < sch["minItems"]:
            errors.append(f"{where}: needs at least {sch['minItems']} items, got {len(value)}")
        if "maxItems" in sch and len(value) > sch["maxItems"]:
            errors.append(f"{where}: allows at most {sch['maxItems']} items, got {len(value)}")
        for i, item in enumerate(value):
            check(item, sch.get("items"), f"{path}[{i}]", defs, errors, root)
    elif _is(value, "number"):
        if "minimum" in sch and value < sch["minimum"]:
            errors.append(f"{where}: {value} is below the minimum {sch['minimum']}")
        if "maximum" in sch and value > sch["maximum"]:
            errors.append(f"{where}: {value} is above the maximum {sch['maximum']}")
    elif isinstance(value, str):
        if "minLength" in sch and len(value) < sch["minLength"]:
            errors.append(f"{where}: shorter than {sch['minLength']} characters")
        if "maxLength" in sch and len(value) > sch["maxLength"]:
            errors.append(f"{where}: longer than {sch['maxLength']} characters")


def resolve(sch: Any, defs: dict[str, Any]) -> dict[str, Any]:
    """Follow a local $ref; collapse ``anyOf: [X, null]`` (Optional) to X."""
    for _ in range(20):
        if not isinstance(sch, dict):
            return {}
        ref = sch.get("$ref")
        if isinstance(ref, str):
            sch = defs.get(ref.rsplit("/", 1)[-1], {})
            continue
        branches = sch.get("anyOf") or sch.get("oneOf")
        if isinstance(branches, list):
            real = [b for b in branches if not (isinstance(b, dict) and b.get("type") == "null")]
            if len(real) == 1:
                sch = real[0]
                continue
        return sch
    return {}
