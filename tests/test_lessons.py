"""The teaching notebooks as students see them: no test machinery in their cells, the sections show
what their prose says, and `make notebooks` saves footers at the pace of a real model."""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from qwen_magics.api.record import answers
from qwen_magics.comparison.compare import compare
from qwen_magics.emulator.answers import split_tokens

from .conftest import ENV_VARS

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
LESSONS = sorted(NOTEBOOKS.glob("0*.ipynb"))
GRID = "<div class='qwen-compare'>"  # how a comparison grid's output opens


def cells(path: Path) -> list[dict[str, Any]]:
    """A lesson's cells, read as JSON (nbformat's import is two seconds)."""
    cells: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["cells"]
    for cell in cells:
        if isinstance(cell["source"], list):
            cell["source"] = "".join(cell["source"])
    return cells


def section(path: Path, heading: str) -> list[dict[str, Any]]:
    """The cells from a Markdown heading to the next heading of the same level or above."""
    all_cells = cells(path)
    start = next(i for i, c in enumerate(all_cells) if c["source"].startswith(heading))
    level = len(heading) - len(heading.lstrip("#"))
    out = [all_cells[start]]
    for cell in all_cells[start + 1 :]:
        head = re.match(r"(#+) ", cell["source"]) if cell["cell_type"] == "markdown" else None
        if head and len(head.group(1)) <= level:
            break
        out.append(cell)
    return out


def test_lessons_show_students_no_test_markers() -> None:
    assert len(LESSONS) >= 7
    for path in LESSONS:
        for cell in cells(path):
            assert "NBVAL" not in cell["source"], f"{path.name}: a test marker in a cell: {cell['source']!r}"
    # what nbval must not compare is said in the cell's tags, where students do not see it
    lesson = cells(NOTEBOOKS / "02_parameters.ipynb")
    panel = next(c for c in lesson if c["cell_type"] == "code" and "qm.panel(" in c["source"])
    assert panel["metadata"]["tags"] == ["nbval-ignore-output"]
    assert panel["outputs"], "the tag was added without executing the cell again: its output is kept"


def test_lesson_03_many_samples_section_shows_samples_and_a_failure() -> None:
    found = section(NOTEBOOKS / "03_comparison.ipynb", "## Many samples, and failures")
    prose = " ".join(c["source"] for c in found if c["cell_type"] == "markdown")
    code = [c["source"] for c in found if c["cell_type"] == "code"]
    assert "samples=3" in prose and any("samples=3" in c for c in code)
    assert "a model the server\ndoes not have" in prose and any("qwen9-imaginary" in c for c in code)
    saved = " ".join(str(o) for c in found if c["cell_type"] == "code" for o in c["outputs"])
    assert "1 failed" in saved and "qwen9-imaginary" in saved  # shown in its cell, the other answered


def test_lesson_07_replays_a_comparison_with_the_server_stopped_and_itself_from_its_file() -> None:
    path = NOTEBOOKS / "07_history_and_replay.ipynb"
    found = section(path, "## Record a comparison, replay it with the server gone")
    code = [c for c in found if c["cell_type"] == "code"]
    sources = [c["source"] for c in code]
    assert "%qwen replay on" in sources and "%qwen replay only" in sources
    assert any("server.stop()" in s for s in sources)
    printed = "".join("".join(o.get("text", "")) for c in code for o in c["outputs"])
    assert "requests the server received: 4" in printed and "same answers: True" in printed
    assert printed.count("requests the server received: 4") == 2 and "replayed: True" in printed
    assert "replay only: no recorded answer to 'A question nobody asked before.'" in printed
    # the notebook is its own cassette: its last answer replays from its saved copy, and says so
    last = [c for c in cells(path) if c["cell_type"] == "code"][-2]
    shown = last["outputs"][-1]
    assert "replayed, recorded" in "".join(shown["data"]["text/markdown"])
    [answer] = answers(shown)
    assert answer["text"] in "".join(shown["data"]["text/plain"]) and answer["fingerprint"]


def make_notebooks_rate() -> float:
    """The token rate `make notebooks` gives the offline simulator, from what make would run."""
    dry = subprocess.run(
        ["make", "-n", "-s", "notebooks", f"VENV={sys.prefix}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = re.findall(r"QWEN_OFFLINE_TOKENS_PER_SECOND=(\S+)", dry)
    assert len(found) == 1, dry
    return float(found[0])


def test_make_notebooks_paces_answers_like_a_real_qwen_plus() -> None:
    rate = make_notebooks_rate()
    assert 40 <= rate <= 100, f"{rate} tok/s: qwen-plus streams about 50-80 tokens a second"
    # the time the lessons' saved answers take to stream at that rate: `make notebooks` stays short.
    # A comparison grid's answers stream side by side, compare's default concurrency at a time
    side_by_side = inspect.signature(compare).parameters["concurrency"].default
    tokens = sum(
        len(split_tokens("".join(o["data"]["text/plain"])))
        / (side_by_side if "".join(o["data"].get("text/html", "")).startswith(GRID) else 1)
        for path in LESSONS
        for c in cells(path)
        for o in c.get("outputs", ())
        if "text/plain" in o.get("data", {})
    )
    print(f"{tokens:.0f} tokens, {tokens / rate:.0f}s at {rate} tok/s")
    assert tokens / rate < 180, f"{tokens:.0f} tokens at {rate} tok/s: `make notebooks` would take minutes"


@pytest.mark.kernel
def test_make_notebooks_saves_footers_at_a_believable_speed() -> None:
    import nbformat  # here, not at the top: collecting the in-process tests stays free of its 2 s import
    from nbclient import NotebookClient

    rate = make_notebooks_rate()
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env.update(QWEN_OFFLINE="1", QWEN_OFFLINE_TOKENS_PER_SECOND=str(rate))
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext qwen_magics"),
        nbformat.v4.new_code_cell("%%qwen --no-thinking --max-tokens 60\nDescribe the sea."),
    ]
    NotebookClient(nb, timeout=60, kernel_name="python3").execute(env=env)
    footer = nb.cells[1].outputs[-1].data["text/markdown"].rsplit("<sub>", 1)[1]
    speed = float(re.search(r"([\d,]+) tok/s", footer).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert 0.6 * rate <= speed <= 1.2 * rate, footer


def test_lesson_08_measures_temperatures_with_checks_a_summary_and_a_plot() -> None:
    code = [c for c in cells(NOTEBOOKS / "08_evaluate.ipynb") if c["cell_type"] == "code"]
    sources = " ".join(c["source"] for c in code)
    for call in ("cases=cases", "checks=checks", "c.summary()", "c.failures()", 'c.plot(x="temperature")'):
        assert call in sources, call
    outputs = [o for c in code for o in c["outputs"]]
    shown = [o.get("data") or {} for o in outputs]
    plain = " ".join("".join(d.get("text/plain", "")) for d in shown)
    assert "pass_rate" in plain and "does not contain" in plain and "temperature=1.5" in plain
    assert any("image/png" in d for d in shown)  # the plot is saved as a picture
    # the grids' "Highlight differences" toggles left with their cells: no widget in the saved file
    assert not any("application/vnd.jupyter.widget-view+json" in d for d in shown)
