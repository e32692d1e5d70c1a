"""``%qwen login`` in terminal IPython and ``qwen_magics.login()`` in a script, each a real process in
a pseudo-terminal: the key is typed at getpass's prompt, never echoed, and the next request carries
it. The transcript is everything the terminal showed; IPython's history database is searched too."""

from __future__ import annotations

import os
import re
import sqlite3
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest

from qwen_magics import config
from qwen_magics.emulator import Emulator

KEY = "sk-terminal-login-key-0123456789-QRST"
PROMPT = "DashScope API key (typing is not shown): "
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def clean_environment(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHSCOPE_", "QWEN_", "IPYTHON"))}
    env.update(IPYTHONDIR=str(tmp / "ipython"), TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1", **extra)
    return env


class Terminal:
    """A process in a pty; ``transcript`` is what its terminal showed, escape codes taken out."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.child = pexpect.spawn(
            sys.executable, args, env=env, cwd=str(cwd), encoding="utf-8", timeout=30, dimensions=(40, 220)
        )
        self.shown: list[str] = []
        self.child.logfile_read = self

    def write(self, text: str) -> None:  # pexpect's log of what was read
        self.shown.append(text)

    def flush(self) -> None:
        pass

    @property
    def transcript(self) -> str:
        return _ESCAPES.sub("", "".join(self.shown))

    def expect(self, pattern: str) -> None:
        self.child.expect(pattern)

    def type(self, text: str) -> None:
        self.child.sendline(text)

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)


@pytest.fixture
def emulator_wanting_key() -> Iterator[Emulator]:
    with Emulator(generator="simple", api_key=KEY) as emu:
        yield emu


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    opened: list[Terminal] = []
    yield opened
    for t in opened:
        t.close()


def ipython(tmp: Path, terminals: list[Terminal], **env: str) -> Terminal:
    t = Terminal(["-m", "IPython", "--no-banner", "--colors=NoColor"], clean_environment(tmp, **env), tmp)
    terminals.append(t)
    t.expect(r"In \[1\]:")
    return t


def test_qwen_login_in_terminal_ipython_hides_the_key_and_the_next_cell_uses_it(
    tmp_path: Path, emulator_wanting_key: Emulator, terminals: list[Terminal]
) -> None:
    emu = emulator_wanting_key
    t = ipython(tmp_path, terminals, DASHSCOPE_BASE_URL=emu.base_url)
    t.type("%load_ext qwen_magics")
    t.expect(r"In \[2\]:")
    t.type("%qwen --no-thinking Say hi before the key")
    t.expect(r"In \[3\]:")
    assert "401" in t.transcript  # no key yet
    t.type("%qwen login")
    t.expect(re.escape(PROMPT))
    t.type(KEY)  # the server's URL is the user's own: no region to ask
    t.expect(r"In \[4\]:")
    assert f"qwen-magics: key sk-…QRST set for {emu.base_url}, in memory only" in t.transcript
    t.type("%qwen --no-thinking Say hi after the key")
    t.expect(r"In \[5\]:")
    t.type("%qwen config")
    t.expect(r"In \[6\]:")
    t.type("exit")
    t.child.expect(pexpect.EOF)

    shown = t.transcript
    assert "You asked: Say hi after the key. This is the emulator's answer." in shown
    assert "sk-…QRST (from %qwen login)" in shown
    assert [r.auth for r in emu.chat_requests] == ["missing", "ok"]
    assert KEY not in shown and KEY[3:-4] not in shown  # never echoed, never printed
    history = _history(tmp_path)
    assert "%qwen login" in history and KEY not in history


def test_qwen_login_while_offline_asks_the_region_and_leaves_the_simulator(
    tmp_path: Path, terminals: list[Terminal]
) -> None:
    t = ipython(tmp_path, terminals)
    t.type("%load_ext qwen_magics")
    t.expect("offline simulator")
    t.expect(r"In \[2\]:")
    t.type("%qwen login")
    t.expect(re.escape(PROMPT))
    t.type(KEY)
    t.expect(re.escape("Region [singapore] (singapore, virginia, beijing, hongkong): "))
    t.type("mars")
    t.expect("'mars' is not a region")
    t.type("Hong Kong")
    t.expect(r"In \[3\]:")
    t.type("import qwen_magics as qm; print(qm.settings().base_url)")
    t.expect(r"In \[4\]:")
    shown = t.transcript
    assert "key sk-…QRST set, in memory only" in shown
    assert shown.count("answers now come from Qwen Cloud (Hongkong), not the offline simulator.") == 1
    assert config.REGIONS["hongkong"] in shown
    assert KEY not in shown


def test_a_blank_key_or_ctrl_c_changes_nothing(tmp_path: Path, terminals: list[Terminal]) -> None:
    t = ipython(tmp_path, terminals)
    t.type("import qwen_magics as qm; qm.configure(region='beijing')")
    t.expect(r"In \[2\]:")
    t.type("qm.login()")
    t.expect(re.escape(PROMPT))
    t.type("")
    t.expect("no key entered; nothing changed")
    t.expect(r"In \[3\]:")
    t.type("qm.login()")
    t.expect(re.escape(PROMPT))
    t.child.sendintr()
    t.expect("login cancelled; nothing changed")
    t.expect(r"In \[4\]:")
    t.type("print(qm.settings().api_key, qm.settings().region)")
    t.expect(r"None beijing")


def test_login_in_a_plain_script_with_a_region_argument(
    tmp_path: Path, emulator_wanting_key: Emulator, terminals: list[Terminal]
) -> None:
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            """
            import qwen_magics as qm

            qm.login(region="virginia")
            print("region:", qm.settings().region)
            print(qm.ask("Say hi from a script", thinking=False).text)
            """
        ),
        encoding="utf-8",
    )
    emu = emulator_wanting_key
    t = Terminal([str(script)], clean_environment(tmp_path, DASHSCOPE_BASE_URL=emu.base_url), tmp_path)
    terminals.append(t)
    t.expect(re.escape(PROMPT))
    t.type(KEY)
    t.child.expect(pexpect.EOF)
    shown = t.transcript
    assert "Region [" not in shown  # the argument chose it
    assert "region: virginia" in shown
    assert "You asked: Say hi from a script. This" in shown
    assert KEY not in shown
    assert [r.auth for r in emu.chat_requests] == ["ok"]


def _history(tmp: Path) -> str:
    """Every input line IPython kept in its history database."""
    (db,) = (tmp / "ipython").rglob("history.sqlite")
    with sqlite3.connect(db) as conn:
        rows: list[Any] = conn.execute("SELECT source, source_raw FROM history").fetchall()
    return "\n".join(f"{a}\n{b}" for a, b in rows)
