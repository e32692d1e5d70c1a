"""Shared fixtures: the real emulator on loopback, a clean environment, a real IPython shell."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from IPython.utils.capture import capture_output

from qwen_magics import config, historydb
from qwen_magics.api import dialect, replay
from qwen_magics.emulator import Emulator

TEST_KEY = "sk-test-fake-key-0123456789-WXYZ"
ENV_VARS = (
    "DASHSCOPE_API_KEY",
    "DASHSCOPE_BASE_URL",
    "QWEN_REGION",
    "QWEN_MODEL",
    "QWEN_OFFLINE",
    "QWEN_DIALECT",
    "QWEN_REPLAY",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No Qwen variables from the machine (nor from a .env file above the tests), no configuration
    left by another test; no history written (the ``history`` fixture gives a test its own)."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(config, "_dotenv", config.DotEnv(None, {}))
    monkeypatch.setenv("QWEN_HISTORY", "off")
    historydb.use(None)
    replay.use(None)
    saved = config.configured()
    config._configured.clear()
    dialect.forget()  # a port seen before may now be a server of another kind
    yield
    config._configured.clear()
    config._configured.update(saved)
    historydb.flush(timeout=10)
    historydb.use(None)
    replay.use(None)


@pytest.fixture
def history(clean_env: None, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """This test's own history database (a path in tmp_path, not made yet), through QWEN_HISTORY."""
    path = tmp_path / "history" / "history.db"
    monkeypatch.setenv("QWEN_HISTORY", str(path))
    return path


@pytest.fixture
def emulator(clean_env: None) -> Iterator[Emulator]:
    """The emulator answering plain deterministic text, as fast as it can; a new one for each test."""
    emu = Emulator(generator="simple", api_key=TEST_KEY).start()
    yield emu
    stop_in_background(emu)


_stopping: list[threading.Thread] = []


def stop_in_background(emu: Emulator) -> None:
    """Stop an emulator without waiting for it: its server ends at its next poll, up to 0.1 s on,
    longer than most tests take. Nothing reaches it meanwhile (its port was this test's alone);
    the session waits for every such stop before it ends."""
    thread = threading.Thread(target=emu.stop, name="test-emulator-stop", daemon=True)
    thread.start()
    _stopping.append(thread)


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
    with capture_output():  # a next cell: what waits for one (a grid's toggle) is done with here
        ip.run_cell("pass")
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


_batches = tempfile.mkdtemp(prefix="qwen-test-batches-")


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    # no test, and no kernel a test starts, writes to ~/.qwen-magics; the history fixture opts in
    os.environ["QWEN_HISTORY"] = "off"
    os.environ["QWEN_BATCHES"] = _batches  # batch jobs' store


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """A failing test that used the real third-party server (tests/test_peer_server.py) shows its log."""
    report: pytest.TestReport = yield
    server = getattr(item, "funcargs", {}).get("peer")
    if report.failed and server is not None:
        report.sections.append(("transformers serve log", server.log()))
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    for thread in _stopping:
        thread.join()
    shutil.rmtree(_batches, ignore_errors=True)


@pytest.fixture
def ip(shell):  # type: ignore[no-untyped-def]
    """The shell with the extension loaded; settings made with ``%qwen config`` go with the test."""
    shell.run_line_magic("load_ext", "qwen_magics")
    yield shell
    shell.config.pop("QwenMagics", None)
