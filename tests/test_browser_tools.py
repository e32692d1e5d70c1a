"""A %%qwen --tools cell in a real JupyterLab, offline: each call drawn, then the answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.jupyterlab import Notebook, chromium, lab_server

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


@pytest.mark.browser
def test_tools_lesson_shows_each_call_then_the_answer(tmp_path: Path) -> None:
    with (
        lab_server(tmp_path, env={"QWEN_OFFLINE_TOKENS_PER_SECOND": "400"}) as lab,
        chromium() as browser,
    ):
        lab.copy_notebook(NOTEBOOKS / "09_tools.ipynb")
        page = browser.new_page(viewport={"width": 1200, "height": 1400})
        nb = Notebook(page, lab).open("09_tools.ipynb")
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
        assert page.locator(".qwen-tool").count() == 0  # what follows comes from this run
        nb.run_all(timeout=180)
        assert nb.errors() == []
        calls = page.locator(".jp-RenderedMarkdown .qwen-tool")
        calls.first.wait_for(state="attached", timeout=30_000)
        texts = [calls.nth(i).inner_text() for i in range(calls.count())]
        assert any("get_weather(city='Paris')" in t and "light rain in Paris" in t for t in texts)
        assert any("get_time(zone='Tokyo')" in t and "10:00" in t for t in texts)
        assert any("ConnectionError" in t for t in texts)
        # the call's output comes before the answer's, and the footer counts the steps
        first = page.locator(".jp-OutputArea-output").filter(has_text="get_weather(city='Paris')").first
        answer = page.locator(".jp-RenderedMarkdown").filter(has_text="get_weather returned light rain").first
        assert first.bounding_box()["y"] < answer.bounding_box()["y"]  # type: ignore[index]
        assert "3 steps, 2 tool calls" in answer.inner_text()
        nb.screenshot("browser_tools")
