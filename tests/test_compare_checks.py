"""compare() as an experiment: prompt variants × settings × cases × samples, judged by checks as each
answer finishes, against the real emulator over HTTP.

The "simple" generator answers "You asked: <prompt>. This is the emulator's answer at temperature T.",
so a check on the prompt's words or on the temperature has a known outcome.
"""

from __future__ import annotations

import html
from collections import Counter
from typing import Any

import pandas as pd
import pytest
from IPython.core.error import UsageError

from qwen_magics import ParameterError
from qwen_magics.checks import Result, check, similar, wilson
from qwen_magics.comparison.compare import compare
from qwen_magics.emulator import Emulator

from .outputs import magic, rendered

CASES = [
    {"country": "France", "city": "Paris"},
    {"country": "Japan", "city": "Tokyo"},
    {"country": "Peru", "city": "Lima"},
]


def _prompts(emulator: Emulator) -> Counter:
    return Counter(r.body["messages"][-1]["content"] for r in emulator.chat_requests)


def names_city(r: Any, case: Any) -> bool:
    return case["city"] in r.text


def at_low_temperature(r: Any) -> bool:
    return "temperature 0.2" in r.text


# -- the grid -------------------------------------------------------------------------------------
def test_grid_is_variants_by_settings_by_cases_by_samples(qwen_env: Emulator) -> None:
    c = compare(
        None,
        prompts={"short": "Capital of {country}?", "polite": "Please, the capital of {country}?"},
        cases=CASES,
        temperature=[0.2, 1.0],
        samples=2,
        show=False,
    )
    assert len(c) == 2 * 2 * 3 and len(c.responses) == 24
    sent = _prompts(qwen_env)
    assert sent == {
        f"{lead}{country}?": 4
        for lead in ("Capital of ", "Please, the capital of ")
        for country in ("France", "Japan", "Peru")
    }
    temps = Counter(r.params["temperature"] for r in qwen_env.chat_requests)
    assert temps == {0.2: 12, 1.0: 12}
    assert c.labels[0] == "short · temperature=0.2 · case 0"
    assert [cell.prompt for cell in c][:3] == ["Capital of France?", "Capital of Japan?", "Capital of Peru?"]


def test_cases_from_a_dataframe_fill_the_prompt_and_join_df(qwen_env: Emulator) -> None:
    df = pd.DataFrame(CASES)
    c = compare("Capital of {country}?", cases=df, checks=names_city, show=False)
    assert list(c.df["case"]) == [0, 1, 2]
    assert list(c.df["country"]) == ["France", "Japan", "Peru"]
    assert list(c.df["city"]) == ["Paris", "Tokyo", "Lima"]
    assert "variant" not in c.df.columns  # one prompt: no variant column
    assert _prompts(qwen_env) == {"Capital of France?": 1, "Capital of Japan?": 1, "Capital of Peru?": 1}


def test_a_field_no_case_has_is_refused_before_sending(qwen_env: Emulator) -> None:
    with pytest.raises(ParameterError, match=r"\{capital\} is not a column; the columns are country, city"):
        compare("What is {capital}?", cases=CASES, temperature=[0.2, 1.0], show=False)
    with pytest.raises(ParameterError, match="case 1 has no 'city'"):
        compare("{country} and {city}", cases=[CASES[0], {"country": "Japan"}], show=False)
    with pytest.raises(ParameterError, match="not both"):
        compare("hi", prompts=["a", "b"], show=False)
    with pytest.raises(ParameterError, match="threshold is a score in"):
        compare("hi", checks=at_low_temperature, threshold=2, show=False)
    with pytest.raises(ParameterError, match="a check is"):
        compare("hi", checks=["contains"], show=False)
    assert qwen_env.chat_requests == []


# -- checks in .df --------------------------------------------------------------------------------
def test_each_check_is_a_column_with_score_and_passed(qwen_env: Emulator) -> None:
    c = compare(
        "Capital of {country}?",
        cases=CASES,
        checks=[lambda r: "France" in r.text, at_low_temperature],
        temperature=[0.2, 1.0],
        show=False,
    )
    df = c.df
    assert c.check_names == ['"France" in r.text', "at_low_temperature"]  # a lambda: its expression
    france = df["country"] == "France"
    assert list(df['"France" in r.text']) == [1.0 if f else 0.0 for f in france]
    assert list(df["at_low_temperature"]) == [1.0 if t == 0.2 else 0.0 for t in df["temperature"]]
    expected = (df['"France" in r.text'] + df["at_low_temperature"]) / 2
    assert list(df["score"]) == list(expected)
    assert list(df["passed"]) == list(expected == 1.0)
    assert df["passed"].sum() == 1  # France at 0.2 only


