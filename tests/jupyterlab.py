"""JupyterLab in a real browser, for tests: a private Lab server and Debian's Chromium via Playwright.

``lab_server(tmp, env=...)`` starts ``jupyter lab`` on loopback with a random token, a temporary
notebook directory and its own Jupyter, IPython and JupyterLab settings directories, so a test never
reads or writes the user's. ``chromium()`` launches ``/usr/bin/chromium`` headless (Playwright's own
browser is never downloaded) and fails with the install command when it is missing. ``Notebook``
drives one notebook in a page: open it, run all cells, read outputs and errors, save a screenshot
to ``test-artifacts/``.

Usage::

    with lab_server(tmp_path, env={...}) as lab, chromium() as browser:
        lab.write_notebook("x.ipynb", ["print(1)"])   # or lab.copy_notebook(path)
        nb = Notebook(browser.new_page(), lab).open("x.ipynb")
        nb.run_all()
        assert nb.errors() == []
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .waiting import wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
# variables of the machine that would point the server or its kernels at the user's own setup
_PRIVATE_PREFIXES = ("JUPYTER", "IPYTHON", "DASHSCOPE_", "QWEN_")
# Lab's toasts asking about news and updates would cover the page in screenshots
_QUIET_LAB = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    # as `make lab` sets it (the Makefile's LAB_OVERRIDES): saved notebooks keep their widgets' state
    "@jupyter-widgets/jupyterlab-manager/plugin.jupyterlab-settings": {"saveState": True},
}


@dataclass
class LabServer:
    """A running JupyterLab: its address, token, notebook directory and log."""

    url: str  # http://127.0.0.1:PORT/
    token: str
    root: Path  # the notebook directory
    process: subprocess.Popen[bytes]
    log: Path

    def lab_url(self, path: str = "") -> str:
        where = f"lab/tree/{path}" if path else "lab"
        return f"{self.url}{where}?token={self.token}"

    def write_notebook(self, name: str, cells: Sequence[str]) -> Path:
        """A notebook of code cells, for the native Python kernel (so Lab asks for nothing)."""
        nb = {
            "cells": [
                {
                    "cell_type": "code",
                    "execution_count": None,
                    "id": f"cell-{i}",
                    "metadata": {},
                    "outputs": [],
                    "source": source,
                }
                for i, source in enumerate(cells)
            ],
            "metadata": {
                "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                "language_info": {"name": "python"},
            },
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(nb, indent=1), encoding="utf-8")
        return path

    def copy_notebook(self, source: Path, name: str | None = None) -> Path:
        """Copy an existing notebook (``notebooks/01-...``) into the server's directory."""
        target = self.root / (name or source.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return target

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def _server_env(tmp: Path, extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_PRIVATE_PREFIXES)}
    dirs = {
        "JUPYTER_CONFIG_DIR": "config",
        "JUPYTER_DATA_DIR": "data",
        "JUPYTER_RUNTIME_DIR": "runtime",
        "IPYTHONDIR": "ipython",
        "JUPYTERLAB_SETTINGS_DIR": "lab-settings",
        "JUPYTERLAB_WORKSPACES_DIR": "lab-workspaces",
    }
    for var, sub in dirs.items():
        (tmp / sub).mkdir(parents=True, exist_ok=True)
        env[var] = str(tmp / sub)
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    for name, settings in _QUIET_LAB.items():
        target = tmp / "lab-settings" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(settings), encoding="utf-8")
    env.update(extra or {})
    return env


@contextmanager
def lab_server(
    tmp: Path, *, env: Mapping[str, str] | None = None, timeout: float = 90.0
) -> Iterator[LabServer]:
    """Start JupyterLab in ``tmp`` (notebooks in ``tmp/notebooks``); stop it and its kernels after.

    ``env`` is added to the server's environment, which its kernels inherit (the emulator's
    ``DASHSCOPE_BASE_URL`` and key, for instance).
    """
    tmp.mkdir(parents=True, exist_ok=True)
    root = tmp / "notebooks"
    root.mkdir(exist_ok=True)
    token = secrets.token_hex(16)
    log = tmp / "jupyterlab.log"
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.port=0",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.extension_manager=readonly",  # no PyPI queries
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers and CI runners often run as root
    runtime = tmp / "runtime"
    with open(log, "wb") as out:
        # cwd is tmp, never tests/: `-m jupyterlab` must not find this helper module
        process = subprocess.Popen(
            cmd, cwd=tmp, env=_server_env(tmp, env), stdout=out, stderr=subprocess.STDOUT
        )
    server: LabServer | None = None
    try:
        server = _wait_ready(process, runtime, root, token, log, timeout)
        yield server
    finally:
        _stop(process)


