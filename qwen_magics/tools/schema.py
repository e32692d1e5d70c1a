"""A Python function as a tool the model can call: its JSON Schema, its argument check, its call.

As simonw/llm's ``Tool.function``: the schema comes from the signature and type hints (str, int,
float, bool, Literal, Optional, list, dict, Enum, Pydantic models), the description from the
docstring's summary, and each parameter's description from a Google-style ``Args:`` or NumPy-style
``Parameters`` section. ``@tool(name=..., description=...)`` overrides the names. A parameter that
cannot be described (``*args``, no type hint nor default, a class with no JSON form) is refused
before anything is sent, by name. Arguments the model sends are checked by the package's one JSON
Schema checker (``schemacheck``); a mismatch is a ``ToolArgumentError`` whose text goes back to
the model.
"""

from __future__ import annotations

import enum
import inspect
import json
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ParameterError
from ..schemacheck import check

__all__ = ["Tool", "ToolArgumentError", "as_tool", "as_tools", "tool"]

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_PRIMITIVE = {str: "string", int: "integer", float: "number", bool: "boolean"}
_MARK = "__qwen_tool__"


class ToolArgumentError(ValueError):
    """Arguments that do not fit the tool's schema; the message is sent back to the model."""


@dataclass
class Tool:
    """One callable with the schema the model sees. ``Tool.spec`` is what goes in ``tools``."""

    name: str
    description: str
    parameters: dict[str, Any]
    function: Callable[..., Any]
    converters: dict[str, Callable[[Any], Any]] = field(default_factory=dict)

    @property
    def spec(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.function)

    def arguments(self, text: str | None) -> dict[str, Any]:
        """The model's arguments text as keyword arguments, or ToolArgumentError saying what is wrong."""
        try:
            value = json.loads(text or "{}")
        except ValueError as exc:
            raise ToolArgumentError(f"the arguments are not valid JSON ({exc}); send a JSON object") from None
        if not isinstance(value, dict):
            raise ToolArgumentError(f"the arguments must be a JSON object, not {type(value).__name__}")
        errors: list[str] = []
        check(value, self.parameters, "", self.parameters.get("$defs") or {}, errors, "the arguments")
        if errors:
            raise ToolArgumentError("; ".join(errors[:5]))
        out = dict(value)
        for name, convert in self.converters.items():
            if out.get(name) is not None:
                try:
                    out[name] = convert(out[name])
                except Exception as exc:
                    raise ToolArgumentError(f"{name}: {exc}") from None
        return out

    def __call__(self, *args: Any, **kw: Any) -> Any:
        return self.function(*args, **kw)


def tool(
    fn: Callable[..., Any] | None = None, *, name: str | None = None, description: str | None = None
) -> Any:
    """``@tool`` or ``@tool(name=..., description=...)``: the function stays as it was, marked with
    the names the model should see."""

    def mark(f: Callable[..., Any]) -> Callable[..., Any]:
        setattr(f, _MARK, {"name": name, "description": description})
        as_tool(f)  # a function that cannot be described is refused where it is defined
        return f

    return mark(fn) if fn is not None else mark


def as_tools(tools: Any) -> list[Tool]:
    """A list of functions (or Tools) as Tools, names unique; raises ParameterError("tools", ...)."""
    if tools is None:
        return []
    if callable(tools) or isinstance(tools, Tool):
        tools = [tools]
    if not isinstance(tools, (list, tuple)):
        raise ParameterError("tools", f"tools must be a list of functions; got {type(tools).__name__}")
    out = [as_tool(t) for t in tools]
    names = [t.name for t in out]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ParameterError(
            "tools", f"two tools are named {twice[0]!r}; give one another name with @tool(name=...)"
        )
    return out


def as_tool(obj: Any) -> Tool:
    if isinstance(obj, Tool):
        return obj
    if not callable(obj):
        raise ParameterError("tools", f"{obj!r} is not a function; tools are functions (or qwen_magics.tool)")
    marked = getattr(obj, _MARK, None) or {}
    name = marked.get("name") or getattr(obj, "__name__", "") or type(obj).__name__
    if name == "<lambda>":
        raise ParameterError(
            "tools", "a lambda has no name for the model; def a function, or use @tool(name=...)"
        )
    if not _NAME.match(name):
        raise ParameterError("tools", f"tool name {name!r}: use letters, digits, '_' and '-' (at most 64)")
    if name == "search":
        raise ParameterError(
            "tools", "DashScope refuses a tool named 'search'; rename it with @tool(name=...)"
        )
    summary, described = parse_docstring(inspect.getdoc(obj) or "")
    parameters, converters = _parameters(obj, name, described)
    description = marked.get("description") or summary or name.replace("_", " ")
    return Tool(name, description, parameters, obj, converters)