def test_threshold_and_weights_decide_a_pass(qwen_env: Emulator) -> None:
    heavy = check("france", weight=3)(lambda r: "France" in r.text)
    c = compare(
        "Capital of {country}?",
        cases=CASES,
        checks=[heavy, at_low_temperature],
        temperature=1.0,
        threshold=0.75,
        show=False,
    )
    df = c.df
    assert list(df["score"]) == [0.75, 0.0, 0.0]
    assert list(df["passed"]) == [True, False, False]


def test_a_check_that_raises_is_errored_not_failed(qwen_env: Emulator) -> None:
    def broken(r: Any) -> bool:
        raise RuntimeError("the check itself broke")

    c = compare("Capital of France?", checks=[broken, lambda r: "France" in r.text], show=False)
    verdict = c[0].verdicts[0]
    assert verdict is not None
    assert verdict.errored[0].reason == "RuntimeError: the check itself broke"
    assert verdict.failed == []
    assert bool(c.df["passed"][0]) and c.df["score"][0] == 1.0  # the rest went on
    assert pd.isna(c.df["broken"][0])
    f = c.failures()
    assert list(f["check"]) == ["broken"] and bool(f["errored"][0])


def test_checks_receive_the_case_and_may_return_a_result(qwen_env: Emulator) -> None:
    def graded(r: Any, case: Any) -> Result:
        return Result("graded", 0.5, False, f"half marks for {case['country']}")

    qwen_env.queue_reply("Paris is the capital.")
    c = compare("Capital of {country}?", cases=CASES[:1], checks=[names_city, graded], show=False)
    assert c.df["names_city"][0] == 1.0 and c.df["score"][0] == 0.75
    f = c.failures()
    assert list(f["reason"]) == ["half marks for France"]
    assert list(f["text"]) == ["Paris is the capital."]


def test_a_similar_answer_over_its_mark_passes_at_the_default_threshold(qwen_env: Emulator) -> None:
    qwen_env.queue_reply("the cat sat on a mat")  # 0.91 similar to the reference
    c = compare("Where is the cat?", checks=[similar("the cat sat on the mat", 0.8)], show=False)
    column = "similar('the cat sat on the mat')"
    assert c.df[column][0] == pytest.approx(0.9129, abs=1e-4)  # the check's own score
    assert c.df["score"][0] == 1.0 and bool(c.df["passed"][0])  # passed: full credit
    assert c.failures().empty


# -- summary, failures, plot ----------------------------------------------------------------------
def test_summary_gives_pass_rates_with_wilson_intervals(qwen_env: Emulator) -> None:
    c = compare(
        None,
        prompts={"plain": "Capital of {country}?", "named": "Name {city}"},
        cases=CASES,
        checks=lambda r, case: case["city"] in r.text,
        temperature=[0.2, 1.0],
        samples=2,
        show=False,
    )
    s = c.summary()
    assert list(s.columns) == [
        "variant", "setting", "n", "passed", "pass_rate", "low", "high", "mean_score", "mean_latency",
        "total_cost",
    ]  # fmt: skip
    assert list(s["variant"]) == ["plain", "plain", "named", "named"]
    assert list(s["setting"]) == ["temperature=0.2", "temperature=1", "temperature=0.2", "temperature=1"]
    assert list(s["n"]) == [6, 6, 6, 6]
    assert list(s["pass_rate"]) == [0.0, 0.0, 1.0, 1.0]
    low, high = wilson(6, 6)
    assert s["low"][2] == pytest.approx(low) and s["high"][2] == pytest.approx(high)
    assert (round(low, 4), high) == (0.6097, 1.0)  # Wilson's interval of 6/6
    assert (s["mean_latency"] > 0).all()


def test_one_answer_per_row_has_no_interval(qwen_env: Emulator) -> None:
    c = compare("Capital of France?", checks=at_low_temperature, temperature=[0.2, 1.0], show=False)
    s = c.summary()
    assert list(s["pass_rate"]) == [1.0, 0.0]
    assert s["low"].isna().all() and s["high"].isna().all()
    assert list(c.failures()["setting"]) == ["temperature=1"]


