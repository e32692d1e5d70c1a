"""The quickstart notebook in a real JupyterLab with no key: offline mode, run top to bottom."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.jupyterlab import Notebook, chromium, lab_server

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


@pytest.mark.browser
def test_quickstart_runs_offline_and_shows_answer_thinking_and_footer(tmp_path: Path) -> None:
    # no DASHSCOPE_* variables reach the server (lab_server drops them): the kernel goes offline
    with (
        lab_server(tmp_path, env={"QWEN_OFFLINE_TOKENS_PER_SECOND": "400"}) as lab,
        chromium() as browser,
    ):
        lab.copy_notebook(NOTEBOOKS / "01_quickstart.ipynb")
        page = browser.new_page(viewport={"width": 1200, "height": 1400})
        nb = Notebook(page, lab).open("01_quickstart.ipynb")
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
        assert page.locator(".qwen-thinking").count() == 0  # what follows comes from this run
        nb.run_all(timeout=180)
        assert nb.errors() == []
        assert "offline simulator" in page.locator(".jp-OutputArea-output").first.inner_text()

        # the Thinking block rendered (folded, since the answer followed) with its reasoning
        thinking = page.locator("details.qwen-thinking").first
        thinking.wait_for(state="attached", timeout=30_000)
        assert thinking.locator("summary").inner_text().strip() == "Thinking"
        assert thinking.get_attribute("open") is None
        thinking.locator("summary").click()
        assert len(thinking.inner_text()) > 40

        # the answer streamed into rendered Markdown, a list among it, with its footer
        answers = page.locator(".jp-RenderedMarkdown").filter(has=page.locator("sub"))
        assert answers.count() >= 4
        listed = answers.filter(has=page.locator("li")).first
        listed.scroll_into_view_if_needed()
        assert listed.locator("li").count() == 3
        footer = answers.first.locator("sub").inner_text()
        assert "qwen3.6-plus" in footer and "out" in footer and "tok/s" in footer and "offline" in footer
        assert "sk-" not in page.locator(".jp-Notebook").inner_text().replace("sk-…", "")
        nb.screenshot("browser_quickstart")
