"""Prices and typed dollars in a real JupyterLab: shown as ``$``, never typeset as math.

A control cell proves MathJax runs in this page (``$x^2$`` becomes math, and so does the table the
package used to emit), so its absence from the package's outputs means something.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from qwen_magics.emulator import Emulator
from tests.jupyterlab import Notebook, chromium, lab_server
from tests.waiting import wait_until

KEY = "sk-browser-fake-key-0123-WXYZ"
CONTROL = (
    "from IPython.display import Markdown\n"
    "Markdown('Math: $x^2$\\n\\n| model | input | output |\\n|---|---|---|\\n| qwq-plus | $0.80 | $2.40 |')"
)
CELLS = [
    "%load_ext qwen_magics",
    "%qwen models",
    "%%qwen --no-thinking\nIs a $5 coffee worth it",  # one `$`: it paired with the footer's cost
    "%%qwen -c --no-thinking\nOr a $5 coffee and a $10 cake",  # echoed by the emulator: math in the answer
    "%qwen history",
    "%qwen config system = 'Budgets run from $5 to $10.'",
    "%qwen config",
    CONTROL,
]


def math(locator) -> int:  # type: ignore[no-untyped-def]
    return int(locator.locator("mjx-container").count())


@pytest.mark.browser
def test_prices_footers_and_typed_dollars_show_as_dollars_not_math(tmp_path: Path) -> None:
    with (
        Emulator(generator="simple", api_key=KEY) as emu,
        lab_server(tmp_path, env={"DASHSCOPE_BASE_URL": emu.base_url, "DASHSCOPE_API_KEY": KEY}) as lab,
        chromium() as browser,
    ):
        lab.write_notebook("dollars.ipynb", CELLS)
        page = browser.new_page(viewport={"width": 1200, "height": 2000})
        nb = Notebook(page, lab).open("dollars.ipynb")
        nb.run_all(timeout=120)
        assert nb.errors() == []
        cells = page.locator(".jp-Notebook .jp-CodeCell")
        # MathJax typesets the control: the formula, and the old table's `$0.80 | $` paired up
        wait_until(lambda: math(cells.nth(len(CELLS) - 1)) >= 2, timeout=60, what="MathJax in the control")

        models, first, second, history, settings = (cells.nth(i) for i in (1, 2, 3, 4, 6))
        assert math(models) == 0
        assert "$0.80" in models.locator("tr", has_text="qwq-plus").inner_text()
        assert math(first) == 0 and "a $5 coffee" in first.inner_text()
        assert "≈$0.0" in first.locator("sub").last.inner_text()
        assert math(second) >= 1  # the answer is Markdown as the model wrote it: `$5 ... $` is math
        assert math(second.locator("sub")) == 0
        you = history.locator("blockquote", has_text="you:")
        assert you.count() == 2 and math(you) == 0
        assert "Or a $5 coffee and a $10 cake" in you.last.inner_text()
        assert math(settings) == 0 and "Budgets run from $5 to $10." in settings.inner_text()
        nb.screenshot("browser_dollars")
