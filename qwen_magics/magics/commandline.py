"""Reading a ``%qwen`` line: the command it names, or a prompt.

A line whose first word is a command word is that command and never a prompt, so ``%qwen reset now``
is a usage error rather than a question sent by mistake; ``%qwen -- reset the counter`` sends it as a
prompt. A command word alone is the command in any case (``%qwen History``); a capitalised word that
starts a longer line is a prompt (``%qwen History of Rome in three lines``). ``%qwen config`` takes
settings as ``NAME=VALUE`` or, as ``%config`` does, ``NAME = VALUE``.
"""

from __future__ import annotations

import re

from IPython.utils.process import arg_split

__all__ = ["COMMANDS", "as_prompt", "read_command", "read_settings"]

COMMANDS = (
    "config",
    "models",
    "history",
    "log",
    "reset",
    "help",
    "panel",
    "login",
    "replay",
    "explain",
    "batches",
)
_SETTING = re.compile(r"[A-Za-z_][\w.-]*=")


def read_command(line: str) -> tuple[str, str] | None:
    """``(command, the rest of the line)``, or None when the line is a prompt."""
    words = line.split(None, 1)
    if not words:
        return None
    word, rest = words[0], words[1].strip() if len(words) > 1 else ""
    if word in COMMANDS:
        return word, rest
    if not rest and word.lower() in COMMANDS:
        return word.lower(), ""
    return None


def as_prompt(line: str) -> str:
    """The end of a command's usage error: how to send the same line as a prompt."""
    return f"to send it as a prompt: %qwen -- {line.strip()}"


def read_settings(rest: str) -> list[str] | None:
    """``temperature = 0.3 system="Be brief."``: the settings as ``NAME=VALUE`` tokens (shell quoting),
    or None when ``rest`` is not settings (a bare name, a lone ``=``). Raises ValueError for quotes
    that do not close."""
    tokens = arg_split(rest, posix=True)
    out: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if "=" not in token:  # NAME, then `= VALUE` or `=VALUE`
            following = tokens[i + 1] if i + 1 < len(tokens) else ""
            if not following.startswith("="):
                return None
            token, i = token + following, i + 1
        name, _, value = token.partition("=")
        if not name:
            return None
        if not value and i + 1 < len(tokens) and not _SETTING.match(tokens[i + 1]):  # NAME= VALUE
            value, i = tokens[i + 1], i + 1
        out.append(f"{name}={value}")
        i += 1
    return out