def _wait_ready(
    process: subprocess.Popen[bytes], runtime: Path, root: Path, token: str, log: Path, timeout: float
) -> LabServer:
    """The server's runtime file names its port; the server is ready when its API answers."""
    info_file = runtime / f"jpserver-{process.pid}.json"
    ready: list[LabServer] = []

    def answers() -> bool:
        if process.poll() is not None:
            pytest.fail(
                f"JupyterLab exited with code {process.returncode}:\n"
                f"{log.read_text(errors='replace')[-3000:]}",
                pytrace=False,
            )
        try:
            info = json.loads(info_file.read_text())
        except (OSError, ValueError):  # not written yet, or being written
            return False
        if not info:
            return False
        url = f"http://127.0.0.1:{info['port']}/"
        try:
            with urllib.request.urlopen(f"{url}api/status?token={token}", timeout=5) as r:
                if r.status == 200:
                    ready.append(LabServer(url, token, root, process, log))
        except OSError:
            pass
        return bool(ready)

    try:
        wait_until(answers, timeout, what="JupyterLab to answer", every=0.2)
    except AssertionError:
        pytest.fail(
            f"JupyterLab did not start in {timeout:.0f}s:\n{log.read_text(errors='replace')[-3000:]}",
            pytrace=False,
        )
    return ready[0]


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM lets the server shut its kernels down; SIGKILL only if it hangs."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@contextmanager
def chromium(executable: str = CHROMIUM) -> Iterator[Any]:
    """Debian's Chromium, headless, through Playwright. Fails (never skips) when it is missing."""
    if not (os.path.isfile(executable) and os.access(executable, os.X_OK)):
        pytest.fail(
            f"Chromium is missing ({executable}); the browser tests need Debian's package: "
            "`sudo apt-get install -y chromium` (`make test` installs it). Playwright's own "
            "browser download is not used.",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


_KERNEL_STATUS = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return k ? k.status : null;
}"""


_OUTPUTS = """(kind) => {
  const out = [];
  for (const cell of window.jupyterapp.shell.currentWidget.content.widgets) {
    if (cell.model.type !== 'code') continue;
    const outputs = cell.model.outputs;
    for (let i = 0; i < outputs.length; i++) {
      const o = outputs.get(i).toJSON();
      if (kind === 'error' && o.output_type === 'error') out.push(o.ename + ': ' + o.evalue);
      if (kind === 'stderr' && o.output_type === 'stream' && o.name === 'stderr') {
        out.push(Array.isArray(o.text) ? o.text.join('') : o.text);
      }
    }
  }
  return out;
}"""


class Notebook:
    """One notebook open in JupyterLab in a Playwright page."""

    def __init__(self, page: Any, server: LabServer) -> None:
        self.page = page
        self.server = server

    def open(self, path: str, *, timeout: float = 90.0) -> Notebook:
        """Open the notebook and wait until its kernel is idle."""
        self.page.goto(self.server.lab_url(path))
        self.page.wait_for_function(
            "(p) => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
            " return !!(w && w.context && w.context.path === p); }",
            arg=path,
            timeout=timeout * 1000,
        )
        self.wait_idle(timeout)
        return self

    def kernel_status(self) -> str | None:
        return self.page.evaluate(_KERNEL_STATUS)

    def wait_idle(self, timeout: float = 60.0) -> None:
        self.page.wait_for_function(f"() => ({_KERNEL_STATUS})() === 'idle'", timeout=timeout * 1000)

    def run_all(self, *, timeout: float = 120.0) -> None:
        """Run every cell with Lab's own command and wait until it reports the run finished."""
        self.page.evaluate(
            "() => { window.__runAll = null; window.jupyterapp.commands"
            ".execute('notebook:run-all-cells')"
            ".then(ok => { window.__runAll = {ok: ok}; }, e => { window.__runAll = {error: String(e)}; }); }"
        )
        self.page.wait_for_function("() => window.__runAll !== null", timeout=timeout * 1000)
        outcome = self.page.evaluate("() => window.__runAll")
        assert "error" not in outcome, f"Run All failed in the page: {outcome['error']}"
        self.wait_idle(timeout)

    def errors(self) -> list[str]:
        """Every error output of the notebook as ``"ename: evalue"`` (empty when all cells ran)."""
        return self.page.evaluate(_OUTPUTS, "error")

    def stderr(self) -> list[str]:
        """The text every cell wrote to stderr (warnings, notices)."""
        return self.page.evaluate(_OUTPUTS, "stderr")

    def screenshot(self, name: str) -> Path:
        """Save the page as ``test-artifacts/<name>.png`` and return the path."""
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path
