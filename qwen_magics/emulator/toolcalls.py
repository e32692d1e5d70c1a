"""Function calling in the emulator: DashScope's checks of ``tools`` and of the tool turns, and
which tools a prompt calls, with what arguments.

A tool is called when the words of the prompt meet its name or description (``get_weather`` for
"the weather in Paris"), its arguments filled from the schema and the prompt's words: a quoted
phrase or a capitalised name for a string, a number for a number, an enum value the prompt names.
Tools already answered in this turn are not called again; with ``parallel_tool_calls`` every
matching tool is called in one turn, else the best one, and the next after its result. When the
results are in (or nothing matches) the model answers in text, from the results.
"""

from __future__ import annotations

import itertools
import json
import re
import uuid
from typing import Any

from .protocol import ProtocolError
from .words import _STOPWORDS, _content, _stem, _words

__all__ = ["ToolCall", "answered_results", "plan_calls", "validate_tools"]

ToolCall = dict[str, str]  # {"id", "name", "arguments"}: arguments as the JSON text sent

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_QUOTED = re.compile(r"`([^`\n]{1,120})`|[\"“'‘]([^\"”'’\n]{1,60})[\"”'’]")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?")
_COMPARISON = re.compile(r"==|!=|<=|>=|<|>")
_FILTER_KEYS = ("where", "filter", "query", "condition", "expr")
_GENERIC = _STOPWORDS | {"get", "set", "current", "fetch", "find", "return", "returns", "value", "given"}


def _bad(message: str) -> ProtocolError:
    return ProtocolError(400, "invalid_parameter_error", message)


def _algo(message: str) -> ProtocolError:
    return _bad(f"<400> InternalError.Algo.InvalidParameter: {message}")


def validate_tools(body: dict[str, Any], *, takes_tools: bool, thinking: bool) -> ProtocolError | None:
    """The first rule ``tools``, ``tool_choice`` or the tool turns break, or None."""
    tools = body.get("tools")
    messages = body.get("messages") or []
    if tools is not None:
        if not takes_tools:
            return _bad("The tool call is not supported.")
        if not isinstance(tools, list):
            return _bad("Required parameter(tools) missing or invalid, please check the request parameters.")
        for tool in tools:
            fn = tool.get("function") if isinstance(tool, dict) else None
            if (
                not isinstance(fn, dict)
                or tool.get("type") != "function"
                or not isinstance(fn.get("name"), str)
            ):
                return _bad(
                    "Required parameter(tools) missing or invalid, please check the request parameters."
                )
            if fn["name"] == "search":
                return _bad("Tool names are not allowed to be [search]")
            if not _NAME.match(fn["name"]):
                return _bad(f"Invalid tool name {fn['name']!r}: letters, digits, '_' and '-', at most 64.")
            params = fn.get("parameters")
            if params is not None and not isinstance(params, dict):
                return _bad(f"The parameters of tool {fn['name']} must be a JSON Schema object.")
    choice = body.get("tool_choice")
    if choice is not None:
        if isinstance(choice, str):
            if choice not in ("none", "auto", "required"):
                return _bad('tool_choice is one of the strings that should be ["none", "auto"]')
        elif isinstance(choice, dict):
            name = (choice.get("function") or {}).get("name")
            if name not in {(t.get("function") or {}).get("name") for t in tools or []}:
                return _algo(
                    f'Invalid value for "tool_choice": no function named "{name}" was specified in '
                    'the "tools" parameter.'
                )
        else:
            return _bad('tool_choice is one of the strings that should be ["none", "auto"]')
        if thinking and (choice == "required" or isinstance(choice, dict)):
            return _bad(
                "The tool_choice parameter does not support being set to required or object in thinking mode"
            )
    return _check_turns(messages)


def _check_turns(messages: list[dict[str, Any]]) -> ProtocolError | None:
    """Each assistant turn with tool_calls is followed by one tool message per call id; a tool
    message answers such a turn."""
    pending: list[str] = []
    open_turn = False
    for m in messages:
        role = m.get("role")
        if role == "tool":
            call_id = m.get("tool_call_id")
            if not open_turn:
                return _bad(
                    'Messages with role "tool" must be a response to a preceding message with "tool_calls"'
                )
            if not isinstance(call_id, str) or call_id not in pending:
                return _algo(
                    f"Invalid tool_call_id {call_id!r}: a tool message must answer one of the "
                    'preceding message\'s "tool_calls" by its "id".'
                )
            pending.remove(call_id)
            continue
        if pending:
            return _unanswered(pending)
        open_turn = False
        calls = m.get("tool_calls") if role == "assistant" else None
        if calls:
            if not isinstance(calls, list) or not all(isinstance(c, dict) and c.get("id") for c in calls):
                return _bad(
                    "Required parameter(tool_calls) missing or invalid, please check the request parameters."
                )
            pending = [c["id"] for c in calls]
            open_turn = True
    if pending:
        return _unanswered(pending)
    return None


