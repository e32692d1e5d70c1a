"""Plain Python scripts, run as a user runs them: a fresh interpreter, no DASHSCOPE_* or QWEN_* variables.

QWEN_OFFLINE=1 or ``qwen_magics.offline()`` makes ``ask`` / ``aask`` / ``compare`` / ``apply``
answer from the offline simulator; with neither and no key, the error names both.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import qwen_magics
from qwen_magics.emulator import Emulator

from .conftest import TEST_KEY

README = Path(__file__).parent.parent / "README.md"


def clean_environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHSCOPE_", "QWEN_"))}
    env.update(extra)
    return env


def run_script(tmp_path: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code), encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_environment(**env),
        cwd=tmp_path,
    )


def test_the_readme_plain_python_example_runs_with_qwen_offline(tmp_path: Path) -> None:
    section = README.read_text(encoding="utf-8").split("### From plain Python", 1)[1]
    example = re.search(r"```python\n(.*?)```", section, re.S)
    assert example is not None
    out = run_script(tmp_path, example.group(1), QWEN_OFFLINE="1")
    assert out.returncode == 0, out.stderr
    assert "Usage(prompt_tokens=" in out.stdout
    assert "text " in out.stdout and "finish" in out.stdout and "usage" in out.stdout
    assert out.stderr.count("offline simulator (QWEN_OFFLINE=1)") == 1  # said once, on stderr


def test_qwen_offline_serves_ask_aask_compare_and_apply_in_a_script(tmp_path: Path) -> None:
    out = run_script(
        tmp_path,
        """
        import asyncio
        import pandas as pd
        import qwen_magics as qm

        r = qm.ask("Tell me about the sea.", thinking=False, max_tokens=20)
        print("ask", r.offline, bool(r.text), r.cost)
        async def main():
            r = await qm.aask("Tell me about the moon.", thinking=False, max_tokens=20)
            await r.acomplete()
            return r

        r = asyncio.run(main())
        print("aask", r.offline, bool(r.text))
        c = qm.compare("Name a colour.", temperature=[0.2, 1.0], thinking=False, max_tokens=10)
        print("compare", [cell.response.offline and cell.response.error is None for cell in c])
        animals = pd.DataFrame({"animal": ["cat", "owl"]})
        df = qm.apply(animals, "Describe {animal}.", schema="habitat, legs int")
        print("apply", list(df.columns), df["_error"].isna().all())
        """,
        QWEN_OFFLINE="1",
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "ask True True None" in lines  # offline: no cost estimate
    assert "aask True True" in lines
    assert "compare [True, True]" in lines
    assert any(line.startswith("apply ") and "'legs'" in line and line.endswith("True") for line in lines)
    assert out.stderr.count("offline simulator") == 1


def test_offline_turns_the_simulator_on_from_code(tmp_path: Path) -> None:
    out = run_script(
        tmp_path,
        """
        import qwen_magics as qm

        emulator = qm.offline()
        assert qm.offline() is emulator  # once per process
        r = qm.ask("Tell me about the sea.", thinking=False, max_tokens=15)
        print(r.offline, bool(r.text), len(emulator.chat_requests))
        """,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "1"]
    assert out.stderr == ""  # the script asked for it: no notice


def test_qwen_offline_wins_over_a_key_in_the_environment(tmp_path: Path) -> None:
    out = run_script(
        tmp_path,
        """
        import qwen_magics as qm

        r = qm.ask("hi", thinking=False, max_tokens=5)
        print(r.offline, r.base_url.startswith("http://127.0.0.1"))
        """,
        QWEN_OFFLINE="1",
        DASHSCOPE_API_KEY=TEST_KEY,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True"]
    assert TEST_KEY not in out.stdout + out.stderr


def test_an_explicit_base_url_wins_over_qwen_offline(tmp_path: Path, emulator: Emulator) -> None:
    out = run_script(
        tmp_path,
        f"""
        import qwen_magics as qm

        r = qm.ask("hi", base_url={emulator.base_url!r}, api_key={TEST_KEY!r}, max_tokens=5)
        print(r.offline, r.text)
        """,
        QWEN_OFFLINE="1",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("False You asked: hi")
    assert len(emulator.chat_requests) == 1
    assert "offline simulator" not in out.stderr  # never started


def test_a_script_without_a_key_is_told_how_to_go_offline(tmp_path: Path) -> None:
    out = run_script(
        tmp_path,
        """
        import qwen_magics as qm

        try:
            qm.ask("hi")
        except qm.ConfigError as exc:
            print(exc)
        """,
    )
    assert out.returncode == 0, out.stderr
    assert "no API key" in out.stdout
    assert "QWEN_OFFLINE=1" in out.stdout and "qwen_magics.offline()" in out.stdout


def test_offline_is_public_lazy_and_stays_a_function() -> None:
    assert "offline" in qwen_magics.__all__
    code = """
        import sys, qwen_magics
        print("qwen_magics.simulator" in sys.modules, "qwen_magics.emulator" in sys.modules)
        import qwen_magics.simulator  # importing the module does not hide the function
        print(callable(qwen_magics.offline), qwen_magics.offline.__module__)
    """
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=True,
        env=clean_environment(),
    )
    assert out.stdout.split() == ["False", "False", "True", "qwen_magics.simulator"]
