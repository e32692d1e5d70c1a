"""``%qwen login`` in a real JupyterLab (headless Chromium), which saves widget state in the notebook:
the key is typed into the password field, Enter sends it, the next ``%%qwen`` cell is answered by an
emulator that wants that key, and the saved ``.ipynb`` (outputs and widget state) never holds it, not
even when saved while the key sat typed in the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qwen_magics.emulator import Emulator
from tests.jupyterlab import Notebook, chromium, lab_server

KEY = "sk-browser-login-key-0123456789-UVWX"
HIDDEN = KEY[3:-4]  # the part a masked key (sk-…UVWX) never shows
CELLS = ["%load_ext qwen_magics", "%qwen login", "%%qwen --no-thinking\nSay hi from the browser"]


def save(page: Any, path: Path, *, has: str) -> str:
    """Save with Lab's own command; the file's text once it holds ``has``."""
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=30_000)
    page.wait_for_timeout(300)
    text = path.read_text(encoding="utf-8")
    assert has in text
    return text


def run_cell(page: Any, index: int) -> None:
    page.evaluate(
        "(i) => { const nb = window.jupyterapp.shell.currentWidget.content; nb.activeCellIndex = i;"
        " return window.jupyterapp.commands.execute('notebook:run-cell'); }",
        index,
    )


def widget_state(saved: str) -> dict[str, Any]:
    return json.loads(saved)["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]


@pytest.mark.browser
def test_login_in_jupyterlab_keeps_the_key_out_of_the_saved_notebook(tmp_path: Path) -> None:
    with (
        Emulator(generator="simple", api_key=KEY) as emu,
        lab_server(tmp_path, env={"DASHSCOPE_BASE_URL": emu.base_url}) as lab,
        chromium() as browser,
    ):
        path = lab.write_notebook("login.ipynb", CELLS)
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        nb = Notebook(page, lab).open("login.ipynb")
        nb.run_all()  # the %%qwen cell runs before the key is typed: refused
        cells = page.locator(".jp-Notebook .jp-Cell")
        cells.nth(2).get_by_text("401", exact=False).first.wait_for(timeout=30_000)

        form = page.locator(".qwen-login")
        form.wait_for(timeout=30_000)
        assert form.locator(".qwen-login-region").is_hidden()  # the key goes to the user's own server
        field = form.locator(".qwen-login-key input")
        assert field.get_attribute("type") == "password"
        field.press_sequentially(KEY)
        nb.screenshot("browser_login_typed")

        # saved with the key typed but not sent: the field's value never reached the widget state
        saved = save(page, path, has="qwen-login")
        assert KEY not in saved and HIDDEN not in saved
        assert "widget-state" in saved  # this Lab saves widget state

        field.press("Enter")
        done = cells.nth(1).get_by_text("qwen-magics: key sk-…UVWX set for", exact=False)
        done.wait_for(timeout=30_000)
        assert page.locator(".qwen-login").count() == 0  # the form is gone, the line stays

        run_cell(page, 2)
        cells.nth(2).get_by_text("You asked: Say hi from the browser.", exact=False).wait_for(timeout=30_000)
        nb.wait_idle()
        assert [r.auth for r in emu.chat_requests] == ["missing", "ok"]
        nb.screenshot("browser_login_done")

        saved = save(page, path, has="You asked: Say hi from the browser.")
        assert KEY not in saved and HIDDEN not in saved
        assert "sk-…UVWX" in saved  # the confirmation, masked
        models = {m["model_name"] for m in widget_state(saved).values()}
        assert "PasswordModel" not in models  # the form's widgets were closed, not just hidden
        assert KEY not in page.content()


@pytest.mark.browser
def test_login_after_offline_mode_started_switches_to_qwen_cloud_in_jupyterlab(tmp_path: Path) -> None:
    with lab_server(tmp_path) as lab, chromium() as browser:
        path = lab.write_notebook("offline.ipynb", ["%load_ext qwen_magics", "%qwen login virginia"])
        page = browser.new_page(viewport={"width": 1100, "height": 700})
        nb = Notebook(page, lab).open("offline.ipynb")
        nb.run_all()
        form = page.locator(".qwen-login")
        form.wait_for(timeout=30_000)
        region = form.locator(".qwen-login-region select")
        assert region.input_value().startswith("Virginia")  # the front end's options are the labels
        nb.screenshot("browser_login_form")
        region.select_option("Beijing (dashscope.aliyuncs.com)")
        form.locator(".qwen-login-key input").press_sequentially(KEY)
        form.locator("button.qwen-login-button").click()  # the button, this time
        switched = page.get_by_text(
            "answers now come from Qwen Cloud (Beijing), not the offline simulator.", exact=False
        )
        switched.wait_for(timeout=30_000)
        nb.screenshot("browser_login_switched")
        saved = save(page, path, has="not the offline simulator")
        assert KEY not in saved and HIDDEN not in saved
