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


@pytest.mark.browser
def test_confirm_buttons_answer_while_the_cell_waits(tmp_path: Path) -> None:
    with lab_server(tmp_path) as lab, chromium() as browser:
        lab.write_notebook(
            "confirm.ipynb",
            [
                "%load_ext qwen_magics",
                'def get_weather(city: str) -> str:\n    """Get the current weather for a city."""\n'
                '    return f"light rain in {city}"',
                "%%qwen -m qwen-plus --tools get_weather --confirm\nWhat's the weather in Oslo?",
            ],
        )
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        nb = Notebook(page, lab).open("confirm.ipynb")
        page.evaluate(
            "() => { window.__runAll = null; window.jupyterapp.commands.execute('notebook:run-all-cells')"
            ".then(ok => { window.__runAll = {ok: ok}; }); }"
        )
        question = page.locator(".jp-OutputArea-output .widget-html").filter(
            has_text="get_weather(city='Oslo')"
        )
        question.wait_for(timeout=60_000)
        nb.screenshot("browser_confirm_question")
        page.locator(".jp-OutputArea-output button.jupyter-button").filter(has_text="Run").click()
        page.wait_for_function("() => window.__runAll !== null", timeout=60_000)
        nb.wait_idle()
        assert nb.errors() == []
        outputs = page.locator(".jp-OutputArea-output")
        outputs.filter(has_text="ran get_weather(city='Oslo')").first.wait_for(timeout=30_000)
        assert page.locator(".jp-OutputArea-output button.jupyter-button").count() == 0  # the record stays
        answer = page.locator(".jp-RenderedMarkdown").filter(
            has_text="get_weather returned light rain in Oslo"
        )
        answer.first.wait_for(timeout=30_000)
        nb.screenshot("browser_confirm_ran")
