"""The peers the magics benchmarks compare with: Jupyter AI's two magics packages, each in its own venv.

- ``jupyter-ai-magics`` 2.31.7, Jupyter AI 2's magics (LangChain providers; ``langchain-openai<0.4`` is
  its OpenAI-compatible one).
- ``jupyter-ai-magic-commands`` 0.0.4, Jupyter AI 3's successor built on LiteLLM. LiteLLM downloads a
  model price list from GitHub when imported unless ``LITELLM_LOCAL_MODEL_COST_MAP=True``; every
  process of this peer gets that, so no figure depends on the network (it is the peer's best case).

``with Peer(spec, keep) as peer:`` creates a throwaway venv and pip installs the spec with ipykernel,
or reuses (and keeps) ``keep/<spec.slug>`` when ``keep`` is given (``--peer-venvs DIR``). When the
install fails ``peer.python`` is None and ``peer.why`` says why, so the benchmarks still print our
figures and the reason the peer is missing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

INSTALL_TIMEOUT = 900


@dataclass(frozen=True)
class PeerSpec:
    name: str  # as a table names it
    short: str  # as a column header names it
    requirements: tuple[str, ...]
    extension: str  # what %load_ext takes; also the module that must import
    backend: str  # the distribution that talks to the server, whose version the tables print
    env: dict[str, str] = field(default_factory=dict)  # for every process that runs the peer

    @property
    def slug(self) -> str:
        return self.name.replace(" ", "-")


JUPYTER_AI_2 = PeerSpec(
    name="jupyter-ai-magics 2.31.7",
    short="jupyter-ai 2",
    requirements=("jupyter-ai-magics==2.31.7", "langchain-openai<0.4"),
    extension="jupyter_ai_magics",
    backend="langchain-openai",
)
JUPYTER_AI_3 = PeerSpec(
    name="jupyter-ai-magic-commands 0.0.4",
    short="jupyter-ai 3",
    requirements=("jupyter-ai-magic-commands==0.0.4",),
    extension="jupyter_ai_magic_commands",
    backend="litellm",
    env={"LITELLM_LOCAL_MODEL_COST_MAP": "True"},
)
PEERS = (JUPYTER_AI_2, JUPYTER_AI_3)


class Peer:
    """Where one peer lives; ``python`` is None when it could not be installed (``why`` says why)."""

    def __init__(self, spec: PeerSpec, keep: Path | None) -> None:
        self.spec = spec
        self.keep = keep
        self.root = keep / spec.slug if keep else Path(tempfile.mkdtemp(prefix=f"qwen-bench-{spec.slug}-"))
        self.python: Path | None = None
        self.why = ""

    def __enter__(self) -> Peer:
        self.python, self.why = _install(self.spec, self.root)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.keep is None:
            shutil.rmtree(self.root, ignore_errors=True)

    def backend_version(self) -> str:
        """``litellm 1.2.3``: the peer's own pin leaves its backend free, so the tables say which ran."""
        code = f"import importlib.metadata as m; print(m.version({self.spec.backend!r}))"
        out = subprocess.run([str(self.python), "-c", code], capture_output=True, text=True)
        return f"{self.spec.backend} {out.stdout.strip() or '?'}"


def _install(spec: PeerSpec, root: Path) -> tuple[Path | None, str]:
    python = root / "bin" / "python"
    if python.exists() and _has_peer(spec, python):
        return python, ""
    print(f"installing {spec.name} into {root} (a minute or two)...", file=sys.stderr, flush=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    try:
        subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, capture_output=True, text=True)
        out = subprocess.run(
            [*pip, *spec.requirements, "ipykernel"], capture_output=True, text=True, timeout=INSTALL_TIMEOUT
        )
    except subprocess.CalledProcessError as exc:
        return None, f"could not create a virtual environment: {(exc.stderr or exc.stdout).strip()[-300:]}"
    except subprocess.TimeoutExpired:
        return None, f"pip install {spec.requirements[0]} took more than {INSTALL_TIMEOUT} s"
    if out.returncode != 0:
        lines = [
            line[:200]
            for line in (out.stderr or out.stdout).splitlines()
            if "ERROR" in line or "error" in line
        ]
        return None, f"pip install {spec.requirements[0]} failed: {' / '.join(lines[-3:]) or out.returncode}"
    if not _has_peer(spec, python):
        return None, f"{spec.name} installed but `import {spec.extension}` fails"
    return python, ""


def _has_peer(spec: PeerSpec, python: Path) -> bool:
    probe = subprocess.run([str(python), "-c", f"import {spec.extension}, ipykernel"], capture_output=True)
    return probe.returncode == 0
