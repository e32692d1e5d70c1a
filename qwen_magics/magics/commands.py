"""What the ``%qwen`` line commands show: ``config``, ``models`` and ``help``.

Each returns a display bundle (Markdown with a plain-text twin, so a terminal reads it too). The API
key is only ever shown masked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from traitlets import HasTraits, TraitError

from .. import config
from ..api.params import parse_value
from ..api.render import escape_text
from ..errors import APIError, ConfigError
from ..models import MODELS, ModelInfo, get_model

__all__ = [
    "config_bundle",
    "fetch_model_ids",
    "help_bundle",
    "models_bundle",
    "set_defaults",
    "usage_bundle",
]

MODELS_TIMEOUT = 5.0


def _table(header: list[str], rows: list[list[str]]) -> tuple[str, str]:
    """The same table as Markdown and as aligned plain text."""
    md = [
        "| " + " | ".join(escape_text(c).replace("|", "\\|") for c in row) + " |" for row in [header, *rows]
    ]
    md.insert(1, "|" + "|".join("---" for _ in header) + "|")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    plain = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]
    ]
    return "\n".join(md), "\n".join(plain)


# -- %qwen config --------------------------------------------------------------------------------
def _dotenv_row() -> str:
    """Which .env was read and the names it gave (never their values)."""
    found = config.dotenv_file()
    if found.path is None:
        return "none found (looked in the working directory and the folders above it)"
    names = ", ".join(sorted(found.values)) or "no DASHSCOPE_* or QWEN_* variables"
    return f"{found.path} ({names}; variables already in the environment win)"


def config_bundle(defaults: Mapping[str, Any], model_source: str) -> dict[str, str]:
    """The effective settings: key (masked), region, base URL, model, offline and the defaults."""
    s = config.settings()
    key = config.mask_key(s.api_key)
    key_from = config.key_source()
    url_from = {
        "simulator": "the offline simulator",
        "region": f"region {s.region}",
        "environment": "DASHSCOPE_BASE_URL",
        "configuration": "configuration",
        "argument": "argument",
    }[s.base_url_source]
    given = {k: v for k, v in defaults.items() if v is not None}
    rows = [
        ["API key", key + (f" (from {key_from})" if key_from else "")],
        ["region", s.region],
        ["base URL", f"{s.base_url} (from {url_from})"],
        ["model", f"{defaults.get('model') or s.model} (from {model_source})"],
        ["dialect", _dialect_row(s)],
        ["offline", "yes: answers come from the local simulator" if s.offline else "no"],
        [".env", _dotenv_row()],
        [
            "defaults",
            ", ".join(f"{k}={v!r}" for k, v in given.items() if k != "model")
            or "none (the model's own defaults apply)",
        ],
    ]
    md, plain = _table(["setting", "value"], rows)
    hint = (
        "Set defaults with `%qwen config temperature=0.3 model=qwen3.5-flash` or "
        "`%config QwenMagics.temperature = 0.3`; options in a cell win over them. "
        "`%qwen login` sets the key."
    )
    return {"text/markdown": f"{md}\n\n{hint}", "text/plain": f"{plain}\n\n{hint}"}


_SENDS = {
    "dashscope": "thinking as enable_thinking, budget as thinking_budget",
    "vllm": "thinking as chat_template_kwargs.enable_thinking; no budget",
    "openai": "no thinking field: thinking and budget are refused before sending",
}


def _dialect_row(s: config.Settings) -> str:
    """The dialect, why, and what it sends; for a server of unknown kind, its ``GET /models`` is asked."""
    from ..api.client import Client

    if s.dialect:
        name, why = s.dialect, s.dialect_source
    else:
        try:
            with Client(timeout=MODELS_TIMEOUT) as client:
                found = client.dialect()
            name, why = found.name, found.why
        except Exception as exc:  # no route, refused: found out at the first request that needs it
            why = _why(exc)
            return f"not known yet ({why}); set it: `%qwen config dialect=vllm` (or dashscope, openai)"
    return f"{name} ({why}): {_SENDS[name]}"


SETTINGS = ("region", "base_url", "timeout", "dialect")  # %qwen config names that go to config.configure


def set_defaults(
    target: HasTraits,
    tokens: list[str],
    names: list[str],
    check: Callable[[str, Any], None] | None = None,
) -> list[str]:
    """``%qwen config name=value ...``: traits of ``target`` (the magics' defaults) or connection
    settings, in order. Raises ValueError saying which name and why; the API key is refused (notebooks
    get shared: a key comes from ``%qwen login`` or the environment). ``check(name, value)`` runs
    before a trait is set, after the settings left of it (a model is looked up on the server the line
    chose)."""
    done = []
    for token in tokens:
        name, _, text = token.partition("=")
        name = name.strip().replace("-", "_")
        if name == "api_key":
            raise ValueError(
                "api_key: keep the API key out of notebooks (this line is saved with it, and in the "
                "history); run %qwen login, which asks for it without showing it, or set DASHSCOPE_API_KEY"
            )
        value = parse_value(name, text)
        if name in SETTINGS:
            before = config.configured().get(name)
            config.configure(**{name: None if value is None else str(value)})
            try:
                config.settings()
            except ConfigError as exc:
                config.configure(**{name: before})
                raise ValueError(f"{name}: {exc}") from None
        elif name in names:
            if check is not None:
                check(name, value)
            try:
                setattr(target, name, value)
            except TraitError as exc:
                message = str(exc).strip().splitlines()[0]
                raise ValueError(re.sub(r"The '(\w+)' trait of an? \w+ instance ", r"\1 ", message)) from None
        else:
            raise ValueError(f"{name}: unknown setting; known: {', '.join([*names, *SETTINGS])}")
        done.append(f"{name}={value!r}")
    return done


# -- %qwen models --------------------------------------------------------------------------------
def fetch_model_ids(timeout: float = MODELS_TIMEOUT) -> list[str]:
    """The ids on the server's ``GET /models`` list, from the client; raises a QwenError on failure."""
    from ..api.client import Client

    with Client(timeout=timeout) as client:
        return client.models()


def _price(x: float | None) -> str:
    return "—" if x is None else f"${x:.2f}"


def _row(name: str, info: ModelInfo | None) -> list[str]:
    if info is None:
        return [name, "—", "—", "—", "—", "—", "—", "—"]
    thinking_price = info.price_out if info.price_thinking is None else info.price_thinking
    return [
        name,
        f"{info.context:,}",
        f"{info.max_output:,}",
        info.describe_thinking(),
        "yes" if info.vision else "—",
        _price(info.price_in),
        _price(info.price_out),
        _price(thinking_price) if info.thinking != "none" else "—",
    ]


def _why(exc: Exception) -> str:
    """One short line; an API error's hint is about chat requests, so it goes."""
    if isinstance(exc, APIError):
        text = " ".join(str(p) for p in (exc.status, exc.code, exc.message) if p)
    else:
        text = str(exc)
    return (text.splitlines() or [type(exc).__name__])[0][:120]


def models_bundle(settings: config.Settings) -> dict[str, str]:
    """A table of models: the server's ``/models`` list when it answers, else the built-in table."""
    try:
        ids: list[str] | None = fetch_model_ids()
        why = ""
    except Exception as exc:  # any failure (no route, refused, timeout, odd body): the built-in table
        ids, why = None, _why(exc)
    header = [
        "model",
        "context",
        "max output",
        "thinking",
        "images",
        "input $/M",
        "output $/M",
        "thinking $/M",
    ]
    if ids is None:
        names = list(MODELS)
        source = (
            f"the built-in table (the server's /models did not answer: {why})"
            if why
            else "the built-in table"
        )
        others: list[str] = []
    else:
        listed = list(dict.fromkeys(ids))
        names = [n for n in listed if get_model(n) is not None]
        others = [n for n in listed if get_model(n) is None]
        source = f"{settings.base_url}/models ({len(listed)} models)"
    md, plain = _table(header, [_row(n, get_model(n)) for n in names]) if names else ("", "")
    note = (
        "Prices in USD per million tokens, base tier, from the package's table: an estimate. "
        "Choose one with `%%qwen -m MODEL` or `%qwen config model=MODEL`."
    )
    md_parts = [f"**Models** from {escape_text(source)}", md]
    plain_parts = [f"Models from {source}", plain]
    if others:
        md_parts.append(f"Also on the server (not in the table): {escape_text(', '.join(others))}")
        plain_parts.append(f"Also on the server (not in the table): {', '.join(others)}")
    md_parts.append(note)
    plain_parts.append(note)
    return {
        "text/markdown": "\n\n".join(p for p in md_parts if p),
        "text/plain": "\n\n".join(p for p in plain_parts if p),
    }


# -- %qwen replay ----------------------------------------------------------------------------------
def replay_bundle(replay: Any, sources: list[str]) -> dict[str, str]:
    """What ``%qwen replay`` says: the mode in force and where answers are looked up."""
    if replay.mode == "off":
        text = (
            "Replay is off: every request goes to the server. %qwen replay on (or only) [PATH] turns it on."
        )
    else:
        where = " then ".join(sources) or "nowhere (the history is off; give a PATH)"
        how = (
            "asks the server when the record has no answer"
            if replay.mode == "on"
            else "never asks the server"
        )
        pace = "at the recorded pace" if replay.pace else "at once"
        text = f"Replay {replay.mode}: answers come from {where}, {pace}; a request {how}."
    return {"text/markdown": escape_text(text), "text/plain": text}


# -- %qwen help ----------------------------------------------------------------------------------
COMMANDS = [
    ("%%qwen [options]", "ask with the cell as the prompt; the answer streams as Markdown"),
    ("%qwen [options] prompt", "ask a one-line question"),
    ("%qwen config", "show the effective settings (the key masked)"),
    (
        "%qwen config name=value ...",
        "set defaults (name = value works too): model, system, temperature, top_p, top_k, "
        "presence_penalty, thinking, budget, max_tokens, seed, raw, stream, history, region, base_url, "
        "dialect",
    ),
    ("%qwen login [region]", "ask for the API key without showing it; kept in memory only"),
    ("%qwen models", "list the models with context, max output, thinking, images and prices"),
    (
        "%qwen explain [options] [question]",
        "explain the last error: its traceback and the failing cell go to the model (%%qwen --error: "
        "your own question with them)",
    ),
    ("%qwen history", "show the current conversation"),
    ("%qwen reset", "forget the current conversation"),
    (
        "%qwen log [-n N] [-q WORDS] [-m MODEL] [--since WHEN]",
        "the recorded answers, newest first (WHEN: 2026-12-01, 30m, 1h, 2d, yesterday)",
    ),
    ("%qwen batches [ID]", "the recent Batch API jobs (kept here and listed by the service), or one job"),
    (
        "%qwen replay on|off|only [PATH] [--pace]",
        "answer from the record (the history, or a saved .ipynb at PATH): on asks the server on a "
        "miss, only never does",
    ),
    ("%qwen panel [options] [prompt]", "sliders for every parameter, with a Run button"),
    ("%qwen help", "this text; %%qwen? shows every option"),
    ("%qwen -- prompt", "a prompt that starts with a command word: %qwen -- reset the counter"),
]

NOTES = [
    "Prompt variables: {name} and {expression} come from the notebook; write {{ and }} for braces. "
    "A prompt whose braces are not all variables (code, JSON) is sent as written.",
    "The last answer is always in _qwen (a Response: .text, .reasoning, .usage, .cost); -o NAME keeps "
    "it in NAME too.",
    "Without -c a cell starts a new conversation; -c continues it (reasoning is not sent back).",
    "Stop a running answer with the stop button (Ctrl-C): what arrived is kept, marked interrupted.",
]


def help_bundle(options: list[tuple[str, str]]) -> dict[str, str]:
    """Commands, options (from the magic's parser) and the rules worth knowing."""
    md_c, plain_c = _table(["command", "what it does"], [list(c) for c in COMMANDS])
    md_o, plain_o = _table(["option", "meaning"], [list(o) for o in options])
    md = "\n\n".join(
        ["**qwen-magics**", md_c, "**Options**", md_o, "\n".join(f"- {escape_text(n)}" for n in NOTES)]
    )
    plain = "\n\n".join(["qwen-magics", plain_c, "Options", plain_o, "\n".join(f"- {n}" for n in NOTES)])
    return {"text/markdown": md, "text/plain": plain}


def usage_bundle() -> dict[str, str]:
    """``%qwen`` alone: the commands, and where every option is."""
    md, plain = _table(["command", "what it does"], [list(c) for c in COMMANDS])
    more = "Every option and the rules worth knowing: `%qwen help` (or `%%qwen?`)."
    return {
        "text/markdown": f"**qwen-magics**\n\n{md}\n\n{more}",
        "text/plain": f"qwen-magics\n\n{plain}\n\n{more}",
    }