# -- the signature -----------------------------------------------------------------------------
def _parameters(
    fn: Callable[..., Any], name: str, described: dict[str, str]
) -> tuple[dict[str, Any], dict[str, Callable[[Any], Any]]]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        raise ParameterError("tools", f"{name}: its signature cannot be read; wrap it in a def") from None
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:
        raise ParameterError("tools", f"{name}: its type hints cannot be read ({exc})") from None
    props: dict[str, Any] = {}
    required: list[str] = []
    defs: dict[str, Any] = {}
    converters: dict[str, Callable[[Any], Any]] = {}
    for pname, param in sig.parameters.items():
        where = f"parameter {pname!r} of {name}"
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ParameterError(
                "tools",
                f"{where}: *args and **kwargs cannot be described; give each argument a name and type",
            )
        if param.kind is param.POSITIONAL_ONLY:
            raise ParameterError("tools", f"{where} is positional-only; the model passes arguments by name")
        hint = hints.get(pname, inspect.Parameter.empty)
        if hint is inspect.Parameter.empty:
            if param.default is inspect.Parameter.empty or param.default is None:
                raise ParameterError("tools", f"{where} has no type hint; annotate it, as in {pname}: str")
            hint = type(param.default)
        sch, convert = _describe(hint, where, defs)
        if pname in described:
            sch = {**sch, "description": described[pname]}
        if param.default is not inspect.Parameter.empty and _plain(param.default):
            sch = {
                **sch,
                "default": param.default.value if isinstance(param.default, enum.Enum) else param.default,
            }
        props[pname] = sch
        if param.default is inspect.Parameter.empty:
            required.append(pname)
        if convert is not None:
            converters[pname] = convert
    schema: dict[str, Any] = {"type": "object", "properties": props, "required": required}
    schema["additionalProperties"] = False
    if defs:
        schema["$defs"] = defs
    return schema, converters


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool, enum.Enum))


def _describe(
    hint: Any, where: str, defs: dict[str, Any]
) -> tuple[dict[str, Any], Callable[[Any], Any] | None]:
    """A type hint's JSON Schema, and how to turn the JSON value into what the function takes."""
    if hint in _PRIMITIVE:
        return {"type": _PRIMITIVE[hint]}, (float if hint is float else None)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Literal:
        kinds = {_PRIMITIVE.get(type(a)) for a in args}
        sch: dict[str, Any] = {"enum": list(args)}
        if len(kinds) == 1 and None not in kinds:
            sch["type"] = kinds.pop()
        return sch, None
    if origin in (typing.Union, types.UnionType):
        real = [a for a in args if a is not type(None)]
        if len(real) == 1:
            inner, convert = _describe(real[0], where, defs)
            return {"anyOf": [inner, {"type": "null"}]}, convert
        raise ParameterError(
            "tools", f"{where}: a union of {len(real)} types cannot be described; use one type"
        )
    if hint is list or origin is list:
        item, convert = _describe(args[0], where, defs) if args else ({}, None)
        return {"type": "array", "items": item} if args else {"type": "array"}, (
            (lambda v: [convert(x) for x in v]) if convert else None
        )
    if hint is dict or origin is dict:
        if args and args[0] is not str:
            raise ParameterError("tools", f"{where}: JSON objects have string keys; use dict[str, ...]")
        if len(args) == 2:
            value, _ = _describe(args[1], where, defs)
            return {"type": "object", "additionalProperties": value}, None
        return {"type": "object"}, None
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        values = [m.value for m in hint]
        kinds = {_PRIMITIVE.get(type(v)) for v in values}
        sch = {"enum": values}
        if len(kinds) == 1 and None not in kinds:
            sch["type"] = kinds.pop()
        return sch, hint
    if isinstance(hint, type) and callable(getattr(hint, "model_json_schema", None)):
        model_schema = dict(hint.model_json_schema())  # type: ignore[attr-defined]
        defs.update(model_schema.pop("$defs", {}))
        return model_schema, hint.model_validate  # type: ignore[attr-defined]
    shown = getattr(hint, "__name__", repr(hint))
    raise ParameterError(
        "tools",
        f"{where}: type {shown} cannot be described as JSON; use str, int, float, bool, Literal, "
        "Optional, list, dict, an Enum or a Pydantic model",
    )


# -- the docstring ----------------------------------------------------------------------------
_GOOGLE = re.compile(r"^\s*(?:Args|Arguments|Parameters|Params)\s*:\s*$")
_NUMPY = re.compile(r"^\s*(?:Parameters|Params)\s*$")
_SECTION = re.compile(r"^\s*(?:Returns?|Yields?|Raises?|Examples?|Notes?|See Also|Attributes)\s*:?\s*$")


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The summary (first paragraph, one line) and each parameter's description."""
    lines = doc.expandtabs().splitlines()
    summary: list[str] = []
    for line in lines:
        if not line.strip() or _GOOGLE.match(line) or _NUMPY.match(line):
            break
        summary.append(line.strip())
    params: dict[str, str] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        numpy = _NUMPY.match(line) and i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"}
        if _GOOGLE.match(line) or numpy:
            i = _section(lines, i + (2 if numpy else 1), params, numpy=bool(numpy))
            continue
        i += 1
    return " ".join(summary), params


def _section(lines: list[str], i: int, params: dict[str, str], *, numpy: bool) -> int:
    head = (
        re.compile(r"^(\s*)(\w+)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$")
        if not numpy
        else re.compile(r"^(\s*)(\w+)\s*(?::\s*(.*))?$")
    )
    indent: int | None = None
    current: str | None = None
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        depth = len(line) - len(line.lstrip())
        if (
            _SECTION.match(line)
            or (indent is not None and depth < indent)
            or (numpy and i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"})
        ):
            break
        m = head.match(line)
        if m and (indent is None or depth == indent):
            indent = depth
            current = m.group(2)
            params[current] = "" if numpy else m.group(4).strip()
        elif current is not None:
            params[current] = f"{params[current]} {line.strip()}".strip()
        i += 1
    return i
