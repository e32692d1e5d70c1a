"""The public names: complete, sorted, and importable without heavy dependencies."""

from __future__ import annotations

import subprocess
import sys
import types

import qwen_magics


def test_all_is_sorted_and_complete() -> None:
    assert qwen_magics.__all__ == sorted(qwen_magics.__all__, key=str.casefold)
    for name in qwen_magics.__all__:
        assert getattr(qwen_magics, name) is not None, name
    public = {
        name
        for name, value in vars(qwen_magics).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and getattr(value, "__module__", "").startswith("qwen_magics")
    }
    assert public <= set(qwen_magics.__all__)


def test_import_loads_nothing_heavy() -> None:
    code = (
        "import sys, qwen_magics; "
        "heavy = [m for m in ('pandas', 'ipywidgets', 'numpy', 'pydantic', 'json_repair', 'openai') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
