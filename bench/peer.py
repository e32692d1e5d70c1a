"""The peer the magics benchmarks compare with: jupyter-ai-magics 2.31.7, in its own virtual environment.

``make_peer()`` creates a throwaway venv (or reuses ``--peer-venv DIR``) and installs
``jupyter-ai-magics==2.31.7`` with ``langchain-openai<0.4`` (its OpenAI-compatible provider) and
ipykernel. When that fails the benchmarks still print our figures and say why the peer is missing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PEER = "jupyter-ai-magics==2.31.7"
PEER_DEPS = ["langchain-openai<0.4", "ipykernel"]
INSTALL_TIMEOUT = 900


class Peer:
    """Where the peer lives; ``python`` is None when it could not be installed (``why`` says why)."""

    def __init__(self, keep: Path | None) -> None:
        self.keep = keep
        self.root = keep or Path(tempfile.mkdtemp(prefix="qwen-bench-peer-"))
        self.python: Path | None = None
        self.why = ""

    def __enter__(self) -> Peer:
        self.python, self.why = _install(self.root)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.keep is None:
            shutil.rmtree(self.root, ignore_errors=True)


def _install(root: Path) -> tuple[Path | None, str]:
    python = root / "bin" / "python"
    if python.exists() and _has_peer(python):
        return python, ""
    print(f"installing {PEER} into {root} (a minute or two)...", file=sys.stderr, flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, capture_output=True, text=True)
        out = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", PEER, *PEER_DEPS],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
        )
    except subprocess.CalledProcessError as exc:
        return None, f"could not create a virtual environment: {(exc.stderr or exc.stdout).strip()[-300:]}"
    except subprocess.TimeoutExpired:
        return None, f"pip install {PEER} took more than {INSTALL_TIMEOUT} s"
    if out.returncode != 0:
        lines = [
            line for line in (out.stderr or out.stdout).splitlines() if "ERROR" in line or "error" in line
        ]
        return None, f"pip install {PEER} failed: {' / '.join(lines[-3:]) or out.returncode}"
    if not _has_peer(python):
        return None, f"{PEER} installed but `import jupyter_ai_magics` fails"
    return python, ""


def _has_peer(python: Path) -> bool:
    probe = subprocess.run([str(python), "-c", "import jupyter_ai_magics, ipykernel"], capture_output=True)
    return probe.returncode == 0