def test_plot_draws_pass_rate_against_temperature_one_line_per_variant(qwen_env: Emulator) -> None:
    import matplotlib

    matplotlib.use("Agg")
    c = compare(
        None,
        prompts=["Capital of {country}?", "Name {city}"],
        cases=CASES[:2],
        checks=at_low_temperature,
        temperature=[0.2, 0.6, 1.0],
        show=False,
    )
    ax = c.plot(x="temperature")
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["prompt 1", "prompt 2"]
    assert list(lines[0].get_xdata()) == [0.2, 0.6, 1.0]
    assert list(lines[0].get_ydata()) == [1.0, 0.0, 0.0]
    assert ax.get_xlabel() == "temperature" and ax.get_ylabel() == "pass rate"
    assert list(c.plot(x="temperature", y="score").get_lines()[1].get_ydata()) == [1.0, 0.0, 0.0]
    with pytest.raises(ParameterError, match="'top_p' is not a parameter"):
        c.plot(x="top_p")


# -- the display ----------------------------------------------------------------------------------
def test_grid_shows_marks_per_cell_and_highlights_the_best_row(ip: Any) -> None:
    ip.user_ns["cases"] = CASES
    out = magic(ip, '--compare "temperature=0.2,1.0" --cases cases --check "contains:{city}"',
                "Capital of {country}? Say {city}.")  # fmt: skip
    final = rendered(out.outputs)[-1]
    page = final["text/html"]
    assert "✓ contains('{city}') · score 1.00" in html.unescape(page)
    assert "<style" not in page  # the saved grid: inline styles only
    assert "best" in page and "rgba(92,184,92,.18)" in page
    assert "100% (3/3) [44%–100%]" in page  # the pass rate with its Wilson interval
    assert "pass rate" in final["text/plain"]
    c = ip.user_ns.get("_")  # compare returned the Comparison to the magic's caller
    del c


def test_failures_are_listed_folded_with_their_reasons(ip: Any) -> None:
    ip.user_ns["cases"] = CASES
    out = magic(ip, '--compare "temperature=0.2,1.0" --cases cases --check "contains:Paris"',
                "Capital of {country}? Say {city}.")  # fmt: skip
    page = html.unescape(rendered(out.outputs)[-1]["text/html"])
    assert "✗ contains('Paris')" in page
    assert "<details><summary" in page and "4 failed checks" in page
    assert "does not contain 'Paris'" in page


def test_user_text_in_checks_and_cases_is_escaped(qwen_env: Emulator) -> None:
    def bad(r: Any) -> Result:
        return Result("bad", 0.0, False, "<script>alert(1)</script>")

    c = compare("Say {word}", cases=[{"word": "<b>x</b>"}], checks=bad, show=False)
    page = c._repr_html_()
    assert "<script>" not in page and "&lt;script&gt;" in page


# -- the magic ------------------------------------------------------------------------------------
def test_magic_prompts_threshold_and_out(ip: Any) -> None:
    ip.user_ns["variants"] = {"a": "Capital of {country}?", "b": "Where is {city}?"}
    ip.user_ns["df"] = pd.DataFrame(CASES)
    magic(ip, '--prompts variants --cases df --check "contains:{country}" --check "contains:Paris" '
              "--threshold 0.5 --samples 2 -o c")  # fmt: skip
    c = ip.user_ns["c"]
    assert len(c) == 6 and c.samples == 2
    assert c.threshold == 0.5
    s = c.summary()
    assert list(s["pass_rate"]) == [1.0, pytest.approx(1 / 3)]  # b passes only on Paris
    assert list(c.df.columns[:4]) == ["label", "variant", "case", "country"]


@pytest.mark.parametrize(
    ("options", "body", "says"),
    [
        (
            "--cases nowhere",
            "Capital of {country}?",
            "--cases: there is no variable 'nowhere' in the notebook",
        ),
        (
            "--cases text",
            "Capital of {country}?",
            "--cases: text is a str, not a DataFrame or a list of dicts",
        ),
        (
            "--cases rows",
            "Capital of {capital}?",
            "the prompt: {capital} is not a column of --cases rows (its columns are country, city)",
        ),
        ("--check nonsense", "hi", "--check nonsense: unknown check 'nonsense'"),
        ("--check contains:x --json", "hi", "--check goes with --compare, not with --json"),
        ("--threshold 2 --check contains:x", "hi", "--threshold: threshold is a score in [0, 1]"),
        ("--prompts rows", None, "--prompts: the prompt variant 'prompt 1' is not a non-empty string"),
        ("--prompts variants", "hi", "--prompts: give the prompt or prompts="),
    ],
)
def test_magic_refuses_mistakes_before_sending(ip: Any, qwen_env: Emulator, options: str, body: str | None,
                                               says: str) -> None:  # fmt: skip
    ip.user_ns.update(text="abc", rows=CASES, variants=["a {country}"])
    with pytest.raises(UsageError, match="^" + __import__("re").escape(says)):
        magic(ip, options, body)
    assert qwen_env.chat_requests == []


