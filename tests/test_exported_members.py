"""The public names: complete, sorted, and importable without heavy dependencies."""

from __future__ import annotations

import subprocess
import sys

import qwen_magics


def test_all_is_sorted_and_complete() -> None:
    assert qwen_magics.__all__ == sorted(qwen_magics.__all__)
    for name in qwen_magics.__all__:
        assert getattr(qwen_magics, name) is not None, name


def test_import_loads_nothing_heavy() -> None:
    code = (
        "import sys, qwen_magics; "
        "heavy = [m for m in ('pandas', 'ipywidgets', 'numpy', 'pydantic', 'json_repair', 'openai') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
