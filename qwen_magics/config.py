"""Where requests go and with which key: explicit arguments, then ``configure()``, then environment.

Environment: ``DASHSCOPE_API_KEY``, ``QWEN_REGION`` (singapore, virginia, beijing, hongkong),
``DASHSCOPE_BASE_URL`` (overrides the region: the emulator, vLLM, Ollama, llama.cpp, ...),
``QWEN_MODEL`` (default ``qwen3.6-plus``), ``QWEN_DIALECT`` (how the server takes thinking:
dashscope, vllm or openai; see ``api/dialect.py``) and ``QWEN_OFFLINE=1``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

__all__ = [
    "DEFAULT_MODEL",
    "DIALECTS",
    "REGIONS",
    "Settings",
    "configure",
    "configured",
    "mask_key",
    "settings",
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
_KEYS = ("api_key", "region", "base_url", "model", "timeout", "offline", "dialect")

# The configuration layer: set by configure(), by the magics and by offline mode.
_configured: dict[str, Any] = {}


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
    """Set configuration-level defaults; a value of None removes that setting."""
    unknown = set(values) - set(_KEYS)
    if unknown:
        raise ConfigError(f"unknown setting {sorted(unknown)[0]!r}; known: {', '.join(_KEYS)}")
    for key, value in values.items():
        if value is None:
            _configured.pop(key, None)
        else:
            _configured[key] = value


def configured() -> dict[str, Any]:
    return dict(_configured)


def settings(
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    model: str | None = None,
    region: str | None = None,
    timeout: float | None = None,
    dialect: str | None = None,
) -> Settings:
    """Resolve the effective settings: explicit argument > configure() > environment > default."""
    env = os.environ
    region_name = region or _configured.get("region") or env.get("QWEN_REGION") or DEFAULT_REGION
    region_name = region_name.strip().lower().replace("-", "").replace(" ", "")
    if region_name not in REGIONS:
        raise ConfigError(f"unknown region {region_name!r}; set QWEN_REGION to one of {', '.join(REGIONS)}")
    url = base_url or _configured.get("base_url")
    source = "argument" if base_url else "configuration"
    if not url and env.get("DASHSCOPE_BASE_URL"):
        url, source = env["DASHSCOPE_BASE_URL"], "environment"
    if not url:
        url, source = REGIONS[region_name], "region"
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigError("the base URL must start with http:// or https://; check DASHSCOPE_BASE_URL")
    key = api_key or _configured.get("api_key") or env.get("DASHSCOPE_API_KEY") or None
    offline = bool(_configured.get("offline")) and not base_url and not api_key
    chosen, chosen_from = _dialect(dialect, url, offline=offline)
    return Settings(
        api_key=key,
        region=region_name,
        base_url=url,
        model=model or _configured.get("model") or env.get("QWEN_MODEL") or DEFAULT_MODEL,
        timeout=float(timeout or _configured.get("timeout") or 60.0),
        offline=offline,
        base_url_source=source,
        dialect=chosen,
        dialect_source=chosen_from,
    )


def _dialect(given: str | None, url: str, *, offline: bool) -> tuple[str | None, str]:
    """The dialect and why: given > configure() > QWEN_DIALECT > a DashScope URL; else None."""
    for value, source in (
        (given, "argument"),
        (_configured.get("dialect"), "configuration"),
        (os.environ.get("QWEN_DIALECT"), "QWEN_DIALECT"),
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
