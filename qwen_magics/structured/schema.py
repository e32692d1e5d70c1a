"""What shape the JSON should have: a Pydantic model, a JSON Schema dict, or a short form.

The short form is simonw/llm's concise schema syntax: ``"name, age int, bio: a short bio"``. Each
field is ``name [type][: description]``; the type is str, int, float or bool (str when left out) and
the text after the first colon becomes the field's JSON Schema ``"description"``. Fields are split
by commas, or by newlines when the text has any (then commas belong to descriptions). Every field is
required. Beyond llm, dots nest (``facts.type``). ``multi`` asks for a list of such records, wrapped
as ``{"items": [...]}`` on the wire because JSON modes answer objects. A ``Schema`` knows the JSON
Schema to send, validates an answer with a message a model (and a person) can act on, and gives the
pandas dtypes of its flattened columns.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import ParameterError
from ..schemacheck import check, resolve
from ..schemacheck import kind_of as _kind
from ..schemacheck import type_of as _type_of

__all__ = ["Schema", "SchemaMismatch", "parse_schema"]

_SHORT_TYPES = {
    "str": "string",
    "string": "string",
    "text": "string",
    "int": "integer",
    "integer": "integer",
    "float": "number",
    "number": "number",
    "bool": "boolean",
    "boolean": "boolean",
}
_FIELD_FORM = "write 'name [type][: description]', as in 'age int: in years' (type: str, int, float or bool)"
_DTYPES = {"integer": "Int64", "number": "Float64", "boolean": "boolean", "string": "string"}
_JSON_TYPES = {"object", "array", "string", "integer", "number", "boolean", "null"}
_IDENT = re.compile(r"^[^\W\d]\w*(?:\.[^\W\d]\w*)*$")
_SHELL_NAMES = {"In", "Out", "exit", "quit", "get_ipython"}
_USAGE = (
    "a schema is a Pydantic model, a JSON Schema dict ({'type': 'object', 'properties': "
    "{...}}), or a short form such as 'name, moons int: how many, facts.type'"
)


class SchemaMismatch(ValueError):
    """An answer that does not follow the schema; the message says where and how."""


@dataclass(frozen=True)
class Schema:
    """One record's JSON Schema (plus shared ``$defs``), and whether a list of them is wanted."""

    name: str
    record: dict[str, Any]
    multi: bool = False
    model: Any = None  # the Pydantic model class, when the schema came from one
    defs: dict[str, Any] = field(default_factory=dict)

    def with_multi(self, multi: bool = True) -> Schema:
        return self if multi == self.multi else replace(self, multi=multi)

    @property
    def json_schema(self) -> dict[str, Any]:
        """The schema sent to the model: the record, or ``{"items": [record, ...]}`` when multi."""
        if self.multi:
            wire: dict[str, Any] = {
                "type": "object",
                "properties": {"items": {"type": "array", "items": self.record}},
                "required": ["items"],
                "additionalProperties": False,
            }
        else:
            wire = dict(self.record)
        if self.defs:
            wire["$defs"] = self.defs
        return wire

    def instruction(self) -> str:
        shape = (
            'a JSON object {"items": [...]} whose items are the records' if self.multi else "one JSON object"
        )
        return (
            f"Answer with JSON only: {shape}, following this JSON Schema:\n"
            f"{json.dumps(self.json_schema, ensure_ascii=False)}"
        )

    # -- validation ---------------------------------------------------------------------------
    def validate(self, value: Any) -> Any:
        """The answer as plain JSON (a record, or the list of records when multi), or SchemaMismatch."""
        if self.multi:
            if isinstance(value, dict) and isinstance(value.get("items"), list):
                value = value["items"]
            elif isinstance(value, dict) and len(value) == 1 and isinstance(next(iter(value.values())), list):
                value = next(iter(value.values()))
            if not isinstance(value, list):
                raise SchemaMismatch(f'expected {{"items": [...]}} holding the records, got {_kind(value)}')
        if self.model is not None:
            return self._validate_pydantic(value)
        errors: list[str] = []
        if self.multi:
            for i, item in enumerate(value):
                check(item, self.record, f"items[{i}]", self.defs, errors)
        else:
            check(value, self.record, "", self.defs, errors)
        if errors:
            more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
            raise SchemaMismatch("; ".join(errors[:5]) + more)
        return value

    def _validate_pydantic(self, value: Any) -> Any:
        import pydantic

        adapter = _adapter(self.model, self.multi)
        try:
            parsed = adapter.validate_python(value)
        except pydantic.ValidationError as exc:
            parts = []
            for err in exc.errors()[:5]:
                loc = _dotted(("items", *err["loc"]) if self.multi else err["loc"])
                parts.append(f"{loc or 'the answer'}: {err['msg']}")
            raise SchemaMismatch("; ".join(parts)) from None
        return adapter.dump_python(parsed, mode="json")

    # -- columns ------------------------------------------------------------------------------
    def dtypes(self) -> dict[str, str | None]:
        """Flattened column -> pandas dtype (None: leave as pandas reads it), in schema order."""
        out: dict[str, str | None] = {}
        self._flatten(self.record, "", out)
        return out

    def _flatten(self, sch: dict[str, Any], prefix: str, out: dict[str, str | None]) -> None:
        sch = self._resolve(sch)
        for key, sub in (sch.get("properties") or {}).items():
            sub = self._resolve(sub)
            col = f"{prefix}{key}"
            if _type_of(sub) == "object" and sub.get("properties"):
                self._flatten(sub, col + ".", out)
            else:
                out[col] = _DTYPES.get(_type_of(sub) or "")

    def _resolve(self, sch: Any) -> dict[str, Any]:
        """Follow a local $ref; collapse ``anyOf: [X, null]`` (Optional) to X."""
        return resolve(sch, self.defs)


