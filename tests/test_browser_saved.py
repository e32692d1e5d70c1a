"""A saved notebook read cold: a panel, a comparison grid and an ``apply`` run, saved, reloaded.

What people share is the saved notebook. Reloaded in the same JupyterLab, it must show no "Error
displaying widget: model not found" (this JupyterLab, as ``make lab``'s, saves widget state),
and where widgets are not drawn (GitHub, nbconvert) it holds stand-ins a reader understands, never
a widget's repr (``VBox(children=(...``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qwen_magics.emulator import Emulator
from tests.jupyterlab import Notebook, chromium, lab_server

KEY = "sk-browser-fake-key-0123-SAVE"
CELLS = [
    "import pandas as pd\nimport qwen_magics\np = qwen_magics.panel('Name a colour', model='qwen-plus')",
    "c = qwen_magics.compare('Name a colour', temperature=[0.1, 0.9], thinking=False)",
    "out = qwen_magics.apply(pd.DataFrame({'name': ['Ada', 'Alan']}), 'Greet {name}', thinking=False)",
    "c",
]
REPRS = ("VBox(", "ToggleButton(", "HBox(", "IntProgress(", "FloatProgress(")


def _page_text(page) -> str:  # type: ignore[no-untyped-def]
    return page.evaluate("() => document.querySelector('.jp-Notebook').innerText")


@pytest.mark.browser
def test_a_saved_notebook_reloads_without_dead_widgets_or_reprs(tmp_path: Path) -> None:
    with (
        Emulator(generator="simple", api_key=KEY) as emu,
        lab_server(tmp_path, env={"DASHSCOPE_BASE_URL": emu.base_url, "DASHSCOPE_API_KEY": KEY}) as lab,
        chromium() as browser,
    ):
        path = lab.write_notebook("saved.ipynb", CELLS)
        page = browser.new_page(viewport={"width": 1200, "height": 1400})
        nb = Notebook(page, lab).open("saved.ipynb")
        nb.run_all()
        assert nb.errors() == []
        page.locator(".qwen-panel").wait_for(timeout=30_000)
        for n in (1, 2):  # each run refreshes the panel's stand-in; the panel stays usable
            page.locator(".qwen-panel button.qwen-run").click()
            page.locator(".qwen-panel .qwen-status", has_text=f"run {n}: done").wait_for(timeout=30_000)
        page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
        page.wait_for_function(
            "() => !window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=30_000
        )
        saved = path.read_text()
        assert "qwen apply: 2 rows in" in saved and KEY not in saved

        page.reload()  # the same notebook, reloaded: widgets drawn from their saved state
        page.wait_for_function(
            "() => document.querySelector('.jp-Notebook')"
            " && document.querySelector('.jp-Notebook').innerText.includes('qwen apply: 2 rows')",
            timeout=60_000,
        )
        page.locator(".qwen-panel").wait_for(timeout=30_000)
        page.wait_for_timeout(1500)  # every output has had its time to draw
        text = _page_text(page)
        assert "Error displaying widget" not in text and not any(r in text for r in REPRS)
        assert "2 settings × 1 sample · done" in text

        # where widgets are not drawn (GitHub, nbconvert without their script), the stand-ins show
        views = [
            {k: "".join(v) for k, v in o["data"].items() if k.startswith("text/")}  # lines, as saved
            for cell in json.loads(saved)["cells"]
            for o in cell.get("outputs", [])
            if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
        ]
        assert views and not any(v["text/plain"].startswith(REPRS) for v in views)
        (panel,) = [v for v in views if "text/html" in v]
        assert "Qwen parameter panel (interactive: run the cell to use it)" in panel["text/html"]
        assert "%%qwen -m qwen-plus" in panel["text/plain"] and "last run: 2, done" in panel["text/plain"]
        assert "qwen-runs-table" in panel["text/html"] and "You asked: Name a colour" in panel["text/html"]
