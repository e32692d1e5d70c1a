"""Where batch jobs are kept between kernels: one folder per job, with its state in ``job.json``.

The root is ``$QWEN_BATCHES`` or ``~/.qwen-magics/batches``. A job's folder is named by its id (the
first part's batch id) and holds the input files, the downloaded output and error files, and what
its kind needs to finish (a DataFrame's index, a grid's layout). Folders are private (0700), as
prompts are; the API key is never written here.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["STATE", "find", "job_dir", "load", "new_workdir", "recent", "root", "save"]

DEFAULT_ROOT = Path("~/.qwen-magics/batches")
STATE = "job.json"


def root() -> Path:
    """The store's folder (made on first use)."""
    chosen = os.environ.get("QWEN_BATCHES", "").strip()
    path = Path(chosen).expanduser() if chosen else DEFAULT_ROOT.expanduser()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def job_dir(job_id: str) -> Path:
    return root() / job_id


def new_workdir() -> Path:
    """A private folder in the store to build a job's files in before it has an id; ``submit``
    renames it to the job's folder (same file system, so nothing is copied)."""
    path = root() / f".new-{uuid.uuid4().hex[:12]}"
    path.mkdir(mode=0o700)
    return path


def save(folder: Path, state: dict[str, Any]) -> None:
    """Write the state atomically: a kernel killed mid-write leaves the previous state."""
    partial = folder / (STATE + ".part")
    partial.write_text(json.dumps(state, indent=1, ensure_ascii=False))
    os.replace(partial, folder / STATE)


def load(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / STATE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _jobs() -> Iterator[tuple[Path, dict[str, Any]]]:
    for folder in root().iterdir():
        if folder.is_dir() and not folder.name.startswith("."):
            state = load(folder)
            if state is not None:
                yield folder, state


def find(batch_id: str) -> Path | None:
    """The folder of the job that has ``batch_id`` as its id or as one of its parts' batch ids."""
    folder = job_dir(batch_id)
    if load(folder) is not None:
        return folder
    for folder, state in _jobs():
        if any(p.get("batch_id") == batch_id for p in state.get("parts", [])):
            return folder
    return None


def recent(limit: int = 20) -> list[dict[str, Any]]:
    """The newest jobs' states, newest first."""
    states = [state for _, state in _jobs()]
    states.sort(key=lambda s: s.get("created", 0), reverse=True)
    return states[:limit]