def _dotted(loc: Any) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@functools.lru_cache(maxsize=32)
def _adapter(model: Any, multi: bool) -> Any:
    """A Pydantic model's TypeAdapter, built once: building one costs far more than a validation."""
    import pydantic

    return pydantic.TypeAdapter(list[model] if multi else model)


# -- building a Schema -------------------------------------------------------------------------
def parse_schema(spec: Any, namespace: Mapping[str, Any] | None = None, *, multi: bool = False) -> Schema:
    """A Schema from a Pydantic model, a JSON Schema dict, a short form, or a name in ``namespace``
    (the notebook's variables) that holds one of those. Raises ParameterError("schema", ...)."""
    if isinstance(spec, Schema):
        return spec.with_multi(multi or spec.multi)
    if isinstance(spec, str):
        text = spec.strip()
        if _IDENT.match(text) and namespace is not None:
            found = _lookup(text, namespace)
            if found is not None and _schema_like(found):
                return parse_schema(found, None, multi=multi)
            if _names_a_class(text):  # not a one-field short form: a typo, or a name not run yet
                raise ParameterError("schema", _not_a_schema(text, found, namespace))
        return _short_form(spec, multi)  # unstripped: a newline anywhere means one field per line
    if isinstance(spec, Mapping):
        return _from_dict(dict(spec), multi)
    inner = _list_of(spec)
    if inner is not None:
        return parse_schema(inner, namespace, multi=True)
    if _is_pydantic_model(spec):
        record = spec.model_json_schema()
        defs = record.pop("$defs", {})
        return Schema(_wire_name(spec.__name__), record, multi, model=spec, defs=defs)
    raise ParameterError("schema", f"{_USAGE}; got {type(spec).__name__} {spec!r:.60}")


def _lookup(dotted: str, namespace: Mapping[str, Any]) -> Any:
    head, *rest = dotted.split(".")
    if head not in namespace:
        return None
    obj = namespace[head]
    for attr in rest:
        obj = getattr(obj, attr, None)
        if obj is None:
            return None
    return obj


def _names_a_class(text: str) -> bool:
    """``Planet`` or ``models.Planet``: a part that starts upper-case is a class, never a field."""
    return any(part[:1].isupper() for part in text.split("."))


