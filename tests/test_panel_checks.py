"""The Compare tab judges its answers: checks typed as ``--check`` takes them, a threshold, the marks
and the summary in the panel, and the code view that runs the same comparison. Real widgets, a real
shell, the real emulator over HTTP.

The "simple" generator answers "You asked: <prompt>. This is the emulator's answer at temperature T.",
so a check on the temperature has a known outcome.
"""

from __future__ import annotations

import html

import pytest
from IPython.utils.capture import capture_output

import qwen_magics
from qwen_magics.comparison.grid import marks_text
from qwen_magics.emulator import Emulator
from qwen_magics.emulator.answers import SimpleGenerator
from qwen_magics.widgets.panel import Panel

from .test_panel import WIDGET_MIME, add_settings, compared, panel_threads
from .waiting import wait_until


@pytest.fixture
def make(shell):  # type: ignore[no-untyped-def]
    def open_panel(prompt: str = "", **params: object) -> Panel:
        with capture_output() as cap:
            p = qwen_magics.panel(prompt, **params)
        assert [WIDGET_MIME in o.data for o in cap.outputs] == [True]
        return p

    yield open_panel
    for t in panel_threads():
        t.join(5)


def drawn(p: Panel) -> str:
    """The Compare tab's output now, empty before the first frame."""
    outputs = p.compare_mode.output.outputs
    return html.unescape(outputs[0]["data"]["text/html"]) if outputs else ""


def compare_to_end(p: Panel) -> None:
    p.compare_mode.run_button.click()
    assert p.wait(10) and not p.running, "the comparison did not end"


def test_checks_in_the_tab_mark_each_cell_and_summarise(make, qwen_env: Emulator) -> None:
    p = make("Name a colour", model="qwen-plus")
    add_settings(p, 0.2, 1.0)
    p.compare_mode.checks.value = "contains:temperature 0.2\n\n  icontains:YOU ASKED  \n"
    compare_to_end(p)
    c = p.compare_mode.comparison
    assert c is not None and c.check_names == ["contains('temperature 0.2')", "icontains('YOU ASKED')"]
    grid = html.unescape(compared(p))
    assert "✓ contains('temperature 0.2') · ✓ icontains('YOU ASKED') · score 1.00" in grid
    assert "✗ contains('temperature 0.2') · ✓ icontains('YOU ASKED') · score 0.50" in grid
    for row in ("temperature=0.2</td><td style='padding:2px 8px;text-align:left'>100% (1/1)", "0% (0/1)"):
        assert row in grid  # the summary table, in the panel's own output
    assert "title='best'" in grid and "1 failed check" in grid
    assert "comparison of 2 settings: done" in p.status.value and "1/2 passed" in p.status.value
    assert len(qwen_env.chat_requests) == 2


def test_a_cell_shows_its_marks_as_soon_as_it_finishes(make, qwen_env: Emulator) -> None:
    qwen_env.generator = SimpleGenerator(length=300)
    qwen_env.token_delay = 0.02
    p = make("Write a long story", model="qwen-plus")
    p.max_tokens.value = 3  # this setting ends at once, the other takes seconds
    p.compare_mode.add_button.click()
    p.max_tokens.value = 0
    p.compare_mode.add_button.click()
    p.compare_mode.checks.value = "max_length:10000"
    p.compare_mode.run_button.click()
    wait_until(lambda: "✓ max_length(10000)" in drawn(p), timeout=5, what="the short cell's mark")
    assert p.running and "pass rate" not in drawn(p)  # the summary comes when all are judged
    p.stop_button.click()
    assert p.wait(5)


def test_the_threshold_decides_what_passes(make, qwen_env: Emulator) -> None:
    p = make("Name a colour", model="qwen-plus")
    add_settings(p, 0.2, 1.0)
    mode = p.compare_mode
    assert mode.threshold.disabled  # nothing to pass without checks
    mode.checks.value = "contains:temperature 0.2\nicontains:you asked"
    assert not mode.threshold.disabled
    mode.threshold.value = 0.5
    compare_to_end(p)
    c = mode.comparison
    assert c is not None and c.threshold == 0.5
    assert list(c.df["passed"]) == [True, True] and list(c.df["score"]) == [1.0, 0.5]
    assert "2/2 passed" in p.status.value


def test_samples_show_how_many_passed(make, qwen_env: Emulator) -> None:
    p = make("Name a colour", model="qwen-flash")
    add_settings(p, 0.2, 1.0)
    p.compare_mode.samples.value = 3
    p.compare_mode.checks.value = "contains:temperature 1"
    compare_to_end(p)
    grid = compared(p)
    assert "0/3 passed · mean score 0.00" in grid and "3/3 passed · mean score 1.00" in grid
    assert "100% (3/3) [44%–100%]" in grid  # the Wilson interval with more than one answer
    assert len(qwen_env.chat_requests) == 6


def test_a_judge_in_the_tab_grades_every_answer(make, qwen_env: Emulator) -> None:
    p = make("Name a colour", model="qwen-plus")
    add_settings(p, 0.2, 1.0)
    p.compare_mode.checks.value = "judge:is it a colour?"
    compare_to_end(p)
    graded = [r for r in qwen_env.chat_requests if "Rubric: is it a colour?" in str(r.body)]
    assert len(graded) == 2 and len(qwen_env.chat_requests) == 4
    # the emulator's judge gives 0.5, the judge's pass mark: a pass, full credit
    assert html.unescape(compared(p)).count("✓ judge('is it a colour?') · score 1.00") == 2


