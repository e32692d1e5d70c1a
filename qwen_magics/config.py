"""Where requests go and with which key: explicit arguments, then ``configure()``, then environment.

Environment: ``DASHSCOPE_API_KEY``, ``QWEN_REGION`` (singapore, virginia, beijing, hongkong),
``DASHSCOPE_BASE_URL`` (overrides the region: the emulator, vLLM, Ollama, llama.cpp, ...),
``QWEN_MODEL`` (default ``qwen3.6-plus``), ``QWEN_DIALECT`` (how the server takes thinking:
dashscope, vllm or openai; see ``api/dialect.py``) and ``QWEN_OFFLINE=1``. Each may also stand in a ``.env``
file in the working directory or the nearest parent that has one; a variable already in the
environment wins, and the file's other variables are left alone (``environ``).

While the offline simulator answers, its base URL and key sit in a layer of their own, under the
arguments: a key or base URL the user sets after it started (``login``, ``configure``, the
environment) takes its place, unless QWEN_OFFLINE=1.
"""

from __future__ import annotations

import os
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = [
    "DEFAULT_MODEL",
    "DIALECTS",
    "DotEnv",
    "REGIONS",
    "Settings",
    "configure",
    "configured",
    "dotenv_file",
    "drop_simulator",
    "environ",
    "key_problem",
    "key_source",
    "mask_key",
    "offline_forced",
    "on_simulator",
    "region_name",
    "set_key",
    "settings",
    "use_simulator",
]

DEFAULT_MODEL = "qwen3.6-plus"
DEFAULT_REGION = "singapore"
REGIONS = {
    "singapore": "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
    "virginia": "https://dashscope-us.aliyuncs.com/compatible-mode/v1",
    "beijing": "https://dashscope.aliyuncs.com/compatible-mode/v1",
    "hongkong": "https://cn-hongkong.dashscope.aliyuncs.com/compatible-mode/v1",
}
DIALECTS = ("dashscope", "vllm", "openai")
_KEYS = ("api_key", "region", "base_url", "model", "timeout", "dialect")
_TRUE = ("1", "true", "yes", "on")
_OURS = ("DASHSCOPE_", "QWEN_")  # the variables a .env file may give

# The configuration layer: set by configure(), by the magics and by login().
_configured: dict[str, Any] = {}
_key_from = "configure()"  # what set _configured's api_key, in %qwen config's words
# The offline simulator's base_url and api_key while it answers, and the user's own key and base
# URL as they were when it started ("seen"): one that differs later takes its place.
_simulator: dict[str, Any] = {}


@dataclass(frozen=True)
class DotEnv:
    """The ``.env`` file found (None: none), and its DASHSCOPE_* and QWEN_* variables."""

    path: Path | None
    values: Mapping[str, str] = field(repr=False)


_dotenv: DotEnv | None = None  # read once, at the first look at the environment


def dotenv_file() -> DotEnv:
    """The nearest ``.env`` from the working directory up, read once (python-dotenv parses it; it
    is imported only when there is a file, so ``%load_ext`` stays quick)."""
    global _dotenv
    if _dotenv is None:
        found: Path | None = None
        values: dict[str, str] = {}
        try:
            here = Path.cwd()
            found = next((d / ".env" for d in (here, *here.parents) if (d / ".env").is_file()), None)
            if found is not None:
                from dotenv import dotenv_values

                values = {k: v for k, v in dotenv_values(found).items() if k.startswith(_OURS) and v}
        except (OSError, UnicodeDecodeError):  # no working directory, an unreadable file: none
            found, values = None, {}
        _dotenv = DotEnv(found, values)
    return _dotenv


def environ() -> Mapping[str, str]:
    """The environment, then the ``.env`` file's DASHSCOPE_* and QWEN_* variables under it. Nothing
    is written to ``os.environ``: the file's key stays in this process, out of its subprocesses'."""
    return ChainMap(os.environ, dict(dotenv_file().values))


def offline_forced() -> bool:
    """QWEN_OFFLINE=1: requests without a key or base URL of their own go to the offline simulator."""
    return environ().get("QWEN_OFFLINE", "").strip().lower() in _TRUE


def mask_key(key: str | None) -> str:
    """``sk-…abcd``: enough to tell keys apart, never enough to use one."""
    if not key:
        return "(not set)"
    prefix = "sk-" if key.startswith("sk-") else ""
    tail = key[-4:] if len(key) >= 12 else ""
    return f"{prefix}…{tail}"


@dataclass(frozen=True)
class Settings:
    """The effective settings of one request. Its repr masks the key."""

    api_key: str | None = field(repr=False)
    region: str
    base_url: str
    model: str
    timeout: float = 60.0
    offline: bool = False
    base_url_source: str = "region"
    dialect: str | None = None  # None: not set and not a DashScope URL; found out when needed
    dialect_source: str = ""

    def __repr__(self) -> str:
        return (
            f"Settings(api_key={mask_key(self.api_key)!r}, region={self.region!r}, "
            f"base_url={self.base_url!r}, model={self.model!r}, timeout={self.timeout!r}, "
            f"offline={self.offline!r}, dialect={self.dialect!r})"
        )

    @property
    def where(self) -> str:
        """Human words for where requests go, for error messages."""
        if self.offline:
            return "the offline simulator"
        if self.base_url_source == "region":
            return self.region.capitalize()
        return self.base_url