def test_a_finished_row_is_frozen_with_its_marks(shell: Any, qwen_env: Emulator) -> None:
    from IPython.utils.capture import capture_output

    from qwen_magics.emulator.answers import SimpleGenerator

    qwen_env.generator = SimpleGenerator(length=100)
    qwen_env.token_delay = 0.01  # about a second an answer; the second row waits for the first
    shell.user_ns["at_low_temperature"] = at_low_temperature
    with capture_output() as cap:
        shell.run_cell(
            "import qwen_magics\n"
            "c = qwen_magics.compare('Name a colour', temperature=[0.2, 0.9], top_p=[0.6, 0.7, 0.8, 0.9],\n"
            "                        concurrency=4, thinking=False, checks=at_low_temperature)\n"
        )
    grids = [o for o in cap.outputs if "qwen-compare" in o.data.get("text/html", "")]
    first, last = rendered(grids)  # row 1 (temperature 0.2) frozen, marks and all
    assert html.unescape(first["text/html"]).count("✓ at_low_temperature · score 1.00") == 4
    assert html.unescape(last["text/html"]).count("✗ at_low_temperature · score 0.00") == 4
    assert "pass rate" in last["text/html"] and "pass rate" not in first["text/html"]


def test_a_slow_check_holds_up_no_other_cell(qwen_env: Emulator) -> None:
    import time

    def slow(r: Any) -> bool:
        time.sleep(0.3)
        return True

    started = time.perf_counter()
    c = compare("Name a colour", temperature=[0.1, 0.3, 0.5, 0.7, 0.9, 1.1], checks=slow, show=False)
    assert time.perf_counter() - started < 0.3 * 6 * 0.6  # the six checks overlap
    assert list(c.df["passed"]) == [True] * 6


def test_checks_run_as_many_at_once_as_requests(qwen_env: Emulator) -> None:
    """A judge asks a model: 12 answers at concurrency 12 are judged 12 at a time, not as many as
    the event loop's default thread pool holds (CPUs + 4)."""
    import threading

    together = threading.Barrier(12, timeout=5)

    def waits_for_the_others(r: Any) -> bool:
        together.wait()  # BrokenBarrierError (an errored check) unless all 12 run at once
        return True

    temperatures = [round(0.1 * i, 1) for i in range(1, 13)]
    c = compare(
        "Name a colour", temperature=temperatures, checks=waits_for_the_others, concurrency=12, show=False
    )
    assert list(c.df["passed"]) == [True] * 12, c.failures()["reason"].tolist()


def test_acompare_judges_too(qwen_env: Emulator) -> None:
    import asyncio

    from qwen_magics.comparison.compare import acompare

    c = asyncio.run(acompare("Capital of {country}?", cases=CASES, checks=names_city, samples=2))
    assert list(c.summary()["n"]) == [6] and c.done


def test_a_terminal_gets_the_marks_and_the_summary_as_text(qwen_env: Emulator, capsys: Any) -> None:
    from qwen_magics.comparison.grid import GridView

    c = compare("Capital of France?", checks=at_low_temperature, temperature=[0.2, 1.0], show=False)
    view = GridView(c, rich=False)
    view.refresh(1)
    view.finish()
    out = capsys.readouterr().out
    assert "✓ at_low_temperature · score 1.00" in out and "✗ at_low_temperature · score 0.00" in out
    assert "setting | pass rate | mean score | latency | cost" in out
    assert "temperature=0.2 | 100% (1/1)" in out


def test_the_summary_line_names_the_axes(qwen_env: Emulator) -> None:
    c = compare(None, prompts=["{country}?", "Say {city}"], cases=CASES, temperature=[0.2, 1.0], show=False)
    assert repr(c).startswith("<Comparison 2 variants × 2 settings × 3 cases × 1 sample, done: prompt 1 · ")
    assert "2 variants × 2 settings × 3 cases × 1 sample · done" in c._repr_html_()