@pytest.mark.parametrize("spec", ["contain:Paris", "max_length:lots", "regex:(", "json:yes"])
def test_a_bad_check_is_one_line_in_the_tab_and_nothing_is_sent(spec: str, make, qwen_env: Emulator) -> None:
    p = make("Name a colour", model="qwen-plus")
    add_settings(p, 0.2, 1.0)
    mode = p.compare_mode
    mode.checks.value = f"icontains:colour\n{spec}"
    problem = html.unescape(mode.check_note.value)
    assert problem.count("⚠") == 1 and "\n" not in problem and spec in problem  # said as it is typed
    assert "--check" not in p.code_view.value  # the code leaves out checks that do not read
    assert "the checks are left out" in p.code_view.value
    assert not mode.run() and "fix the checks above" in mode.note.value
    mode.run_button.click()  # a click that reaches the kernel anyway
    assert qwen_env.chat_requests == [] and not p.running
    mode.checks.value = "icontains:colour"  # fixed: the notes go, Compare runs
    assert mode.check_note.value == "" and mode.note.value == ""
    compare_to_end(p)
    assert len(qwen_env.chat_requests) == 2


CODE = {
    "a grid says it as a cell": (
        "Name a colour",
        [0.2, 1.0],
        '%%qwen -m qwen-plus --compare temperature=0.2,1.0 --samples 2 --check "contains:temperature 0.2"'
        " --check 'regex:\\d\\.\\d' --threshold 0.5\nName a colour",
    ),
    "other lists as a call": ("Explain {topic}", [1.0, 0.2], None),
}


@pytest.mark.parametrize("case", CODE)
def test_the_code_view_runs_the_same_comparison_with_its_checks(
    case: str, make, shell, qwen_env: Emulator
) -> None:
    prompt, temperatures, cell = CODE[case]
    p = make(prompt, model="qwen-plus")
    add_settings(p, *temperatures)
    mode = p.compare_mode
    mode.samples.value = 2
    mode.checks.value = "contains:temperature 0.2\nregex:\\d\\.\\d"
    mode.threshold.value = 0.5
    code = mode.code
    assert html.escape(code) in p.code_view.value  # shown under the Run cell
    if cell is not None:
        assert code == cell
    else:
        assert "parse_spec('contains:temperature 0.2'), parse_spec('regex:\\\\d\\\\.\\\\d')" in code
        assert code.startswith("import qwen_magics") and "threshold=0.5" in code
    compare_to_end(p)
    by_panel = p.compare_mode.comparison
    assert by_panel is not None
    sent_by_panel = sorted(str(r.body) for r in qwen_env.chat_requests)
    assert len(sent_by_panel) == 4
    shell.run_line_magic("load_ext", "qwen_magics")
    with capture_output() as cap:
        result = shell.run_cell(code)  # pasted into a new cell
    assert result.success, result.error_in_exec or result.error_before_exec
    assert sorted(str(r.body) for r in qwen_env.chat_requests[4:]) == sent_by_panel
    shown = html.unescape("".join(o.data.get("text/html", "") for o in cap.outputs))
    for cell in by_panel.cells:  # the same marks, the same summary
        assert marks_text(cell, by_panel.check_names) in shown
    both = "100% (2/2) [34%–100%]"  # threshold 0.5: each setting's answers pass
    assert html.unescape(compared(p)).count(both) == shown.count(both) == 2


def test_the_code_view_follows_the_tab(make) -> None:
    p = make("Name a colour", model="qwen-plus")
    assert "--compare" not in p.code_view.value  # nothing listed: only the Run cell
    add_settings(p, 0.2, 1.0)
    assert "--compare temperature=0.2,1.0" in p.code_view.value
    p.compare_mode.checks.value = "json"
    assert "--check json" in p.code_view.value and "--threshold" not in p.code_view.value
    p.compare_mode.threshold.value = 0.75
    assert "--check json --threshold 0.75" in p.code_view.value
    p.compare_mode.samples.value = 4
    assert "--samples 4" in p.code_view.value
    p.prompt.value = "Name two colours"
    assert "--threshold 0.75\nName two colours" in p.code_view.value
    p.thinking.value = "on"
    p.compare_mode.add()  # three settings that are no grid: compare's configs say them
    assert "configs=[" in p.code_view.value and "checks=[parse_spec(&#x27;json&#x27;)]" in p.code_view.value
    p.compare_mode.clear()
    assert "--compare" not in p.code_view.value


def test_the_saved_panel_keeps_the_comparison_and_its_checks(make, qwen_env: Emulator) -> None:
    p = make("Name a colour", model="qwen-plus")
    add_settings(p, 0.2, 1.0)
    p.compare_mode.checks.value = "icontains:colour"
    compare_to_end(p)
    stand_in = p._stand_in()
    assert "its comparison as code:" in stand_in["text"]
    assert "--check icontains:colour" in stand_in["text"] and "--check icontains:colour" in stand_in["html"]
