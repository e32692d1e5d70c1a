"""A notebook in JupyterLab replays its own saved answers: JupyterLab tells the kernel the
notebook's path, so ``%qwen replay on`` with no path reads the saved file, and nothing is sent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qwen_magics.api.record import answers
from qwen_magics.emulator import Emulator
from tests.jupyterlab import Notebook, chromium, lab_server

KEY = "sk-browser-fake-key-0123-PLAY"
CELLS = [
    "%load_ext qwen_magics",
    "%qwen replay on",
    "%%qwen --no-thinking -t 0.3 -o sea\nWhy is the sea salty?",
    "print(sea.replayed)",
]


def _saved(path: Path) -> dict:  # type: ignore[type-arg]
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.browser
def test_a_notebook_replays_its_own_saved_answers_with_the_server_gone(tmp_path: Path) -> None:
    with (
        Emulator(api_key=KEY) as emu,
        lab_server(
            tmp_path,
            env={"DASHSCOPE_BASE_URL": emu.base_url, "DASHSCOPE_API_KEY": KEY, "QWEN_HISTORY": "off"},
        ) as lab,
        chromium() as browser,
    ):
        path = lab.write_notebook("sea.ipynb", CELLS)
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        nb = Notebook(page, lab).open("sea.ipynb")
        nb.run_all()  # nothing recorded yet: asked of the server
        assert nb.errors() == [] and len(emu.chat_requests) == 1
        page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
        page.wait_for_function(
            "() => !window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=30_000
        )
        first = _saved(path)["cells"][2]["outputs"][-1]
        assert answers(first)[0]["text"] and KEY not in path.read_text()

        emu.stop()  # the server is gone: the answer can only come from the saved file
        nb.run_all()
        assert nb.errors() == []
        text = page.evaluate("() => document.querySelector('.jp-Notebook').innerText")
        assert "replayed, recorded" in text and "True" in text
        recorded = answers(first)[0]["text"]
        assert recorded.split()[0] in text and len(emu.chat_requests) == 1
        nb.screenshot("browser_replay")
