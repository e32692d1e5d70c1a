"""qwen-magics: Qwen in Jupyter.

``%load_ext qwen_magics`` registers ``%%qwen``; ``ask`` / ``aask`` work anywhere (``offline()`` or
QWEN_OFFLINE=1 answers them from the local simulator, without a key; ``login()`` asks for a key
without showing it). Heavy features (panel, compare, structured output, the emulator, Batch API
jobs) load when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .api.response import Event, Response, Usage
from .config import configure, settings
from .errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    BadRequestError,
    ConfigError,
    NotFoundError,
    ParameterError,
    PermissionDeniedError,
    QwenError,
    RateLimitError,
    ReplayMiss,
    ServerError,
    StreamInterrupted,
    StructuredOutputError,
)
from .models import MODELS, ModelInfo

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from . import checks
    from .api.client import AsyncClient, BackoffGate, Client, Retry, aask, ask
    from .images import image
    from .jobs.job import Batch
    from .jobs.requests import batch
    from .recall import history
    from .simulator import offline
    from .widgets.login import login

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "aask",
    "aask_json",
    "APIConnectionError",
    "APIError",
    "apply",
    "ask",
    "ask_json",
    "AsyncClient",
    "AuthenticationError",
    "BackoffGate",
    "BadRequestError",
    "batch",
    "Batch",
    "checks",
    "Client",
    "compare",
    "Comparison",
    "ConfigError",
    "configure",
    "Emulator",
    "Event",
    "history",
    "image",
    "load_ipython_extension",
    "login",
    "ModelInfo",
    "MODELS",
    "NotFoundError",
    "offline",
    "panel",
    "ParameterError",
    "PermissionDeniedError",
    "QwenError",
    "RateLimitError",
    "ReplayMiss",
    "Response",
    "Retry",
    "ServerError",
    "settings",
    "StreamInterrupted",
    "StructuredOutputError",
    "to_dataframe",
    "tool",
    "tools",
    "unload_ipython_extension",
    "Usage",
]

# name -> module that defines it, imported on first use
_LAZY = {
    # the HTTP client (httpx) loads on first use, so `%load_ext qwen_magics` stays quick
    "AsyncClient": ".api.client",
    "BackoffGate": ".api.client",
    "Client": ".api.client",
    "Retry": ".api.client",
    "aask": ".api.client",
    "ask": ".api.client",
    "Batch": ".jobs.job",  # Batch.resume(id): a Batch API job sent from another kernel
    "batch": ".jobs.requests",  # batch([...prompts]): the Batch API at half price
    "checks": ".checks",  # qm.checks.contains(...), qm.checks.judge(...)
    "Comparison": ".comparison.compare",
    "Emulator": ".emulator",
    "aask_json": ".structured.ask",
    "apply": ".structured.apply",
    "ask_json": ".structured.ask",
    "compare": ".comparison.compare",
    "history": ".recall",  # the recorded answers: history(q=...), .get(id), .delete(...), .export(path)
    "image": ".images",  # qm.image(path, URL or bytes): a picture for a prompt
    "login": ".widgets.login",
    "offline": ".simulator",
    "panel": ".widgets.panel",
    "to_dataframe": ".structured.records",
    "tool": ".tools.schema",  # @qwen_magics.tool(name=..., description=...)
    "tools": ".tools",  # qwen_magics.tools.dataframe(df, name="sales")
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'qwen_magics' has no attribute {name!r}")
    found = importlib.import_module(module, __name__)
    value = found if found.__name__ == f"{__name__}.{name}" else getattr(found, name)  # a module itself
    globals()[name] = value
    return value


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """``%load_ext qwen_magics``: register %%qwen and %qwen."""
    from .magics.magics import load

    load(ipython)


def unload_ipython_extension(ipython: InteractiveShell) -> None:
    from .magics.magics import unload

    unload(ipython)