def _not_a_schema(text: str, found: Any, namespace: Mapping[str, Any]) -> str:
    """Why a class-like name is no schema here, with the names the user may have meant."""
    field = f"(for one field called {text!r}, write '{text} str')"
    if found is not None:
        name = "class" if isinstance(found, type) else type(found).__name__
        kind = f"{'an' if name[:1] in 'aeiou' else 'a'} {name}"
        return f"{text} is {kind}, not a schema; {_USAGE} {field}"
    head, *rest = text.split(".")
    scope: Mapping[str, Any] = namespace
    missing, where = head, "in the notebook"
    obj: Any = None
    for i, part in enumerate([head, *rest]):
        if i == 0:
            obj = namespace.get(head)
        else:
            scope = {n: getattr(obj, n, None) for n in dir(obj) if not n.startswith("_")}
            missing, where = part, f"in {'.'.join([head, *rest][:i])}"
            obj = scope.get(part)
        if obj is None:
            break
    names = [n for n in scope if not n.startswith("_") and n not in _SHELL_NAMES]
    likely = [n for n in names if _schema_like(scope[n])]
    close = difflib.get_close_matches(missing, likely, n=3) or difflib.get_close_matches(missing, names, n=3)
    hint = f"did you mean {' or '.join(close)}?" if close else "run the cell that defines it first"
    return f"{missing} is not defined {where}; {hint} {field}"


def _schema_like(obj: Any) -> bool:
    return isinstance(obj, (Schema, Mapping)) or _is_pydantic_model(obj) or _list_of(obj) is not None


def _is_pydantic_model(obj: Any) -> bool:
    return (
        isinstance(obj, type)
        and callable(getattr(obj, "model_json_schema", None))
        and callable(getattr(obj, "model_validate", None))
    )


def _list_of(obj: Any) -> Any:
    """``list[Model]`` -> Model."""
    import typing

    if typing.get_origin(obj) is list:
        args = typing.get_args(obj)
        if len(args) == 1 and _is_pydantic_model(args[0]):
            return args[0]
    return None


def _wire_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "result"


def _from_dict(sch: dict[str, Any], multi: bool) -> Schema:
    kind = sch.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    if kind is not None and not all(isinstance(k, str) and k in _JSON_TYPES for k in kinds):
        raise ParameterError(
            "schema",
            f"'type' {kind!r} is not a JSON Schema type ({', '.join(sorted(_JSON_TYPES))}); {_USAGE}",
        )
    if kind is None and not any(k in sch for k in ("properties", "$ref", "anyOf", "oneOf", "allOf")):
        raise ParameterError(
            "schema",
            f"this dict is not a JSON Schema (no 'type' or 'properties'; keys {sorted(sch)[:6]}); {_USAGE}",
        )
    _check_shape(sch, "the schema")
    defs = {**(sch.get("definitions") or {}), **(sch.get("$defs") or {})}
    record = {k: v for k, v in sch.items() if k not in ("$defs", "definitions", "$schema")}
    name = _wire_name(str(sch.get("title") or "result"))
    if kind == "array":  # JSON modes answer objects: a list schema becomes multi of its items
        items = record.get("items")
        if not isinstance(items, dict):
            raise ParameterError("schema", "an array schema needs an 'items' schema for its records")
        return Schema(name, items, True, defs=defs)
    if kind not in (None, "object"):
        raise ParameterError(
            "schema",
            f"the schema describes a {kind}; JSON modes answer objects, "
            "so describe an object (or use multi for a list of objects)",
        )
    return Schema(name, record, multi, defs=defs)