def _unanswered(pending: list[str]) -> ProtocolError:
    return _algo(
        'An assistant message with "tool_calls" must be followed by tool messages responding to each '
        f'"tool_call_id". The following tool_call_ids did not have response messages: {", ".join(pending)}'
    )


def answered_results(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(tool name, result text) of the tool messages after the last user turn."""
    last_user = max(i for i, m in enumerate(messages) if m.get("role") == "user")
    names: dict[str, str] = {}
    out: list[tuple[str, str]] = []
    for m in messages[last_user + 1 :]:
        for call in m.get("tool_calls") or ():
            names[call.get("id", "")] = (call.get("function") or {}).get("name", "")
        if m.get("role") == "tool":
            content = m.get("content")
            text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
            out.append((names.get(m.get("tool_call_id", ""), "tool"), text))
    return out


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def plan_calls(body: dict[str, Any], prompt: str) -> list[ToolCall]:
    """The calls this turn makes (none: answer in text)."""
    tools = [t["function"] for t in body.get("tools") or []]
    choice = body.get("tool_choice")
    if not tools or choice == "none":
        return []
    messages = body.get("messages") or []
    done = {name for name, _ in answered_results(messages)}
    if isinstance(choice, dict):
        forced = choice["function"]["name"]
        wanted = [t for t in tools if t["name"] == forced and forced not in done]
    else:
        # once results are in, only a tool whose own name the prompt asks for (in words the tools
        # already called do not share) is called next: a model stops when it has what it needs
        known = set().union(*(_stems(n.lower()) for n in done))
        scored = [
            (score, i, t)
            for i, t in enumerate(tools)
            if t["name"] not in done and (not done or _said_name(t, prompt, known))
            for score in [_score(t, prompt)]
        ]
        # ties go to the tool whose name says least the prompt does not (count before value_counts)
        ranked = sorted(scored, key=lambda s: (-s[0], _unsaid(s[2], prompt), s[1]))
        wanted = [t for score, _, t in ranked if score >= 2]
        if not wanted and choice == "required" and not done:
            wanted = [max(scored, key=lambda s: (s[0], -s[1]))[2]] if scored else []
    if not body.get("parallel_tool_calls"):
        wanted = wanted[:1]
    return [
        {
            "id": new_call_id(),
            "name": t["name"],
            "arguments": json.dumps(_arguments(t, prompt), ensure_ascii=False),
        }
        for t in wanted
    ]


def _stems(text: str) -> set[str]:
    return {
        _stem(w.lower()) for w in re.split(r"[\W_]+", text) if w and w.lower() not in _GENERIC and len(w) > 1
    }


def _said_words(prompt: str) -> set[str]:
    words = [w.lower() for w in _words(prompt) if w[0].isalnum()]
    return {_stem(w) for w in words} | {a + b for a, b in itertools.pairwise(words)}


def _unsaid(tool: dict[str, Any], prompt: str) -> int:
    said = _said_words(prompt)
    return sum(1 for w in re.split(r"[\W_]+", tool["name"].lower()) if w and _stem(w) not in said)


def _said_name(tool: dict[str, Any], prompt: str, known: set[str]) -> bool:
    return bool((_stems(tool["name"].lower()) - known) & _said_words(prompt))


def _score(tool: dict[str, Any], prompt: str) -> int:
    """Two points per word of the tool's name the prompt uses, one per word of its description."""
    said = _said_words(prompt)
    name = _stems(tool["name"].lower())
    described = _stems(str(tool.get("description") or "").lower()) - name
    return 2 * len(name & said) + len(described & said)


def _arguments(tool: dict[str, Any], prompt: str) -> dict[str, Any]:
    schema = tool.get("parameters") or {}
    about = _stems(f"{tool['name']} {tool.get('description') or ''}")
    taken: set[str] = set()
    return _fill_object(schema, prompt, about, taken, schema.get("$defs") or {})


def _resolve(sch: Any, defs: dict[str, Any]) -> dict[str, Any]:
    for _ in range(10):
        if not isinstance(sch, dict):
            return {}
        ref = sch.get("$ref")
        if isinstance(ref, str):
            sch = defs.get(ref.rsplit("/", 1)[-1], {})
            continue
        branches = sch.get("anyOf") or sch.get("oneOf")
        if isinstance(branches, list) and branches:
            real = [b for b in branches if not (isinstance(b, dict) and b.get("type") == "null")]
            sch = real[0] if real else branches[0]
            continue
        return sch
    return {}


def _fill_object(
    schema: dict[str, Any], prompt: str, about: set[str], taken: set[str], defs: dict[str, Any]
) -> dict[str, Any]:
    props = schema.get("properties") or {}
    required = schema.get("required") or []
    out: dict[str, Any] = {}
    for key, sub in props.items():
        sub = _resolve(sub, defs)
        if key not in required and not _said(key, sub, prompt, taken):
            continue
        out[key] = _value(key, sub, prompt, about, taken, defs)
    return out


def _said(key: str, sch: dict[str, Any], prompt: str, taken: set[str]) -> bool:
    """An optional parameter is given when the prompt names one of its allowed values, or, for a
    string, quotes a value still unused (a comparison, for a filter)."""
    low = prompt.lower()
    if any(isinstance(v, str) and v.lower() in low for v in sch.get("enum") or ()):
        return True
    if sch.get("type") != "string" or "enum" in sch:
        return False
    filtering = any(w in key.lower() for w in _FILTER_KEYS)
    quoted = [(a or b).strip() for a, b in _QUOTED.findall(prompt)]
    return any(q not in taken and bool(_COMPARISON.search(q)) == filtering for q in quoted)


def _value(
    key: str, sch: dict[str, Any], prompt: str, about: set[str], taken: set[str], defs: dict[str, Any]
) -> Any:
    kind = sch.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if sch.get("enum"):
        said = prompt.lower()
        return next((v for v in sch["enum"] if str(v).lower() in said), sch["enum"][0])
    if "const" in sch:
        return sch["const"]
    if kind == "object" or "properties" in sch:
        return _fill_object(sch, prompt, about, taken, defs)
    if kind == "array":
        return [
            _value(key, _resolve(sch.get("items") or {"type": "string"}, defs), prompt, about, taken, defs)
        ]
    if kind in ("integer", "number"):
        for text in _NUMBER.findall(prompt):
            if text not in taken:
                taken.add(text)
                number = float(text)
                return int(number) if kind == "integer" else number
        low, high = sch.get("minimum"), sch.get("maximum")
        guess = low if isinstance(low, (int, float)) else (high if isinstance(high, (int, float)) else 1)
        return int(guess) if kind == "integer" else float(guess)
    if kind == "boolean":
        return not re.search(r"\b(no|not|without|false)\b", prompt.lower())
    return _string(key, prompt, about, taken)


def _string(key: str, prompt: str, about: set[str], taken: set[str]) -> str:
    """A quoted phrase, else a capitalised name (not the first word) nearest the words that named
    the tool ("the time in Tokyo" gives Tokyo to the clock), else a content word the tool's own name
    and description do not use."""
    quoted = [(a or b).strip() for a, b in _QUOTED.findall(prompt)]
    filtering = any(w in key.lower() for w in _FILTER_KEYS)
    # a quoted comparison is a filter's; other strings take the plain quoted words
    candidates = [q for q in quoted if bool(_COMPARISON.search(q)) == filtering]
    words = [w for w in _words(prompt) if w[0].isalnum()]
    anchors = [i for i, w in enumerate(words) if _stem(w.lower()) in about] or [0]
    names = [(i, w) for i, w in enumerate(words) if i and w[0].isupper() and w.lower() not in _GENERIC]
    names.sort(key=lambda p: min(abs(p[0] - a) + (0.5 if p[0] < a else 0) for a in anchors))
    candidates += [w for _, w in names]
    candidates += [w for w in _content(prompt) if _stem(w.lower()) not in about]
    for text in candidates:
        if text and text not in taken:
            taken.add(text)
            return text
    return key.replace("_", " ")
