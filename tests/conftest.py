"""Shared fixtures: the real emulator on loopback, a clean environment, a real IPython shell."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from qwen_magics import config
from qwen_magics.emulator import Emulator

TEST_KEY = "sk-test-fake-key-0123456789-WXYZ"
ENV_VARS = ("DASHSCOPE_API_KEY", "DASHSCOPE_BASE_URL", "QWEN_REGION", "QWEN_MODEL", "QWEN_OFFLINE")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No Qwen variables from the machine, no configuration left by another test."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    saved = config.configured()
    config._configured.clear()
    yield
    config._configured.clear()
    config._configured.update(saved)


@pytest.fixture
def emulator(clean_env: None) -> Iterator[Emulator]:
    """The emulator answering plain deterministic text, as fast as it can."""
    with Emulator(generator="simple", api_key=TEST_KEY) as emu:
        yield emu


@pytest.fixture
def qwen_env(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The environment a user would set to point qwen-magics at the emulator."""
    monkeypatch.setenv("DASHSCOPE_BASE_URL", emulator.base_url)
    monkeypatch.setenv("DASHSCOPE_API_KEY", TEST_KEY)
    return emulator


@pytest.fixture
def shell(qwen_env: Emulator):  # type: ignore[no-untyped-def]
    """A real IPython shell (rich display, like a kernel's) with a fresh user namespace."""
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.user_ns.pop("_qwen", None)
    yield ip
    if "qwen_magics" in ip.extension_manager.loaded:
        ip.run_line_magic("unload_ext", "qwen_magics")


def open_connections(emulator: Emulator) -> list[Any]:
    """Established TCP connections to or from the emulator's port in this process: both ends of an
    in-process client's, the server's end of a kernel's."""
    import psutil

    return [
        c
        for c in psutil.Process().net_connections(kind="tcp")
        if c.status == psutil.CONN_ESTABLISHED
        and emulator.port in ((c.laddr.port if c.laddr else None), (c.raddr.port if c.raddr else None))
    ]


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