def _check_shape(node: Any, where: str) -> None:
    """Every nested schema is a dict with known types, so a malformed one fails here, before it is
    sent, rather than in validation after the answer came. ``true``/``false`` are schemas too."""
    if isinstance(node, bool):
        return
    if not isinstance(node, Mapping):
        raise ParameterError("schema", f"{where} must be a schema (a dict); got {node!r:.60}")
    kind = node.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    if kind is not None and not all(isinstance(k, str) and k in _JSON_TYPES for k in kinds):
        raise ParameterError(
            "schema", f"{where}: 'type' {kind!r} is not a JSON Schema type ({', '.join(sorted(_JSON_TYPES))})"
        )
    for key in ("properties", "$defs", "definitions"):
        if key in node:
            children = node[key]
            if not isinstance(children, Mapping):
                raise ParameterError(
                    "schema", f"{where}: {key!r} must map names to schemas; got {children!r:.60}"
                )
            for name, child in children.items():
                _check_shape(child, f"{where} → {name}")
    if node.get("items") is not None:
        _check_shape(node["items"], f"{where} → items")
    for key in ("anyOf", "oneOf", "allOf"):
        if key in node:
            options = node[key]
            if not isinstance(options, list):
                raise ParameterError("schema", f"{where}: {key!r} must be a list of schemas")
            for i, option in enumerate(options):
                _check_shape(option, f"{where} → {key}[{i}]")
    required = node.get("required")
    if required is not None and not (
        isinstance(required, list) and all(isinstance(r, str) for r in required)
    ):
        raise ParameterError(
            "schema", f"{where}: 'required' must be a list of field names; got {required!r:.60}"
        )


def _short_form(text: str, multi: bool) -> Schema:
    """llm's concise syntax (``"name, age int: in years, facts.type"``) -> an object schema, every
    field required. One field per line when the text has a newline, so descriptions may hold commas."""
    if not text.strip():
        raise ParameterError("schema", f"the schema is empty; {_USAGE}")
    root = _group()
    for piece in text.split("\n") if "\n" in text else text.split(","):
        piece = piece.strip()
        if piece:
            _add_field(root, piece)
    if not root["properties"]:
        raise ParameterError("schema", f"the schema names no fields; {_USAGE}")
    return Schema("record", root, multi)


def _group() -> dict[str, Any]:
    return {"type": "object", "properties": {}, "required": [], "additionalProperties": False}


def _add_field(root: dict[str, Any], piece: str) -> None:
    """One ``name [type][: description]`` into ``root``, read as llm reads it, except that words
    after the type, and a comma in a name, are refused: llm keeps or drops them without a word."""
    head, _, description = piece.partition(":")
    words = head.split()
    if not words:
        raise ParameterError("schema", f"the field {piece!r} has no name before ':'; {_FIELD_FORM}")
    dotted, *rest = words
    if len(rest) > 1:
        raise ParameterError(
            "schema",
            f"cannot read the field {piece!r}: {_FIELD_FORM}, fields separated by commas or newlines",
        )
    if "," in dotted:
        raise ParameterError(
            "schema",
            f"the field name {dotted!r} holds a comma: with one field per line, drop the comma "
            "(commas belong in a description after ':')",
        )
    *parents, leaf = dotted.split(".")
    if not leaf or not all(parents):
        raise ParameterError(
            "schema", f"cannot read the field name {dotted!r}: nest with dots, as in 'facts.type'"
        )
    short = rest[0] if rest else "str"
    if short.lower() not in _SHORT_TYPES:
        raise ParameterError(
            "schema",
            f"unknown type {short!r} for {dotted!r}; use str, int, float or bool "
            "(a name is one word; a description goes after ':')",
        )
    node = root
    for part in parents:
        child = node["properties"].get(part)
        if child is None:
            child = node["properties"][part] = _group()
            node["required"].append(part)
        elif child.get("type") != "object":
            raise ParameterError("schema", f"{part!r} is both a field and a group of fields")
        node = child
    if leaf in node["properties"]:
        twice = (
            "is both a field and a group of fields"
            if node["properties"][leaf].get("type") == "object"
            else "appears twice"
        )
        raise ParameterError("schema", f"{dotted!r} {twice}")
    prop: dict[str, Any] = {"type": _SHORT_TYPES[short.lower()]}
    if description.strip():
        prop["description"] = description.strip()
    node["properties"][leaf] = prop
    node["required"].append(leaf)