def configure(**values: Any) -> None:
    """Set configuration-level defaults; a value of None removes that setting. A key set here is
    kept in memory only; set after the offline simulator started, it takes the simulator's place."""
    global _key_from
    unknown = set(values) - set(_KEYS)
    if unknown:
        raise ConfigError(f"unknown setting {sorted(unknown)[0]!r}; known: {', '.join(_KEYS)}")
    for key, value in values.items():
        if value is None:
            _configured.pop(key, None)
        else:
            _configured[key] = value
    if values.get("api_key"):
        _key_from = "configure()"


def configured() -> dict[str, Any]:
    return dict(_configured)


def set_key(key: str, *, source: str) -> None:
    """Use ``key`` for this session, in memory only; ``%qwen config`` says it came from ``source``."""
    global _key_from
    configure(api_key=key)
    _key_from = source


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot be a key (a character by position, never the key itself), or None: a
    character an HTTP header cannot carry, or a blank inside it (a key has none)."""
    for i, ch in enumerate(key):
        if ch.isspace() or not (ch.isascii() and ch.isprintable()):
            return f"the API key holds {ch!r} at character {i + 1}, which a key never holds"
    return None


def key_source() -> str:
    """Where the next request's key comes from, in words for ``%qwen config`` ("" when none)."""
    if on_simulator():
        return "the offline simulator"
    if _configured.get("api_key"):
        return _key_from
    if os.environ.get("DASHSCOPE_API_KEY"):
        return "DASHSCOPE_API_KEY"
    found = dotenv_file()
    if found.values.get("DASHSCOPE_API_KEY"):
        return f"DASHSCOPE_API_KEY in {found.path}"
    return ""


def region_name(text: str) -> str:
    """``"Hong Kong"`` → ``"hongkong"``; raises ConfigError for a region that is not one."""
    name = text.strip().lower().replace("-", "").replace(" ", "")
    if name not in REGIONS:
        raise ConfigError(f"unknown region {name!r}; set QWEN_REGION to one of {', '.join(REGIONS)}")
    return name


# -- the offline simulator's layer (simulator.py starts and stops it) -----------------------------
def _own() -> tuple[Any, ...]:
    """The user's own key and base URL: configured, and in the environment."""
    env = environ()
    return (
        _configured.get("api_key"),
        _configured.get("base_url"),
        env.get("DASHSCOPE_API_KEY"),
        env.get("DASHSCOPE_BASE_URL"),
    )


def use_simulator(base_url: str, api_key: str) -> None:
    """Send requests that name no key or base URL of their own to the offline simulator."""
    _simulator.update(base_url=base_url, api_key=api_key, seen=_own())


def drop_simulator() -> None:
    _simulator.clear()


def on_simulator() -> bool:
    """Whether requests without a key or base URL of their own go to the offline simulator: from its
    start until a key or base URL other than the ones then set arrives (for good), unless
    QWEN_OFFLINE=1."""
    seen = _simulator.get("seen")  # read once: compare and apply resolve settings from threads
    arrived = seen is not None and any(now and now != then for now, then in zip(_own(), seen, strict=True))
    if arrived and not offline_forced():
        _simulator.clear()
    return bool(_simulator)


def settings(
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    model: str | None = None,
    region: str | None = None,
    timeout: float | None = None,
    dialect: str | None = None,
) -> Settings:
    """Resolve the effective settings: explicit argument > offline simulator > configure() >
    environment (then .env) > default."""
    env = environ()
    region = region_name(region or _configured.get("region") or env.get("QWEN_REGION") or DEFAULT_REGION)
    simulated = dict(_simulator) if not base_url and not api_key and on_simulator() else {}
    offline = bool(simulated)
    url, source = base_url, "argument"
    if not url and simulated:
        url, source = simulated["base_url"], "simulator"
    if not url and _configured.get("base_url"):
        url, source = _configured["base_url"], "configuration"
    if not url and env.get("DASHSCOPE_BASE_URL"):
        url, source = env["DASHSCOPE_BASE_URL"], "environment"
    if not url:
        url, source = REGIONS[region], "region"
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigError("the base URL must start with http:// or https://; check DASHSCOPE_BASE_URL")
    key = api_key or simulated.get("api_key") or _configured.get("api_key") or env.get("DASHSCOPE_API_KEY")
    chosen, chosen_from = _dialect(dialect, url, env, offline=offline)
    return Settings(
        api_key=key or None,
        region=region,
        base_url=url,
        model=model or _configured.get("model") or env.get("QWEN_MODEL") or DEFAULT_MODEL,
        timeout=float(timeout or _configured.get("timeout") or 60.0),
        offline=offline,
        base_url_source=source,
        dialect=chosen,
        dialect_source=chosen_from,
    )


def _dialect(given: str | None, url: str, env: Mapping[str, str], *, offline: bool) -> tuple[str | None, str]:
    """The dialect and why: given > configure() > QWEN_DIALECT > a DashScope URL; else None."""
    for value, source in (
        (given, "argument"),
        (_configured.get("dialect"), "configuration"),
        (env.get("QWEN_DIALECT"), "QWEN_DIALECT"),
    ):
        if value and str(value).strip():
            name = str(value).strip().lower()
            if name not in DIALECTS:
                raise ConfigError(
                    f"unknown dialect {name!r} (from {source}); use one of {', '.join(DIALECTS)}: dashscope "
                    "sends enable_thinking, vllm sends chat_template_kwargs, openai sends no thinking field"
                )
            return name, f"set by {source}"
    host = url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0].lower()
    if offline or host.endswith(".aliyuncs.com") or "/compatible-mode/" in url + "/":
        return "dashscope", "a DashScope URL" if not offline else "the offline simulator"
    return None, ""
