"""The comparison grid in a real JupyterLab: its cards line up, however many settings and however wide.

Rows are outputs of their own (a finished row is frozen), so the columns are set by the grid, not by
the browser's wrapping: every card is as wide as the others, the odd last one too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from qwen_magics.emulator import Emulator
from tests.jupyterlab import Notebook, chromium, lab_server

KEY = "sk-browser-fake-key-0123-GRID"
WIDTHS = """() => [...document.querySelectorAll('.jp-OutputArea-output .qwen-cell')]
  .map(el => Math.round(el.getBoundingClientRect().width))"""


@pytest.mark.browser
@pytest.mark.parametrize("settings", [4, 10])
def test_every_card_of_the_grid_is_as_wide_as_the_others(tmp_path: Path, settings: int) -> None:
    temperatures = [round(0.1 + 0.15 * i, 2) for i in range(settings)]
    with (
        Emulator(generator="simple", api_key=KEY) as emu,
        lab_server(tmp_path, env={"DASHSCOPE_BASE_URL": emu.base_url, "DASHSCOPE_API_KEY": KEY}) as lab,
        chromium() as browser,
    ):
        lab.write_notebook(
            "grid.ipynb",
            [f"import qwen_magics\nc = qwen_magics.compare('Name a colour', temperature={temperatures})"],
        )
        for width in (1400, 900):  # four cards across; then fewer, wrapped
            page = browser.new_page(viewport={"width": width, "height": 1200})
            nb = Notebook(page, lab).open("grid.ipynb")
            nb.run_all()
            assert nb.errors() == []
            page.wait_for_function(f"() => ({WIDTHS})().length === {settings}", timeout=30_000)
            widths = page.evaluate(WIDTHS)
            assert max(widths) - min(widths) <= 1, f"at {width}px the cards are {widths} wide"
            page.close()
