"""A ``.env`` file in the working directory or a folder above it: its DASHSCOPE_* and QWEN_* variables
are read once (python-dotenv), under the environment's own, and never written to ``os.environ``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from qwen_magics import config
from qwen_magics.emulator import Emulator

KEY = "sk-dotenv-test-key-0123456789-EFGH"
SCRIPT = """
import os
import qwen_magics as qm
from qwen_magics import config

s = qm.settings()
print("region:", s.region)
print("key:", config.mask_key(s.api_key), "from", config.key_source())
print("in os.environ:", "DASHSCOPE_API_KEY" in os.environ, "OTHER_SECRET" in os.environ)
print(qm.ask("Say hi", thinking=False).text)
"""


def clean_environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHSCOPE_", "QWEN_", "IPYTHON"))}
    env.update(extra)
    return env


def run(cwd: Path, args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=clean_environment(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder with a .env at its top and the working directory two folders down."""
    (tmp_path / "notebooks" / "week1").mkdir(parents=True)
    return tmp_path


def write_env(folder: Path, **values: str) -> Path:
    path = folder / ".env"
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
    return path


def test_a_dotenv_above_the_working_directory_gives_a_script_its_key_and_region(project: Path) -> None:
    with Emulator(generator="simple", api_key=KEY) as emu:
        dotenv = write_env(
            project,
            DASHSCOPE_API_KEY=KEY,
            QWEN_REGION="virginia",
            DASHSCOPE_BASE_URL=emu.base_url,
            OTHER_SECRET="not-ours",
        )
        out = run(project / "notebooks" / "week1", ["-c", SCRIPT])
    assert out.returncode == 0, out.stderr
    assert "region: virginia" in out.stdout
    assert f"key: sk-…EFGH from DASHSCOPE_API_KEY in {dotenv}" in out.stdout
    assert "in os.environ: False False" in out.stdout  # read for qwen-magics, not put in the process
    assert "You asked: Say hi. This is the emulator's answer." in out.stdout
    assert [r.auth for r in emu.chat_requests] == ["ok"]
    assert KEY not in out.stdout + out.stderr


def test_variables_already_in_the_environment_win_over_the_dotenv(project: Path) -> None:
    with Emulator(generator="simple", api_key=KEY) as emu:
        write_env(project, DASHSCOPE_API_KEY="sk-stale-key-in-the-file-0000", QWEN_REGION="virginia")
        out = run(
            project / "notebooks",
            ["-c", SCRIPT],
            DASHSCOPE_API_KEY=KEY,
            QWEN_REGION="beijing",
            DASHSCOPE_BASE_URL=emu.base_url,
        )
    assert out.returncode == 0, out.stderr
    assert "region: beijing" in out.stdout
    assert "key: sk-…EFGH from DASHSCOPE_API_KEY" in out.stdout
    assert [r.auth for r in emu.chat_requests] == ["ok"]


def test_load_ext_reads_the_dotenv_before_it_chooses_offline_mode(project: Path) -> None:
    dotenv = write_env(project, DASHSCOPE_API_KEY=KEY, QWEN_REGION="hongkong")
    cells = "%load_ext qwen_magics\n%qwen config\n"
    out = run(project / "notebooks", ["-m", "IPython", "--no-banner", "-c", cells])
    assert out.returncode == 0, out.stderr
    assert "offline simulator" not in out.stdout  # a key was found: Qwen Cloud, no simulator
    assert f"sk-…EFGH (from DASHSCOPE_API_KEY in {dotenv})" in out.stdout
    assert f"{dotenv} (DASHSCOPE_API_KEY, QWEN_REGION;" in out.stdout
    assert config.REGIONS["hongkong"] in out.stdout
    assert KEY not in out.stdout + out.stderr


def test_qwen_offline_in_a_dotenv_forces_the_simulator(project: Path) -> None:
    write_env(project, DASHSCOPE_API_KEY=KEY, QWEN_OFFLINE="1", QWEN_OFFLINE_TOKENS_PER_SECOND="0")
    code = "import qwen_magics as qm\nr = qm.ask('hi', thinking=False, max_tokens=5)\nprint(r.offline)"
    out = run(project, ["-c", code])
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True"]
    assert "offline simulator (QWEN_OFFLINE=1)" in out.stderr


def test_the_nearest_dotenv_file_wins_and_a_folder_named_dotenv_is_passed_over(
    project: Path, monkeypatch: pytest.MonkeyPatch, clean_env: None
) -> None:
    top = write_env(project, QWEN_REGION="beijing")
    (project / "notebooks" / ".env").mkdir()  # a virtual environment called .env
    monkeypatch.chdir(project / "notebooks" / "week1")
    monkeypatch.setattr(config, "_dotenv", None)  # not read yet in this "process"
    assert config.dotenv_file().path == top
    assert config.settings().region == "beijing"
    write_env(project / "notebooks" / "week1", QWEN_REGION="virginia")
    assert config.settings().region == "beijing"  # read once
    monkeypatch.setattr(config, "_dotenv", None)
    assert config.settings().region == "virginia"  # the nearest


def test_no_dotenv_leaves_python_dotenv_unimported(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        import qwen_magics as qm
        qm.settings()
        print("dotenv" in sys.modules)
        """
    )
    out = run(tmp_path, ["-c", code])
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False"]  # %load_ext pays for python-dotenv only with a .env
