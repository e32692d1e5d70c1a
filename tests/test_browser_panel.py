"""The parameter panel in a real JupyterLab, driven through headless Chromium.

The emulator runs in this process and streams slowly, so the test sees the answer grow in the page.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from qwen_magics.emulator import Emulator
from tests.jupyterlab import Notebook, chromium, lab_server
from tests.waiting import wait_until

KEY = "sk-browser-fake-key-0123-WXYZ"
PROMPT = "Describe the sea in one sentence"


@pytest.mark.browser
def test_panel_streams_into_the_page_after_moving_the_temperature_slider(tmp_path: Path) -> None:
    with (
        Emulator(generator="simple", api_key=KEY, token_delay=0.15) as emu,
        lab_server(tmp_path, env={"DASHSCOPE_BASE_URL": emu.base_url, "DASHSCOPE_API_KEY": KEY}) as lab,
        chromium() as browser,
    ):
        lab.write_notebook(
            "panel.ipynb",
            [
                f"import qwen_magics\np = qwen_magics.panel({PROMPT!r}, model='qwen-plus')",
            ],
        )
        page = browser.new_page(viewport={"width": 1200, "height": 1100})
        nb = Notebook(page, lab).open("panel.ipynb")
        nb.run_all()
        assert nb.errors() == []
        panel = page.locator(".qwen-panel")
        panel.wait_for(timeout=30_000)

        # drag the temperature slider's handle to the right, as a user would
        slider = panel.locator(".qwen-temperature")
        handle = slider.locator(".noUi-handle")
        box = handle.bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] / 2 + 120, box["y"] + box["height"] / 2, steps=8)
        page.mouse.up()
        readout = slider.locator(".widget-readout")
        readout.wait_for(state="visible", timeout=10_000)  # shown once the value is the user's
        value = readout.inner_text().strip()
        assert float(value) > 0.7

        # the kernel has the new value: the preset turned custom and the code view shows it
        code = panel.locator(".qwen-code")
        page.wait_for_function(
            "([el, v]) => el.textContent.includes('-t ' + v)",
            arg=[code.element_handle(), value],
            timeout=10_000,
        )

        panel.locator("button.qwen-run").click()
        output = panel.locator(".qwen-output")
        seen: list[str] = []

        def finished() -> bool:  # every look is kept: the answer must be seen growing
            seen.append(output.inner_text())
            return "tok/s" in seen[-1]

        wait_until(finished, timeout=30, what="the footer (tok/s)", every=0.05)
        final = seen[-1]
        assert f"You asked: {PROMPT}. This is the emulator's answer at temperature {float(value)}." in final
        partial = [s for s in seen if "You asked" in s and "answer at temperature" not in s]
        assert partial, "the answer appeared all at once instead of streaming"
        assert emu.chat_requests[-1].params == {"model": "qwen-plus", "temperature": float(value)}

        # the runs table lists the run with its settings
        page.get_by_role("tab", name="Copy as code").click()
        assert f"-t {value}" in code.inner_text()
        page.get_by_role("tab", name="Runs").click()
        runs = panel.locator(".qwen-runs")
        assert f"temperature {float(value)}" in runs.inner_text()
        shot = nb.screenshot("browser_panel")
        assert shot.stat().st_size > 10_000

        # Compare mode: these settings and the code-generation preset, side by side
        page.get_by_role("tab", name="Compare").click()
        panel.locator("button.qwen-compare-add").click()
        panel.locator(".qwen-preset select").select_option("code generation")
        page.wait_for_function(
            "([el]) => el.textContent.includes('-t 0.2 -p 0.8')", arg=[code.element_handle()], timeout=10_000
        )
        panel.locator("button.qwen-compare-add").click()
        panel.locator("button.qwen-compare-run").click()
        grid = panel.locator(".qwen-compare-output")
        for t in (float(value), 0.2):
            expect_text = f"This is the emulator's answer at temperature {t}."
            page.wait_for_function(
                "([el, t]) => el.textContent.includes(t)",
                arg=[grid.element_handle(), expect_text],
                timeout=30_000,
            )
        assert len(emu.chat_requests) == 3
        status = panel.locator(".qwen-status")
        page.wait_for_function(
            "([el]) => el.textContent.includes('comparison of 2 settings: done')",
            arg=[status.element_handle()],
            timeout=30_000,
        )
        nb.screenshot("browser_panel_compare")

        # the same comparison judged: checks typed as --check takes them, one a line
        checks = panel.locator(".qwen-compare-checks textarea")
        checks.fill("contains:temperature 0.2\nicontains:YOU ASKED")
        checks.press("Tab")  # the field is read when it is left
        page.wait_for_function(
            "([el]) => el.textContent.includes('icontains:YOU ASKED')",
            arg=[code.element_handle()],
            timeout=10_000,
        )
        panel.locator("button.qwen-compare-run").click()
        page.wait_for_function(
            "([el]) => el.textContent.includes('1/2 passed')",
            arg=[status.element_handle()],
            timeout=30_000,
        )
        judged = grid.inner_text()
        assert "✓ contains('temperature 0.2') · ✓ icontains('YOU ASKED') · score 1.00" in judged
        assert "✗ contains('temperature 0.2')" in judged and "pass rate" in judged
        assert "1/2 passed" in status.inner_text() and len(emu.chat_requests) == 5
        grid.scroll_into_view_if_needed()
        nb.screenshot("browser_panel_checks")


def test_a_missing_chromium_fails_the_browser_tests_with_the_install_command(tmp_path: Path) -> None:
    missing = str(tmp_path / "chromium")
    with pytest.raises(pytest.fail.Exception, match=r"apt-get install -y chromium"), chromium(missing):
        pass
